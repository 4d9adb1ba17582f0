"""Issue 18's test harness against the real servers: envoy 1.5.0 (the CSIP-AUS utility server)
and the CACTUS runner, from their own Python 3.12 venv (tests/support/csip_server.py).

envoy answers the aggregator's certificate with its DeviceCapability, registers a site's
EndDevice, takes the site's NMI, and its admin API lists the sites; the runner initialises
ALL-01, reports its progress, and a minimal 2030.5 walk (dcap, edev, tm, der) passes it.

Needs CSMS_TEST_POSTGRES_URL (skips without it). With it set, the venv is made when missing
(CSMS_TEST_CSIP_VENV, default ~/.cache/v2g-csip/...; .ci/run makes it first) and a PostgreSQL
or venv that cannot be had is a failure.
"""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests.support.csip_admin import Envelope, EnvoyAdmin
from tests.support.csip_cactus import running_cactus
from tests.support.csip_server import (
    EnvoyServer,
    make_identity,
    running_envoy,
    venv_and_postgres_or_skip,
)

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(900)]

NS = "{urn:ieee:std:2030.5:ns}"
CSIP_NS = "{https://csipaus.org/ns}"
SEP_XML = "application/sep+xml"
MAX_XML = 256 * 1024


def _xml(answer: httpx.Response) -> ET.Element:
    # A test server's answer, size-bounded; expat (>= 2.4) refuses entity-expansion bombs and
    # ElementTree resolves no external entities.
    assert len(answer.content) < MAX_XML, f"{len(answer.content)} bytes of XML"
    return ET.fromstring(answer.content)


async def _register_site(envoy: EnvoyServer, client: httpx.AsyncClient) -> tuple[str, str]:
    device = make_identity("site-device")
    body = (
        f'<EndDevice xmlns="urn:ieee:std:2030.5:ns"><lFDI>{device.lfdi}</lFDI>'
        f"<sFDI>{device.sfdi}</sFDI><changedTime>0</changedTime><postRate>60</postRate></EndDevice>"
    )
    answer = await client.post("/edev", content=body, headers={"Content-Type": SEP_XML})
    assert answer.status_code == 201, answer.text
    return answer.headers["location"], device.lfdi


async def test_envoy_device_capability_and_end_device_registration(tmp_path: Path) -> None:
    venv, url = venv_and_postgres_or_skip()
    async with (
        running_envoy(venv, url, tmp_path) as envoy,
        httpx.AsyncClient(base_url=envoy.base_url, headers=envoy.headers(), timeout=30) as client,
    ):
        answer = await client.get("/dcap")
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith(SEP_XML)
        dcap = _xml(answer)
        assert dcap.tag == f"{NS}DeviceCapability" and dcap.get("href") == "/dcap"
        links = {child.tag.removeprefix(NS): child.get("href") for child in dcap}
        assert links["TimeLink"] == "/tm" and links["EndDeviceListLink"] == "/edev"
        assert links["MirrorUsagePointListLink"] == "/mup"

        # Without the certificate header envoy serves nothing.
        bare = await client.get("/dcap", headers={"ssl-client-cert": ""})
        assert bare.status_code >= 400

        location, lfdi = await _register_site(envoy, client)
        assert location.startswith("/edev/") and location != "/edev/0"
        again = await client.post(
            "/edev",
            content=f'<EndDevice xmlns="urn:ieee:std:2030.5:ns"><lFDI>{lfdi}</lFDI>'
            f"<sFDI>1</sFDI><changedTime>0</changedTime></EndDevice>",
            headers={"Content-Type": SEP_XML},
        )
        assert again.status_code == 409, again.text

        edevs = _xml(await client.get("/edev", params={"s": 0, "l": 100}))
        listed = {e.get("href"): (e.findtext(f"{NS}lFDI") or "").lower() for e in edevs}
        assert listed[location] == lfdi
        assert listed["/edev/0"] == envoy.lfdi  # the aggregator's own virtual EndDevice

        registration = _xml(await client.get(f"{location}/rg"))
        assert len(registration.findtext(f"{NS}pIN") or "") in range(1, 7)

        connection_point = (
            '<csipaus:ConnectionPoint xmlns:csipaus="https://csipaus.org/ns">'
            "<csipaus:connectionPointId>4123456789</csipaus:connectionPointId>"
            "</csipaus:ConnectionPoint>"
        )
        put = await client.put(
            f"{location}/cp", content=connection_point, headers={"Content-Type": SEP_XML}
        )
        assert put.status_code == 201, put.text
        cp = _xml(await client.get(f"{location}/cp"))
        assert cp.findtext(f"{CSIP_NS}connectionPointId") == "4123456789"


async def test_envoy_admin_lists_sites_and_serves_controls(tmp_path: Path) -> None:
    venv, url = venv_and_postgres_or_skip()
    async with (
        running_envoy(venv, url, tmp_path) as envoy,
        EnvoyAdmin(envoy) as admin,
        httpx.AsyncClient(base_url=envoy.base_url, headers=envoy.headers(), timeout=30) as client,
    ):
        assert await admin.sites() == []
        async with httpx.AsyncClient(base_url=envoy.admin_url, auth=("nobody", "wrong")) as other:
            assert (await other.get("/site")).status_code in (401, 403)

        location, lfdi = await _register_site(envoy, client)
        (site,) = await admin.sites()
        assert site["lfdi"] == lfdi and site["aggregator_id"] == envoy.aggregator_id
        site_id = await admin.site_id_of(lfdi.upper())
        assert location == f"/edev/{site_id}"

        program = await admin.create_program("doe", primacy=0)
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        await admin.add_envelopes(
            program,
            site_id,
            [
                Envelope(now - dt.timedelta(seconds=30), 600, export_limit_w=Decimal(1500)),
                Envelope(now + dt.timedelta(hours=1), 600, import_limit_w=Decimal(7000)),
            ],
        )
        await admin.set_default(program, export_limit_w=Decimal(1000), ramp_rate=Decimal(27))

        derp = f"{location}/derp/{program}"
        derc = _xml(await client.get(f"{derp}/derc", params={"s": 0, "l": 10}))
        controls = derc.findall(f"{NS}DERControl")
        assert len(controls) == 2
        assert {c.get("replyTo") for c in controls} == {f"{location}/rsps/site_control/rsp"}
        active = _xml(await client.get(f"{derp}/actderc", params={"s": 0, "l": 10}))
        (one,) = active.findall(f"{NS}DERControl")
        base = f"{NS}DERControlBase/{CSIP_NS}opModExpLimW"
        assert one.findtext(f"{base}/{NS}value") == "1500"
        assert one.findtext(f"{base}/{NS}multiplier") == "0"
        dderc = _xml(await client.get(f"{derp}/dderc"))
        assert dderc.findtext(f"{base}/{NS}value") == "1000"
        assert dderc.findtext(f"{NS}setGradW") == "27"

        # The multiplier follows envoy's runtime config; poll rates too.
        await admin.set_runtime_config(site_control_pow10_encoding=-1, dcap_pollrate_seconds=60)
        active = _xml(await client.get(f"{derp}/actderc", params={"s": 0, "l": 10}))
        (one,) = active.findall(f"{NS}DERControl")
        assert one.findtext(f"{base}/{NS}value") == "15000"
        assert one.findtext(f"{base}/{NS}multiplier") == "-1"
        assert _xml(await client.get("/dcap")).get("pollRate") == "60"

        # Deleting the future one cancels it: envoy keeps serving it, with EventStatus
        # currentStatus 2 (cancelled), so that clients learn of it.
        await admin.cancel_envelopes(
            program, now + dt.timedelta(minutes=30), now + dt.timedelta(hours=2)
        )
        assert len(await admin.envelopes(program)) == 1
        derc = _xml(await client.get(f"{derp}/derc", params={"s": 0, "l": 10}))
        status = {
            c.findtext(f"{NS}interval/{NS}start"): c.findtext(f"{NS}EventStatus/{NS}currentStatus")
            for c in derc.findall(f"{NS}DERControl")
        }
        assert status == {
            str(int((now - dt.timedelta(seconds=30)).timestamp())): "1",
            str(int((now + dt.timedelta(hours=1)).timestamp())): "2",
        }


async def test_envoy_takes_site_telemetry_and_der_capability(tmp_path: Path) -> None:
    venv, url = venv_and_postgres_or_skip()
    async with (
        running_envoy(venv, url, tmp_path) as envoy,
        EnvoyAdmin(envoy) as admin,
        httpx.AsyncClient(base_url=envoy.base_url, headers=envoy.headers(), timeout=30) as client,
    ):
        location, lfdi = await _register_site(envoy, client)
        site_id = await admin.site_id_of(lfdi)
        start = int(dt.datetime.now(dt.UTC).timestamp()) // 60 * 60 - 120
        # The site's active power (roleFlags 03: mirror + premises aggregation point), W, kind
        # 37 power, qualifier 2 average; exporting 1500 W.
        mup = (
            '<MirrorUsagePoint xmlns="urn:ieee:std:2030.5:ns">'
            "<mRID>A1000000000000000000000000000001</mRID><description>site</description>"
            "<roleFlags>03</roleFlags><serviceCategoryKind>0</serviceCategoryKind>"
            f"<status>1</status><deviceLFDI>{lfdi}</deviceLFDI>"
            "<MirrorMeterReading><mRID>A1000000000000000000000000000002</mRID>"
            f"<Reading><timePeriod><duration>60</duration><start>{start}</start></timePeriod>"
            "<value>-1500</value></Reading>"
            "<ReadingType><accumulationBehaviour>12</accumulationBehaviour><commodity>1</commodity>"
            "<dataQualifier>2</dataQualifier><flowDirection>1</flowDirection>"
            "<intervalLength>60</intervalLength><kind>37</kind><phase>0</phase>"
            "<powerOfTenMultiplier>0</powerOfTenMultiplier><uom>38</uom></ReadingType>"
            "</MirrorMeterReading></MirrorUsagePoint>"
        )
        made = await client.post("/mup", content=mup, headers={"Content-Type": SEP_XML})
        assert made.status_code == 201, made.text
        mup_href = made.headers["location"]
        assert mup_href.startswith("/mup/")
        # Later readings go to the MUP itself, by the MirrorMeterReading's mRID.
        later = (
            '<MirrorMeterReading xmlns="urn:ieee:std:2030.5:ns">'
            "<mRID>A1000000000000000000000000000002</mRID>"
            f"<Reading><timePeriod><duration>60</duration><start>{start + 60}</start>"
            "</timePeriod><value>-1400</value></Reading></MirrorMeterReading>"
        )
        posted = await client.post(mup_href, content=later, headers={"Content-Type": SEP_XML})
        assert posted.status_code == 201, posted.text
        begin = dt.datetime.fromtimestamp(start - 600, dt.UTC)
        readings = await admin.site_readings(site_id, 1, begin, begin + dt.timedelta(hours=1))
        assert [(r["duration_seconds"], r["value"]) for r in readings] == [
            (60, "-1500"),
            (60, "-1400"),
        ]

        der = f"{location}/der/1"
        assert (await client.get(f"{der}/dercap")).status_code == 404  # nothing reported yet
        capability = (
            '<DERCapability xmlns="urn:ieee:std:2030.5:ns">'
            "<modesSupported>00500088</modesSupported>"
            "<rtgMaxW><multiplier>0</multiplier><value>7000</value></rtgMaxW><type>4</type>"
            '<csipaus:doeModesSupported xmlns:csipaus="https://csipaus.org/ns">0F'
            "</csipaus:doeModesSupported></DERCapability>"
        )
        put = await client.put(
            f"{der}/dercap", content=capability, headers={"Content-Type": SEP_XML}
        )
        assert put.status_code == 204, put.text
        echoed = _xml(await client.get(f"{der}/dercap"))
        assert echoed.findtext(f"{NS}rtgMaxW/{NS}value") == "7000"
        assert echoed.findtext(f"{CSIP_NS}doeModesSupported") == "0F"


async def test_cactus_runner_all_01(tmp_path: Path) -> None:
    venv, url = venv_and_postgres_or_skip()
    identity = make_identity("cactus-aggregator")
    async with running_cactus(venv, url, tmp_path, identity) as runner:
        init = await runner.initialise("ALL-01", identity.cert_pem)
        assert init["testProcedure"] == "ALL-01" and init["isStarted"] is True
        status = await runner.status()
        assert status["testProcedureName"] == "ALL-01"
        assert status["statusSummary"] == "0/4 steps complete."

        # The walk ALL-01 expects of a client: DeviceCapability, EndDevices, Time, the DER list.
        async with httpx.AsyncClient(
            base_url=runner.url, headers=runner.headers(identity), timeout=30
        ) as client:
            for path in ("/dcap", "/edev", "/tm", "/edev/1/der"):
                answer = await client.get(path, params={"s": 0, "l": 100})
                assert answer.status_code == 200, f"{path}: {answer.text}"
        assert (await runner.status())["statusSummary"] == "4/4 steps complete."

        summary = await runner.finalize()
        assert summary.test_procedure == "ALL-01"
        assert summary.steps == {
            "GET-DCAP": True,
            "GET-EDEV-LIST": True,
            "GET-TM": True,
            "GET-DER": True,
        }
        assert [(c.type, c.success) for c in summary.criteria] == [("all-steps-complete", True)]
        assert summary.passed
        # The runner looks for envoy's logs under /shared (its container layout) and says so.
        assert all("/shared/" in e for e in summary.errors), summary.errors


async def test_cactus_runner_fails_a_silent_client(tmp_path: Path) -> None:
    venv, url = venv_and_postgres_or_skip()
    identity = make_identity("cactus-aggregator")
    async with running_cactus(venv, url, tmp_path, identity) as runner:
        summary = await runner.run_procedure("ALL-01", identity.cert_pem)
        assert not summary.passed
        assert summary.steps.get("GET-DCAP") is False
        assert [(c.type, c.success) for c in summary.criteria] == [("all-steps-complete", False)]
