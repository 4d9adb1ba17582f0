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

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
import pytest

from tests.support.csip_cactus import running_cactus
from tests.support.csip_server import (
    DEFAULT_VENV,
    EnvoyServer,
    ensure,
    make_identity,
    running_envoy,
)
from tests.support.csms_db import postgres_url_or_skip

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(900)]

NS = "{urn:ieee:std:2030.5:ns}"
CSIP_NS = "{https://csipaus.org/ns}"
SEP_XML = "application/sep+xml"
MAX_XML = 256 * 1024


def _setup() -> tuple[Path, str]:
    url = postgres_url_or_skip()
    venv = Path(os.environ.get("CSMS_TEST_CSIP_VENV", DEFAULT_VENV))
    return ensure(venv), url


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
    venv, url = _setup()
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
    venv, url = _setup()
    async with (
        running_envoy(venv, url, tmp_path) as envoy,
        httpx.AsyncClient(base_url=envoy.admin_url, auth=envoy.admin_auth, timeout=30) as admin,
        httpx.AsyncClient(base_url=envoy.base_url, headers=envoy.headers(), timeout=30) as client,
    ):
        empty = await admin.get("/site")
        assert empty.status_code == 200 and empty.json()["total_count"] == 0
        assert (await admin.get("/site", auth=("nobody", "wrong"))).status_code in (401, 403)

        location, lfdi = await _register_site(envoy, client)
        sites = (await admin.get("/site")).json()
        assert sites["total_count"] == 1
        site = sites["sites"][0]
        assert site["lfdi"] == lfdi and site["aggregator_id"] == envoy.aggregator_id
        assert location == f"/edev/{site['site_id']}"

        group = await admin.post("/site_control_group", json={"description": "doe", "primacy": 0})
        assert group.status_code == 201, group.text
        program = int(group.headers["location"].rsplit("/", 1)[1])
        control = {
            "site_id": site["site_id"],
            "calculation_log_id": None,
            "duration_seconds": 600,
            "start_time": "2030-01-01T00:00:00+00:00",
            "export_limit_watts": "1500",
        }
        made = await admin.post(f"/site_control_group/{program}/controls", json=[control])
        assert made.status_code == 201, made.text
        default = await admin.post(
            f"/site_control_group/{program}/default",
            json={
                "import_limit_watts": None,
                "export_limit_watts": {"value": "1000"},
                "generation_limit_watts": None,
                "load_limit_watts": None,
                "ramp_rate_percent_per_second": {"value": "27"},
            },
        )
        assert default.status_code == 204, default.text

        derc = _xml(await client.get(f"{location}/derp/{program}/derc", params={"s": 0, "l": 10}))
        (one,) = derc.findall(f"{NS}DERControl")
        assert one.get("replyTo") == f"{location}/rsps/site_control/rsp"
        export = one.find(f"{NS}DERControlBase/{CSIP_NS}opModExpLimW")
        assert export is not None and export.findtext(f"{NS}value") == "1500"
        dderc = _xml(await client.get(f"{location}/derp/{program}/dderc"))
        assert dderc.findtext(f"{NS}DERControlBase/{CSIP_NS}opModExpLimW/{NS}value") == "1000"
        assert dderc.findtext(f"{NS}setGradW") == "27"


async def test_cactus_runner_all_01(tmp_path: Path) -> None:
    venv, url = _setup()
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
    venv, url = _setup()
    identity = make_identity("cactus-aggregator")
    async with running_cactus(venv, url, tmp_path, identity) as runner:
        summary = await runner.run_procedure("ALL-01", identity.cert_pem)
        assert not summary.passed
        assert summary.steps.get("GET-DCAP") is False
        assert [(c.type, c.success) for c in summary.criteria] == [("all-steps-complete", False)]
