"""Issue 18 on OCPP 2.1 against a third-party station: Node `ocpp-rpc` 2.2.1 in strict mode
over `ocpp2.1` (tests/interop/client.js). A site envelope reaches it as the envelope profile and
SetDERControl LimitMaxDischarge, and its removal as ClearChargingProfile and ClearDERControl;
ocpp-rpc validates each CALL against the OCA 2.1 schemas and our CSMS each answer. A station
answering NotSupported keeps the profile only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from csms.domain.envelope_der import control_id
from tests.support.api_harness import ApiHarness
from tests.support.interop import InteropStation, interop_station
from tests.support.interop_fixtures import INTEROP_STATION_ID, STATION_PASSWORD, csms_for_interop

pytestmark = pytest.mark.timeout(120)
API = "/api/v1"
SITE = "home-interop"


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[ApiHarness]:
    async with csms_for_interop(tmp_path) as harness:
        yield harness


@pytest.fixture
async def station21(api: ApiHarness) -> AsyncIterator[InteropStation]:
    assert api.ocpp_url is not None
    async with interop_station() as node_station:
        connected = await node_station.connect(
            api.ocpp_url, INTEROP_STATION_ID, password=STATION_PASSWORD, protocols=["ocpp2.1"]
        )
        assert connected["protocol"] == "ocpp2.1"
        assert (await node_station.boot())["status"] == "Accepted"
        created = await api.client.post(
            f"{API}/sites", json={"id": SITE, "name": "Home", "station_ids": [INTEROP_STATION_ID]}
        )
        assert created.status_code == 201, created.text
        yield node_station
        # Nothing either side sent, over the whole test, broke the 2.1 schemas.
        await node_station.expect_no_strict_violations(origin=None)


async def put_envelope(api: ApiHarness, export_w: float) -> None:
    now = datetime.now(UTC)
    envelope = {
        "start": (now - timedelta(minutes=1)).isoformat(),
        "end": (now + timedelta(hours=2)).isoformat(),
        "export_limit_w": export_w,
    }
    answer = await api.client.put(
        f"{API}/sites/{SITE}/envelopes/operator", json={"envelopes": [envelope]}
    )
    assert answer.status_code == 200, answer.text


async def test_r04_envelope_as_limit_max_discharge_to_a_strict_third_party_21_station(
    api: ApiHarness, station21: InteropStation
) -> None:
    since = len(station21.events)
    await put_envelope(api, 2200.0)
    profile = await station21.wait_for_call("SetChargingProfile", since=since)
    assert profile["payload"]["chargingProfile"]["id"] == 62007
    sent = (await station21.wait_for_call("SetDERControl", since=since))["payload"]
    assert sent["controlId"] == control_id(SITE)
    assert sent["controlType"] == "LimitMaxDischarge" and sent["isDefault"] is False
    # No rating reported: the 22 kW default, 2.2 kW of it.
    assert sent["limitMaxDischarge"]["pctMaxDischargePower"] == 10.0
    assert sent["limitMaxDischarge"]["duration"] > 7000
    last = await api.services.envelopes.der.last_attempt(INTEROP_STATION_ID)
    assert (last.action, last.status) == ("SetDERControl", "Accepted")

    since = len(station21.events)
    removed = await api.client.delete(f"{API}/sites/{SITE}/envelopes/operator")
    assert removed.status_code == 204
    await station21.wait_for_call("ClearChargingProfile", since=since)
    cleared = await station21.wait_for_call("ClearDERControl", since=since)
    assert cleared["payload"] == {"isDefault": False, "controlId": control_id(SITE)}


async def test_r04_a_third_party_station_without_the_control_keeps_the_profile(
    api: ApiHarness, station21: InteropStation
) -> None:
    await station21.set_handler("SetDERControl", response={"status": "NotSupported"})
    since = len(station21.events)
    await put_envelope(api, 2200.0)
    await station21.wait_for_call("SetDERControl", since=since)
    view = (await api.client.get(f"{API}/sites/{SITE}/envelope")).json()
    assert view["stations"][0]["status"] == "Accepted" and view["stations"][0]["enforced"]
    last = await api.services.envelopes.der.last_attempt(INTEROP_STATION_ID)
    assert (last.action, last.status) == ("SetDERControl", "NotSupported")
