"""Issue 18 on OCPP 2.1 through DER control (R04): a CSMS on SQLite, a strict 2.1 station (the
`ocpp` library's v21 ChargePoint, every CALL checked against the 2.1 schemas) and a 2.0.1
station in one site, over loopback websockets. Beside the ChargingStationMaxProfile, the 2.1
station gets its discharge share as SetDERControl LimitMaxDischarge (what is sent: controlId,
priority, startTime/duration, pctMaxDischargePower), replaced on change, re-sent when the
envelope period ends and on reconnect, cleared when the envelopes go; every attempt recorded.
A 2.1 station answering NotSupported keeps the profile."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from ocpp.messages import Call
from ocpp.v21 import call as call21
from ocpp.v201 import call as call201

from csms.domain.envelope_der import control_id
from csms.domain.envelopes import ChargerBounds, share
from tests.integration.test_envelope_enforcement import (
    RATED_21,
    RATED_201,
    profile_calls,
    put_envelopes,
    report_rating,
    until_enforced,
)
from tests.support.api_harness import STATION_PASSWORD, ApiHarness
from tests.support.v2g_harness import iso, v2g_api, v2g_station
from tests.support.v21_station import V21Station, connected_v21_station

V1 = "/api/v1"


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[ApiHarness]:
    async with v2g_api(tmp_path, command_timeout_s=5.0) as harness:
        yield harness


def der_calls(station: Any, action: str = "SetDERControl") -> list[dict[str, Any]]:
    return [r.payload for r in station.received if r.action == action]


def expected_pct(export_w: float) -> float:
    """The 2.1 station's share of an export limit (split by rating), as % of its rating."""
    found = share(ChargerBounds(0.0, export_w), [(RATED_201, RATED_201), (RATED_21, RATED_21)])
    return math.floor(found[1].max_discharge_w / RATED_21 * 10_000) / 100


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def make_site(api: ApiHarness) -> None:
    created = await api.client.post(
        f"{V1}/sites", json={"id": "home-1", "name": "Home", "station_ids": ["CS201", "CS21"]}
    )
    assert created.status_code == 201, created.text


async def test_r04_envelope_share_as_limit_max_discharge_replaced_renewed_and_cleared(
    api: ApiHarness,
) -> None:
    assert api.ocpp_url is not None
    now = datetime.now(UTC).replace(microsecond=0)
    await api.add_station("CS21")
    async with (
        v2g_station(api, "CS201") as cs201,
        connected_v21_station(api.ocpp_url, "CS21", STATION_PASSWORD) as cs21,
    ):
        await report_rating(cs201, call201, RATED_201)
        await report_rating(cs21, call21, RATED_21)
        await make_site(api)
        assert der_calls(cs21) == []  # no envelope: nothing sent

        # 1. An export limit for 6 h, then an open-ended default envelope.
        start = now - timedelta(minutes=1)
        end = now + timedelta(hours=6)
        envelopes = [
            {"control_id": "evening", "start": iso(start), "end": iso(end), "export_limit_w": 5000},
            {"is_default": True, "start": iso(start), "export_limit_w": 8000},
        ]
        await put_envelopes(api, envelopes)
        await until_enforced(api)
        assert len(profile_calls(cs21)) == 1  # the profile, the hard bound, is sent as before
        [sent] = der_calls(cs21)
        assert sent["isDefault"] is False
        assert sent["controlId"] == control_id("home-1") and len(sent["controlId"]) <= 36
        assert sent["controlType"] == "LimitMaxDischarge"
        limit = sent["limitMaxDischarge"]
        assert limit["priority"] == 0
        assert limit["pctMaxDischargePower"] == expected_pct(5000)
        assert when(limit["startTime"]) == start
        assert limit["duration"] == int((end - start).total_seconds())
        assert der_calls(cs201) == []  # 2.0.1: no DER control, the profile only
        assert all(r.action != "SetDERControl" for r in cs201.received)
        der = api.services.envelopes.der
        last = await der.last_attempt("CS21")
        assert (last.action, last.status, last.payload) == ("SetDERControl", "Accepted", sent)
        assert last.resend_at == end

        # 2. A change: the same controlId again, so the station replaces its control.
        envelopes[0] = dict(envelopes[0], export_limit_w=2000)
        await put_envelopes(api, envelopes)
        changed = der_calls(cs21)[-1]
        assert changed["controlId"] == sent["controlId"]
        assert changed["limitMaxDischarge"]["pctMaxDischargePower"] == expected_pct(2000)

        # 3. The 6 h end: the refresh round sends the default envelope's share, open-ended.
        service = api.services.envelopes
        assert await service.refresh_due() == []
        later = end + timedelta(seconds=1)
        service._clock = lambda: later
        assert "CS21" in await service.refresh_due()
        renewed = der_calls(cs21)[-1]["limitMaxDischarge"]
        assert renewed["pctMaxDischargePower"] == expected_pct(8000)
        assert "duration" not in renewed and when(renewed["startTime"]) <= later
        service._clock = lambda: datetime.now(UTC)

        # 4. No transfer (energize false): 0 %.
        await put_envelopes(api, [{"start": iso(start), "energize": False}])
        assert der_calls(cs21)[-1]["limitMaxDischarge"]["pctMaxDischargePower"] == 0.0

        # 5. The envelopes removed: ClearDERControl of that control, recorded.
        removed = await api.client.delete(f"{V1}/sites/home-1/envelopes/operator")
        assert removed.status_code == 204
        assert der_calls(cs21, "ClearDERControl") == [
            {"isDefault": False, "controlId": control_id("home-1")}
        ]
        last = await der.last_attempt("CS21")
        assert (last.action, last.status) == ("ClearDERControl", "Accepted")
        # Nothing held any more: a refresh round does not clear again.
        await service.refresh_due()
        assert len(der_calls(cs21, "ClearDERControl")) == 1


async def test_r04_a_booting_station_gets_the_control_again(api: ApiHarness) -> None:
    assert api.ocpp_url is not None
    await api.add_station("CS21")
    await api.client.post(
        f"{V1}/sites", json={"id": "home-1", "name": "Home", "station_ids": ["CS21"]}
    )
    now = datetime.now(UTC)
    await put_envelopes(api, [{"start": iso(now), "export_limit_w": 2000}])
    der = api.services.envelopes.der
    # Never connected: its OCPP version is not known yet (taken as 2.0.1), so the profile was
    # tried (Offline) but no DER control.
    assert (await der.last_attempt("CS21")).action is None
    async with connected_v21_station(api.ocpp_url, "CS21", STATION_PASSWORD) as cs21:
        found = await cs21.wait_for_call("SetDERControl")  # after BootNotification
        # No rating reported: the documented 22 kW default, 2 kW of it.
        assert found.payload["limitMaxDischarge"]["pctMaxDischargePower"] == 9.09
        await until_enforced(api)
    # Known as 2.1 now: a change while it is away is recorded Offline, then sent on its boot.
    await put_envelopes(api, [{"start": iso(now), "export_limit_w": 1100}])
    last = await der.last_attempt("CS21")
    assert (last.action, last.status) == ("SetDERControl", "Offline")
    async with connected_v21_station(api.ocpp_url, "CS21", STATION_PASSWORD) as cs21:
        found = await cs21.wait_for_call("SetDERControl")
        assert found.payload["limitMaxDischarge"]["pctMaxDischargePower"] == 5.0
        await until_enforced(api)


async def test_r04_a_station_without_limit_max_discharge_keeps_the_profile(
    api: ApiHarness,
) -> None:
    assert api.ocpp_url is not None
    await api.add_station("CS21")
    await api.client.post(
        f"{V1}/sites", json={"id": "home-1", "name": "Home", "station_ids": ["CS21"]}
    )
    async with connected_v21_station(api.ocpp_url, "CS21", STATION_PASSWORD) as cs21:

        def answer(message: Call) -> dict[str, Any]:
            if message.action == "SetDERControl":
                return {"status": "NotSupported"}
            return V21Station.answer(cs21, message)

        cs21.answer = answer  # type: ignore[method-assign]
        now = datetime.now(UTC)
        view = await put_envelopes(api, [{"start": iso(now), "export_limit_w": 2000}])
        assert view["stations"][0]["status"] == "Accepted"  # the profile: the hard bound
        assert view["stations"][0]["enforced"] is True
        last = await api.services.envelopes.der.last_attempt("CS21")
        assert (last.action, last.status) == ("SetDERControl", "NotSupported")
        # It holds no such control: removing the envelope clears the profile only.
        removed = await api.client.delete(f"{V1}/sites/home-1/envelopes/operator")
        assert removed.status_code == 204
        assert der_calls(cs21, "ClearDERControl") == []
        assert [r.action for r in cs21.received].count("ClearChargingProfile") == 1


async def test_r04_a_station_leaving_the_site_has_the_control_cleared(api: ApiHarness) -> None:
    assert api.ocpp_url is not None
    await api.add_station("CS21")
    async with connected_v21_station(api.ocpp_url, "CS21", STATION_PASSWORD) as cs21:
        await api.client.post(
            f"{V1}/sites", json={"id": "home-1", "name": "Home", "station_ids": ["CS21"]}
        )
        await put_envelopes(api, [{"start": iso(datetime.now(UTC)), "export_limit_w": 2000}])
        assert len(der_calls(cs21)) == 1
        deleted = await api.client.delete(f"{V1}/sites/home-1")
        assert deleted.status_code == 204
        assert der_calls(cs21, "ClearDERControl") == [
            {"isDefault": False, "controlId": control_id("home-1")}
        ]
        assert [r.action for r in cs21.received].count("ClearChargingProfile") == 1
