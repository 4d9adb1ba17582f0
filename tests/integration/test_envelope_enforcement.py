"""Issue 18, enforcement on the CSMS side: a CSMS on SQLite, a strict 2.0.1 station (the `ocpp`
library's v201 ChargePoint) and a strict 2.1 station (v21, offering only ocpp2.1) in one site,
over loopback websockets. An operator envelope with an export limit reaches each station as the
ChargingStationMaxProfile of envelope_wire.md (limit, 2.1 dischargeLimit, customData), a change
is re-sent, a removal clears it, a reconnecting station gets it again, and the V2G plan of a
discharging car is re-planned within the export bound."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from ocpp.v21 import call as call21
from ocpp.v201 import call as call201

from csms.domain.envelopes import share
from tests.support.api_harness import STATION_PASSWORD, ApiHarness
from tests.support.api_station import connected_station
from tests.support.v2g_harness import (
    LEAF,
    iso,
    meter_value,
    transaction_event,
    v2g_api,
    v2g_station,
)
from tests.support.v21_station import connected_v21_station

V1 = "/api/v1"
RATED_201 = 7400.0
RATED_21 = 11000.0


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[ApiHarness]:
    async with v2g_api(tmp_path, command_timeout_s=5.0) as harness:
        yield harness


async def report_rating(station: Any, call_module: Any, watts: float) -> None:
    """NotifyReport: EVSE 1's Power with its rated maxLimit (what the agent reports)."""
    await station.call(
        call_module.NotifyReport(
            request_id=1,
            generated_at="2026-01-01T00:00:00Z",
            seq_no=0,
            report_data=[
                {
                    "component": {"name": "EVSE", "evse": {"id": 1}},
                    "variable": {"name": "Power"},
                    "variable_attribute": [{"type": "Actual", "value": "0"}],
                    "variable_characteristics": {
                        "unit": "W",
                        "data_type": "decimal",
                        "max_limit": watts,
                        "supports_monitoring": False,
                    },
                }
            ],
        ),
        suppress=False,
    )


def profile_calls(station: Any) -> list[dict[str, Any]]:
    return [
        r.payload
        for r in station.received
        if r.action == "SetChargingProfile"
        and r.payload["chargingProfile"]["chargingProfilePurpose"] == "ChargingStationMaxProfile"
    ]


def periods(payload: dict[str, Any]) -> list[dict[str, Any]]:
    schedules = payload["chargingProfile"]["chargingSchedule"]
    assert len(schedules) == 1
    result: list[dict[str, Any]] = schedules[0]["chargingSchedulePeriod"]
    return result


def shares(limit_w: float) -> tuple[float, float]:
    """What an export limit leaves each station (2.0.1, 2.1): split by their ratings."""
    from csms.domain.envelopes import ChargerBounds

    found = share(ChargerBounds(0.0, limit_w), [(RATED_201, RATED_201), (RATED_21, RATED_21)])
    return round(found[0].max_discharge_w, 1), round(found[1].max_discharge_w, 1)


async def put_envelopes(api: ApiHarness, envelopes: list[dict[str, Any]]) -> dict[str, Any]:
    response = await api.client.put(
        f"{V1}/sites/home-1/envelopes/operator", json={"envelopes": envelopes}
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def until_enforced(api: ApiHarness, wait_s: float = 5.0) -> None:
    """Until the site's view shows every station holding the current profile (the station's
    answer is recorded a moment after it received the request)."""
    deadline = asyncio.get_running_loop().time() + wait_s
    while True:
        view = (await api.client.get(f"{V1}/sites/home-1/envelope")).json()
        if all(s["enforced"] and s["status"] == "Accepted" for s in view["stations"]):
            return
        assert asyncio.get_running_loop().time() < deadline, view["stations"]
        await asyncio.sleep(0.05)


async def _prices(api: ApiHarness, start: datetime) -> None:
    intervals = []
    for k in range(16):  # cheap 2 h, dear 2 h (discharge), then mid
        price = 10.0 if k < 4 else 60.0 if k < 8 else 15.0
        intervals.append(
            {
                "start": iso(start + timedelta(minutes=30 * k)),
                "interval_s": 1800,
                "import_c_kwh": price,
                "export_c_kwh": price * 0.9,
            }
        )
    response = await api.client.put(f"{V1}/prices", json={"intervals": intervals})
    assert response.status_code == 200, response.text


async def test_envelope_reaches_both_versions_changes_clears_and_bounds_the_plan(
    api: ApiHarness,
) -> None:
    assert api.ocpp_url is not None
    now = datetime.now(UTC)
    await _prices(api, now.replace(minute=0, second=0, microsecond=0))
    await api.add_station("CS21")
    async with (
        v2g_station(api, "CS201") as cs201,
        connected_v21_station(api.ocpp_url, "CS21", STATION_PASSWORD) as cs21,
    ):
        await report_rating(cs201, call201, RATED_201)
        await report_rating(cs21, call21, RATED_21)
        created = await api.client.post(
            f"{V1}/sites",
            json={"id": "home-1", "name": "Home", "station_ids": ["CS201", "CS21"]},
        )
        assert created.status_code == 201, created.text
        assert profile_calls(cs201) == [] and profile_calls(cs21) == []  # nothing to enforce

        # A car discharging into the evening peak at CS201 (2.0.1).
        vehicle = dict(LEAF, id="leaf", station_id="CS201", evse_id=1)
        assert (await api.client.post(f"{V1}/vehicles", json=vehicle)).status_code == 201
        meter = [meter_value(now, soc_pct=70.0, import_wh=0.0, export_wh=0.0)]
        await transaction_event(cs201, "Started", "tx-1", 0, now, meter=meter)
        free = await api.client.post(f"{V1}/stations/CS201/v2g/optimize")
        assert free.status_code == 200, free.text
        assert min(free.json()["plan"]["power_kw"]) < -5.0  # unconstrained: near 7 kW out

        # 1. An export limit for 6 h, then a default envelope.
        start = iso(now - timedelta(minutes=1))
        view = await put_envelopes(
            api,
            [
                {
                    "control_id": "evening",
                    "start": start,
                    "end": iso(now + timedelta(hours=6)),
                    "export_limit_w": 5000,
                    "ramp_rate_pct_per_s": 0.5,
                },
                {"is_default": True, "start": start, "export_limit_w": 8000},
            ],
        )
        sent201, sent21 = profile_calls(cs201)[-1], profile_calls(cs21)[-1]
        d201, d21 = shares(5000)
        for sent, rated, discharge, v21 in (
            (sent201, RATED_201, d201, False),
            (sent21, RATED_21, d21, True),
        ):
            assert sent["evseId"] == 0
            profile = sent["chargingProfile"]
            assert profile["id"] == 62007 and profile["stackLevel"] == 8
            assert profile["chargingProfileKind"] == "Absolute"
            assert profile["customData"] == {
                "vendorId": "org.openv2g.envelope",
                "siteId": "home-1",
                "source": "operator",
                "controlId": "evening",
            }
            schedule = profile["chargingSchedule"][0]
            assert schedule["id"] == 62007 and schedule["chargingRateUnit"] == "W"
            assert schedule["startSchedule"].endswith("Z") and "." not in schedule["startSchedule"]
            first, after = periods(sent)
            assert first["startPeriod"] == 0
            assert first["limit"] == rated  # no import limit: the station's rating
            assert first["customData"] == {
                "vendorId": "org.openv2g.envelope",
                "dischargeLimitW": discharge,
                "rampRatePctPerS": 0.5,
            }
            began = datetime.fromisoformat(schedule["startSchedule"].replace("Z", "+00:00"))
            ends = int((now + timedelta(hours=6) - began).total_seconds())
            assert after["startPeriod"] in (ends - 1, ends, ends + 1)  # whole seconds
            assert after["customData"]["dischargeLimitW"] == shares(8000)[1 if v21 else 0]
            assert "rampRatePctPerS" not in after["customData"]
            if v21:
                assert first["dischargeLimit"] == -discharge
                assert after["dischargeLimit"] == -shares(8000)[1]
            else:
                assert "dischargeLimit" not in first  # not a 2.0.1 field
        assert [s["status"] for s in view["stations"]] == ["Accepted", "Accepted"]
        assert all(s["enforced"] for s in view["stations"])
        bounds = [s["max_discharge_w"] for s in view["stations"]]
        assert bounds == [pytest.approx(d201, abs=0.1), pytest.approx(d21, abs=0.1)]

        # The change re-planned the car: its discharge within CS201's export share.
        tx_profiles = [
            r.payload
            for r in cs201.received
            if r.action == "SetChargingProfile"
            and r.payload["chargingProfile"]["chargingProfilePurpose"] == "TxProfile"
        ]
        planned = [p["limit"] for p in periods(tx_profiles[-1])]
        assert min(planned) < 0  # still discharging into the peak ...
        assert min(planned) >= -d201 - 0.5  # ... but not beyond its share (W, rounded)
        current = (await api.client.get(f"{V1}/stations/CS201/v2g/plan")).json()
        assert min(current["plan"]["power_kw"]) >= -d201 / 1000.0 - 1e-6

        # 2. A change: re-sent to both.
        await put_envelopes(
            api,
            [
                {
                    "control_id": "peak-2",
                    "start": start,
                    "end": iso(now + timedelta(hours=6)),
                    "export_limit_w": 3000,
                    "import_limit_w": 4000,
                }
            ],
        )
        assert len(profile_calls(cs201)) == 2 and len(profile_calls(cs21)) == 2
        first201 = periods(profile_calls(cs201)[-1])[0]
        first21 = periods(profile_calls(cs21)[-1])[0]
        assert first201["customData"]["dischargeLimitW"] == shares(3000)[0]
        assert first21["dischargeLimit"] == -shares(3000)[1]
        assert first201["limit"] == shares(4000)[0]  # import limit shared the same way
        assert "rampRatePctPerS" not in first201["customData"]
        assert profile_calls(cs21)[-1]["chargingProfile"]["customData"]["controlId"] == "peak-2"
        last = periods(profile_calls(cs201)[-1])[-1]  # after 6 h: no envelope, the rating
        assert last["limit"] == RATED_201 and last["customData"]["dischargeLimitW"] == RATED_201
        replanned = [
            r.payload
            for r in cs201.received
            if r.action == "SetChargingProfile"
            and r.payload["chargingProfile"]["chargingProfilePurpose"] == "TxProfile"
        ][-1]
        assert min(p["limit"] for p in periods(replanned)) >= -shares(3000)[0] - 0.5

        # 3. Removal: ClearChargingProfile 62007 to both.
        removed = await api.client.delete(f"{V1}/sites/home-1/envelopes/operator")
        assert removed.status_code == 204
        for station in (cs201, cs21):
            clears = [r.payload for r in station.received if r.action == "ClearChargingProfile"]
            assert clears == [{"chargingProfileId": 62007}]
        view = (await api.client.get(f"{V1}/sites/home-1/envelope")).json()
        assert view["in_force"] is None
        assert [s["action"] for s in view["stations"]] == ["ClearChargingProfile"] * 2

        # 4. No transfer at all (energize false): limit 0 and dischargeLimitW 0.
        await put_envelopes(api, [{"start": start, "energize": False}])
        stop = periods(profile_calls(cs21)[-1])[0]
        assert (stop["limit"], stop["dischargeLimit"]) == (0.0, 0.0)
        assert stop["customData"]["dischargeLimitW"] == 0.0


async def test_a_reconnecting_station_gets_the_envelope_again(api: ApiHarness) -> None:
    assert api.ocpp_url is not None
    api.services.envelopes.reconnect_grace_s = 0.2
    await api.add_station("CS1")
    await api.client.post(
        f"{V1}/sites", json={"id": "home-1", "name": "Home", "station_ids": ["CS1"]}
    )
    now = datetime.now(UTC)
    # Sent while the station is away: recorded as Offline.
    view = await put_envelopes(api, [{"start": iso(now), "export_limit_w": 2000}])
    assert view["stations"][0]["status"] == "Offline"
    assert view["stations"][0]["enforced"] is False

    async with connected_station(api.ocpp_url, "CS1", STATION_PASSWORD) as booted:
        found = await booted.wait_for_call("SetChargingProfile")  # after BootNotification
        first = periods(found.payload)[0]
        assert first["customData"]["dischargeLimitW"] == 2000.0
        assert first["limit"] == 22000.0  # no rating reported: the documented default
        await until_enforced(api)
    # Back without booting (a network blip): sent again after the grace.
    async with connected_station(api.ocpp_url, "CS1", STATION_PASSWORD, boot=False) as back:
        again = await back.wait_for_call("SetChargingProfile")
        assert again.payload["chargingProfile"]["id"] == 62007
        await until_enforced(api)


async def test_a_timeline_longer_than_the_station_holds_is_sent_again_in_time(
    api: ApiHarness,
) -> None:
    """30 hourly envelopes and PeriodsPerSchedule 24 (the default): the 24th period is the
    tightest of the rest; after half the 24 h the station gets the timeline from then."""
    assert api.ocpp_url is not None
    await api.add_station("CS1")
    await api.client.post(
        f"{V1}/sites", json={"id": "home-1", "name": "Home", "station_ids": ["CS1"]}
    )
    now = datetime.now(UTC).replace(microsecond=0)
    hourly = [
        {
            "control_id": f"h{k}",
            "start": iso(now + k * timedelta(hours=1)),
            "end": iso(now + (k + 1) * timedelta(hours=1)),
            "export_limit_w": 1000.0 + 100 * (k % 7),
        }
        for k in range(-1, 30)
    ]
    envelopes = api.services.envelopes
    # The rounds are run by hand below, on a moved clock: the background round (every 30 s)
    # would run them too on a slow machine and send a profile of its own.
    await envelopes.close()
    async with connected_station(api.ocpp_url, "CS1", STATION_PASSWORD) as station:
        await put_envelopes(api, hourly)
        sent = periods(profile_calls(station)[-1])
        assert len(sent) == 24
        tail = sent[-1]
        # Hour 23, then no envelope (the rating) after 24 h: the tighter of the two.
        assert tail["customData"]["dischargeLimitW"] == 1000.0 + 100 * (23 % 7)
        await until_enforced(api)
        assert await envelopes.refresh_due() == []  # nothing due yet
        before = len(profile_calls(station))
        later = now + timedelta(hours=12, minutes=1)
        envelopes._clock = lambda: later  # the service's clock, moved on
        assert await envelopes.refresh_due() == ["CS1"]
        assert len(profile_calls(station)) == before + 1
        again = periods(profile_calls(station)[-1])
        # From 12:01 on: hours 12 to 29, then no envelope: all of it fits now.
        assert len(again) == 19
        assert again[0]["customData"]["dischargeLimitW"] == 1000.0 + 100 * (12 % 7)
        assert again[-1]["customData"]["dischargeLimitW"] == 22000.0
        await until_enforced(api)


async def test_envelopes_stored_by_another_process_reach_the_station_in_the_refresh_round(
    api: ApiHarness,
) -> None:
    """The CSIP-AUS client on another node (or `csms site`) stores envelopes without this
    node's EnvelopeService knowing: the refresh round sees the change and sends it."""
    from csms.domain.envelopes import OperatingEnvelope
    from csms.persistence.repositories import sites as srepo

    assert api.ocpp_url is not None
    await api.add_station("CS1")
    await api.client.post(
        f"{V1}/sites", json={"id": "home-1", "name": "Home", "station_ids": ["CS1"]}
    )
    async with connected_station(api.ocpp_url, "CS1", STATION_PASSWORD) as station:
        envelopes = api.services.envelopes
        assert await envelopes.refresh_due() == []  # no envelope, nothing held
        now = datetime.now(UTC)
        stored = OperatingEnvelope(
            "home-1", "csip-aus", "mrid-1", False, now - timedelta(minutes=1), None, now,
            export_limit_w=1500.0,
        )  # fmt: skip
        await api.services.db.write(
            lambda c: srepo.replace_envelopes(c, "home-1", "csip-aus", [stored])
        )
        assert await envelopes.refresh_due() == ["CS1"]
        sent = profile_calls(station)[-1]["chargingProfile"]
        assert sent["customData"]["source"] == "csip-aus"
        assert sent["customData"]["controlId"] == "mrid-1"
        assert periods(profile_calls(station)[-1])[0]["customData"]["dischargeLimitW"] == 1500.0
        await until_enforced(api)
        assert await envelopes.refresh_due() == []  # held: nothing more to send

        await api.services.db.write(lambda c: srepo.replace_envelopes(c, "home-1", "csip-aus", []))
        assert await envelopes.refresh_due() == ["CS1"]
        await station.wait_for_call("ClearChargingProfile")


async def test_a_ramp_time_reaches_the_station_as_periods_stepped_from_the_held_bounds(
    api: ApiHarness,
) -> None:
    """rampTms (CACTUS ALL-25): the station holds a 4000 W export envelope; a new one of
    1000 W with a 60 s ramp arrives as a profile whose periods step down from 4000 W to 1000 W
    over the 60 s (never above the straight line), then 1000 W; a ramp up (6000 W, 60 s) sent
    during it starts where the station is in the down ramp and steps up."""
    assert api.ocpp_url is not None
    await api.add_station("CS1")
    await api.client.post(
        f"{V1}/sites", json={"id": "home-1", "name": "Home", "station_ids": ["CS1"]}
    )
    async with connected_station(api.ocpp_url, "CS1", STATION_PASSWORD) as station:
        now = datetime.now(UTC)
        await put_envelopes(api, [{"start": iso(now), "export_limit_w": 4000}])
        await until_enforced(api)
        assert periods(profile_calls(station)[-1])[0]["customData"]["dischargeLimitW"] == 4000.0

        start = datetime.now(UTC)
        view = await put_envelopes(
            api, [{"start": iso(start), "export_limit_w": 1000, "ramp_time_s": 60}]
        )
        assert view["in_force"]["ramp_time_s"] == 60.0
        await until_enforced(api)
        sent = profile_calls(station)[-1]
        down = [p for p in periods(sent) if p["startPeriod"] < 86400]  # not the 24 h tail
        schedule_start = datetime.fromisoformat(
            sent["chargingProfile"]["chargingSchedule"][0]["startSchedule"]
        )
        values = [p["customData"]["dischargeLimitW"] for p in down]
        offsets = [p["startPeriod"] for p in down]
        assert 3 <= len(down) <= 12, down
        assert values == sorted(values, reverse=True) and values[0] <= 4000.0
        assert all(1000.0 <= v <= 4000.0 for v in values)
        ends_at = (start - schedule_start).total_seconds() + 60
        # 1000 W from the ramp's end on (start + 60 s, within the profile's whole second).
        assert values[-1] == 1000.0 and offsets[-1] <= ends_at + 1
        for offset, value in zip(offsets, values, strict=True):
            line = 4000.0 - 3000.0 * min(1.0, max(0.0, (offset - ends_at + 60) / 60))
            assert value <= line + 0.1, (offset, value, line)
        # The charge bound (no import limit: the 22 kW default rating) does not move.
        assert {p["limit"] for p in down} == {22000.0}

        await put_envelopes(
            api,
            [{"start": iso(datetime.now(UTC)), "export_limit_w": 6000, "ramp_time_s": 60}],
        )
        await until_enforced(api)
        up = [
            p["customData"]["dischargeLimitW"]
            for p in periods(profile_calls(station)[-1])
            if p["startPeriod"] < 86400
        ]
        # From where the station is (a step of the down ramp it holds), up to 6000 W.
        assert up[0] in values and up[0] < 4000.0, (up, values)
        assert up == sorted(up) and up[-1] == 6000.0, up
