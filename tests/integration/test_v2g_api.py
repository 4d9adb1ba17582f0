"""V2G REST API over the real app (httpx ASGI), a migrated SQLite database and, where a station
is needed, the real OCPP server with a test station on a loopback websocket."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from csms.api.v2g_schemas import DispatchCreate
from csms.services.v2g import V2gService, V2gSettings
from csms.v2g.prices import AEST
from tests.support.api_harness import ApiHarness
from tests.support.api_station import ApiTestStation
from tests.support.v2g_harness import (
    LEAF,
    NEM_FILE,
    iso,
    meter_value,
    notify_ev_needs,
    notify_grid_event,
    transaction_event,
    v2g_api,
    v2g_of,
    v2g_station,
)

V1 = "/api/v1"


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[ApiHarness]:
    async with v2g_api(tmp_path, command_timeout_s=2.0) as harness:
        yield harness


@pytest.fixture
async def station(api: ApiHarness) -> AsyncIterator[ApiTestStation]:
    async with v2g_station(api, "CS1") as cs:
        yield cs


def _hour_floor(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


async def _put_day_of_prices(api: ApiHarness, start: datetime) -> None:
    """48 half-hours: 10 c/kWh for 4 h, then 60 c/kWh for 2 h (peak), then 15 c/kWh."""
    intervals = []
    for k in range(48):
        price = 10.0 if k < 8 else 60.0 if k < 12 else 15.0
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
    assert response.json()["stored"] == 48


async def _plugged_leaf(
    api: ApiHarness, station: ApiTestStation, soc_pct: float = 60.0, tx_id: str = "tx-1"
) -> datetime:
    """Leaf linked to CS1/EVSE 1 with a running transaction that reported its SoC."""
    body = dict(LEAF, station_id="CS1", evse_id=1)
    assert (await api.client.post(f"{V1}/vehicles", json=body)).status_code == 201
    now = datetime.now(UTC)
    meter = [meter_value(now, soc_pct=soc_pct, import_wh=1000.0, export_wh=0.0)]
    await transaction_event(station, "Started", tx_id, 0, now, meter=meter)
    return now


# ---- vehicles ---------------------------------------------------------------------------------


async def test_vehicle_crud_and_link(api: ApiHarness) -> None:
    created = await api.client.post(f"{V1}/vehicles", json=LEAF)
    assert created.status_code == 201, created.text
    assert created.json()["capacity_kwh"] == 40.0
    assert created.json()["station_id"] is None
    again = await api.client.post(f"{V1}/vehicles", json=LEAF)
    assert again.status_code == 409
    listed = (await api.client.get(f"{V1}/vehicles")).json()
    assert [v["id"] for v in listed] == ["leaf-1"]
    patched = await api.client.patch(
        f"{V1}/vehicles/leaf-1", json={"max_discharge_kw": 5.0, "target_soc": 0.9}
    )
    assert patched.status_code == 200
    assert patched.json()["max_discharge_kw"] == 5.0
    assert patched.json()["target_soc"] == 0.9
    unknown_station = await api.client.put(
        f"{V1}/vehicles/leaf-1/link", json={"station_id": "NOPE", "evse_id": 1}
    )
    assert unknown_station.status_code == 404
    await api.add_station("CS9")
    linked = await api.client.put(
        f"{V1}/vehicles/leaf-1/link", json={"station_id": "CS9", "evse_id": 1}
    )
    assert linked.status_code == 200
    assert (await api.client.get(f"{V1}/vehicles", params={"station_id": "CS9"})).json()[0][
        "id"
    ] == "leaf-1"
    assert (await api.client.delete(f"{V1}/vehicles/leaf-1")).status_code == 204
    assert (await api.client.get(f"{V1}/vehicles/leaf-1")).status_code == 404
    assert (await api.client.delete(f"{V1}/vehicles/leaf-1")).status_code == 404


async def test_vehicle_with_inverted_soc_window_is_422(api: ApiHarness) -> None:
    response = await api.client.post(f"{V1}/vehicles", json=dict(LEAF, soc_min=0.9, soc_max=0.5))
    assert response.status_code == 422
    assert "soc_min" in response.json()["detail"]
    negative = await api.client.post(f"{V1}/vehicles", json=dict(LEAF, capacity_kwh=-1))
    assert negative.status_code == 422


async def test_routes_need_a_token(api: ApiHarness) -> None:
    assert (await api.anonymous.get(f"{V1}/vehicles")).status_code == 401
    assert (await api.anonymous.get(f"{V1}/v2g/flexibility")).status_code == 401


# ---- prices -----------------------------------------------------------------------------------


async def test_prices_put_and_get(api: ApiHarness) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    await _put_day_of_prices(api, start)
    window = await api.client.get(
        f"{V1}/prices",
        params={"from": iso(start + timedelta(hours=4)), "to": iso(start + timedelta(hours=6))},
    )
    assert window.status_code == 200
    intervals = window.json()["intervals"]
    assert len(intervals) == 4
    assert {i["import_c_kwh"] for i in intervals} == {60.0}
    # Putting an interval again replaces it.
    await api.client.put(
        f"{V1}/prices",
        json={
            "intervals": [
                {"start": iso(start), "interval_s": 1800, "import_c_kwh": 1.0, "export_c_kwh": 0.5}
            ]
        },
    )
    first = (
        await api.client.get(f"{V1}/prices", params={"to": iso(start + timedelta(minutes=1))})
    ).json()
    assert first["intervals"] == [
        {
            "start": "2026-01-01T00:00:00Z",
            "interval_s": 1800,
            "import_c_kwh": 1.0,
            "export_c_kwh": 0.5,
        }
    ]


async def test_prices_with_a_zero_interval_are_422(api: ApiHarness) -> None:
    bad = {
        "intervals": [
            {"start": "2026-01-01T00:00:00Z", "interval_s": 0, "import_c_kwh": 1, "export_c_kwh": 1}
        ]
    }
    assert (await api.client.put(f"{V1}/prices", json=bad)).status_code == 422
    naive = {
        "intervals": [
            {
                "start": "2026-01-01T00:00:00",
                "interval_s": 300,
                "import_c_kwh": 1,
                "export_c_kwh": 1,
            }
        ]
    }
    assert (await api.client.put(f"{V1}/prices", json=naive)).status_code == 422


async def test_nem_upload_of_a_real_file(api: ApiHarness) -> None:
    raw = NEM_FILE.read_bytes()
    response = await api.client.post(
        f"{V1}/prices/nem",
        content=raw,
        params={"retail_margin_c_kwh": 12.0, "gst": 0.1},
        headers={"Content-Type": "text/csv"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["stored"] == 576
    assert body["interval_s"] == 300
    # SETTLEMENTDATE 2024/08/05 00:05 (AEST) ends the first interval: it starts at 00:00 AEST.
    assert datetime.fromisoformat(body["start"]) == datetime(2024, 8, 5, tzinfo=AEST)
    # 18:00 AEST ends an interval at RRP 14450.01 $/MWh: it started 17:55 AEST.
    at = datetime(2024, 8, 5, 17, 55, tzinfo=AEST)
    got = (
        await api.client.get(
            f"{V1}/prices", params={"from": iso(at), "to": iso(at + timedelta(minutes=5))}
        )
    ).json()["intervals"]
    assert len(got) == 1
    assert got[0]["import_c_kwh"] == pytest.approx((1445.001 + 12.0) * 1.1)
    assert got[0]["export_c_kwh"] == pytest.approx(1445.001)


async def test_nem_upload_of_a_file_that_is_not_nem_is_422(api: ApiHarness) -> None:
    response = await api.client.post(
        f"{V1}/prices/nem", content=b"a,b,c\n1,2,3\n", headers={"Content-Type": "text/csv"}
    )
    assert response.status_code == 422
    assert "header" in response.json()["detail"]


# ---- plans ------------------------------------------------------------------------------------


async def test_what_if_plan_meets_the_target_and_sends_nothing(
    api: ApiHarness, station: ApiTestStation
) -> None:
    assert (await api.client.post(f"{V1}/vehicles", json=LEAF)).status_code == 201
    start = datetime(2026, 1, 1, tzinfo=UTC)
    body = {
        "vehicles": [
            {
                "vehicle_id": "leaf-1",
                "soc": 0.5,
                "departure": iso(start + timedelta(hours=12)),
                "target_soc": 0.8,
            }
        ],
        "prices": {
            "start": iso(start),
            "interval_s": 3600,
            "import_c_kwh": [10.0] * 4 + [80.0] * 2 + [12.0] * 6,
            "export_c_kwh": [9.0] * 4 + [70.0] * 2 + [10.0] * 6,
        },
        "now": iso(start),
    }
    response = await api.client.post(f"{V1}/v2g/plan", json=body)
    assert response.status_code == 200, response.text
    plan = response.json()["vehicles"][0]
    assert plan["target_met"] is True
    assert plan["soc_at_departure"] >= 0.8 - 1e-6
    # It sells in the 80 c/kWh hours and buys in the cheap ones.
    assert min(plan["power_kw"][4:6]) < 0
    assert max(plan["power_kw"][:4]) > 0
    assert station.calls_of("SetChargingProfile") == []


async def test_what_if_plan_errors(api: ApiHarness) -> None:
    unknown = await api.client.post(f"{V1}/v2g/plan", json={"vehicles": [{"vehicle_id": "x"}]})
    assert unknown.status_code == 404
    assert (await api.client.post(f"{V1}/vehicles", json=LEAF)).status_code == 201
    no_soc = await api.client.post(f"{V1}/v2g/plan", json={"vehicles": [{"vehicle_id": "leaf-1"}]})
    assert no_soc.status_code == 422
    assert "SoC" in no_soc.json()["detail"]
    no_prices = await api.client.post(
        f"{V1}/v2g/plan", json={"vehicles": [{"vehicle_id": "leaf-1", "soc": 0.5}]}
    )
    assert no_prices.status_code == 422
    assert "price" in no_prices.json()["detail"]


async def test_optimize_sends_the_plan_as_tx_profile(
    api: ApiHarness, station: ApiTestStation
) -> None:
    now = await _plugged_leaf(api, station)
    await _put_day_of_prices(api, _hour_floor(now))
    await api.client.patch(
        f"{V1}/vehicles/leaf-1",
        json={"departure": iso(now + timedelta(hours=10)), "target_soc": 0.9},
    )
    response = await api.client.post(f"{V1}/stations/CS1/v2g/optimize")
    assert response.status_code == 200, response.text
    sent = response.json()
    assert sent["status"] == "Accepted"
    assert sent["transaction_id"] == "tx-1"
    received = station.calls_of("SetChargingProfile")[-1].payload
    profile = received["chargingProfile"]
    assert received["evseId"] == 1
    assert profile["chargingProfilePurpose"] == "TxProfile"
    assert profile["transactionId"] == "tx-1"
    schedule = profile["chargingSchedule"][0]
    assert schedule["chargingRateUnit"] == "W"
    limits = [p["limit"] for p in schedule["chargingSchedulePeriod"]]
    assert limits == [round(kw * 1000.0, 1) for kw in sent["plan"]["power_kw"]]
    assert sent["plan"]["soc_at_departure"] >= 0.9 - 1e-6
    stored = await api.client.get(f"{V1}/stations/CS1/v2g/plan")
    assert stored.status_code == 200
    assert stored.json()["status"] == "Accepted"
    assert stored.json()["plan"]["power_kw"] == sent["plan"]["power_kw"]
    assert stored.json()["plan"]["departure_source"] == "api"


async def test_optimize_errors(api: ApiHarness, station: ApiTestStation) -> None:
    assert (await api.client.post(f"{V1}/stations/NOPE/v2g/optimize")).status_code == 404
    no_vehicle = await api.client.post(f"{V1}/stations/CS1/v2g/optimize")
    assert no_vehicle.status_code == 422
    assert (await api.client.get(f"{V1}/stations/CS1/v2g/plan")).status_code == 404
    body = dict(LEAF, station_id="CS1", evse_id=1)
    await api.client.post(f"{V1}/vehicles", json=body)
    no_tx = await api.client.post(f"{V1}/stations/CS1/v2g/optimize")
    assert no_tx.status_code == 422
    assert "transaction" in no_tx.json()["detail"]


async def test_replan_when_prices_change(api: ApiHarness, station: ApiTestStation) -> None:
    now = await _plugged_leaf(api, station)
    await _put_day_of_prices(api, _hour_floor(now))
    await api.client.patch(
        f"{V1}/vehicles/leaf-1", json={"departure": iso(now + timedelta(hours=10))}
    )
    service = v2g_of(api)
    first = await service.replan_all()
    assert first == {"leaf-1": ["no plan yet"]}
    assert await service.replan_all() == {}  # nothing changed
    await _put_day_of_prices(api, _hour_floor(now))
    assert await service.replan_all() == {"leaf-1": ["prices changed"]}
    await api.client.patch(
        f"{V1}/vehicles/leaf-1", json={"departure": iso(now + timedelta(hours=8))}
    )
    assert await service.replan_all() == {"leaf-1": ["departure changed"]}
    assert len(station.calls_of("SetChargingProfile")) == 3


# ---- session context --------------------------------------------------------------------------


async def test_session_context_from_ev_charging_needs(
    api: ApiHarness, station: ApiTestStation
) -> None:
    now = await _plugged_leaf(api, station, soc_pct=40.0)
    departure = _hour_floor(now) + timedelta(hours=9)
    await notify_ev_needs(station, departure, soc_pct=40.0, energy_wh=16_000.0)
    ctx = (await api.client.get(f"{V1}/vehicles/leaf-1/session")).json()
    assert ctx["departure_source"] == "ev"
    assert datetime.fromisoformat(ctx["departure"]) == departure
    assert ctx["target_soc"] == pytest.approx(0.4 + 16.0 / 40.0)
    assert ctx["soc"] == pytest.approx(0.4)
    assert ctx["transaction_id"] == "tx-1"
    assert (await api.client.get(f"{V1}/vehicles/none/session")).status_code == 404


async def test_session_context_predicted_from_history(
    api: ApiHarness, station: ApiTestStation
) -> None:
    body = dict(LEAF, station_id="CS1", evse_id=1)
    await api.client.post(f"{V1}/vehicles", json=body)
    today = datetime.now(AEST).replace(hour=0, minute=0, second=0, microsecond=0)
    for day in range(1, 8):  # a week of evenings plugged in, leaving at 07:30 AEST
        plug_in = today - timedelta(days=day, hours=5)  # 19:00 the day before
        plug_out = today - timedelta(days=day - 1) + timedelta(hours=7, minutes=30)
        if plug_out > datetime.now(AEST):
            plug_out = plug_in + timedelta(hours=12, minutes=30)
        tx = f"old-{day}"
        arrived = [meter_value(plug_in, soc_pct=40.0)]
        left = [meter_value(plug_out, soc_pct=90.0)]
        await transaction_event(station, "Started", tx, 0, plug_in, meter=arrived)
        await transaction_event(station, "Ended", tx, 1, plug_out, meter=left)
    ctx = (await api.client.get(f"{V1}/vehicles/leaf-1/session")).json()
    assert ctx["departure_source"] == "predicted"
    # Each trip used 90 % - 40 %: the reserve (20 %) plus that is needed.
    assert ctx["target_soc"] == pytest.approx(0.2 + 0.5)
    departure = datetime.fromisoformat(ctx["departure"]).astimezone(AEST)
    assert departure > datetime.now(AEST)
    assert abs((departure.hour * 60 + departure.minute) - (7 * 60 + 30)) <= 30


# ---- fleet ------------------------------------------------------------------------------------


async def test_flexibility_bid_and_dispatch(api: ApiHarness, station: ApiTestStation) -> None:
    now = await _plugged_leaf(api, station, soc_pct=80.0)
    await api.client.patch(
        f"{V1}/vehicles/leaf-1",
        json={"departure": iso(now + timedelta(hours=12)), "target_soc": 0.8},
    )
    flex = (await api.client.get(f"{V1}/v2g/flexibility", params={"duration_s": 1800})).json()
    assert flex["vehicle_count"] == 1
    assert flex["down_kw"] == pytest.approx(7.0)  # 40 kWh at 80 %: full power for 30 min
    assert flex["vehicles"][0]["vehicle_id"] == "leaf-1"
    bids = (await api.client.get(f"{V1}/v2g/bid")).json()
    assert bids["raise_bid"] is None  # 7 kW < the 10 kW minimum
    small = (await api.client.get(f"{V1}/v2g/bid", params={"min_bid_kw": 5})).json()
    assert small["raise_bid"]["capacity_kw"] == pytest.approx(7.0)
    dispatched = await api.client.post(
        f"{V1}/v2g/dispatch", json={"target_kw": -5.0, "duration_s": 900}
    )
    assert dispatched.status_code == 200, dispatched.text
    result = dispatched.json()
    assert result["allocated_kw"] == pytest.approx(-5.0)
    assert result["accepted_kw"] == pytest.approx(-5.0)
    profile = station.calls_of("SetChargingProfile")[-1].payload["chargingProfile"]
    assert profile["stackLevel"] == 2
    assert profile["chargingSchedule"][0]["chargingSchedulePeriod"] == [
        {"startPeriod": 0, "limit": -5000.0}
    ]
    assert profile["chargingSchedule"][0]["duration"] == 900
    # Later meter values during the window give the delivered power.
    await transaction_event(
        station,
        "Updated",
        "tx-1",
        1,
        now + timedelta(seconds=60),
        meter=[meter_value(datetime.now(UTC) + timedelta(seconds=5), power_w=-4800.0)],
    )
    listed = (await api.client.get(f"{V1}/v2g/dispatches")).json()
    assert listed[-1]["measured_kw"] == pytest.approx(-4.8)


async def test_dispatch_without_connected_vehicles_is_422(api: ApiHarness) -> None:
    response = await api.client.post(f"{V1}/v2g/dispatch", json={"target_kw": -5.0})
    assert response.status_code == 422
    flex = (await api.client.get(f"{V1}/v2g/flexibility")).json()
    assert flex["vehicle_count"] == 0


# ---- frequency --------------------------------------------------------------------------------


async def test_under_frequency_for_5_s_discharges_5_kw_for_10_minutes(
    api: ApiHarness, station: ApiTestStation
) -> None:
    await _plugged_leaf(api, station, soc_pct=70.0)
    t0 = datetime.now(UTC)
    fired = []
    for second in range(7):
        response = await api.client.post(
            f"{V1}/grid/frequency", json={"hz": 49.7, "at": iso(t0 + timedelta(seconds=second))}
        )
        assert response.status_code == 200
        fired.append((second, response.json()["fired"]))
    assert [s for s, f in fired if f] == [5]
    profile = station.calls_of("SetChargingProfile")[-1].payload["chargingProfile"]
    assert profile["stackLevel"] == 3
    schedule = profile["chargingSchedule"][0]
    assert schedule["duration"] == 600
    assert schedule["chargingSchedulePeriod"] == [{"startPeriod": 0, "limit": -5000.0}]
    events = (await api.client.get(f"{V1}/v2g/dispatches")).json()
    assert events[-1]["kind"] == "frequency"


async def test_under_frequency_event_is_cleared_when_soc_falls_to_half(
    api: ApiHarness, station: ApiTestStation
) -> None:
    started = await _plugged_leaf(api, station, soc_pct=52.0)
    t0 = datetime.now(UTC)
    for second in range(6):
        response = await api.client.post(
            f"{V1}/grid/frequency", json={"hz": 49.6, "at": iso(t0 + timedelta(seconds=second))}
        )
    assert response.json()["fired"]
    assert station.calls_of("ClearChargingProfile") == []
    meter = [meter_value(started + timedelta(seconds=30), soc_pct=50.0)]
    await transaction_event(station, "Updated", "tx-1", 1, started, meter=meter)
    response = await api.client.post(
        f"{V1}/grid/frequency", json={"hz": 49.6, "at": iso(t0 + timedelta(seconds=40))}
    )
    assert response.json()["restored"] == [
        {"vehicle_id": "leaf-1", "station_id": "CS1", "status": "Accepted"}
    ]
    cleared = station.calls_of("ClearChargingProfile")[-1].payload
    assert cleared == {"chargingProfileId": 62_003}


async def test_under_frequency_leaves_a_half_empty_vehicle_alone(
    api: ApiHarness, station: ApiTestStation
) -> None:
    await _plugged_leaf(api, station, soc_pct=45.0)
    t0 = datetime.now(UTC)
    for second in range(8):
        response = await api.client.post(
            f"{V1}/grid/frequency", json={"hz": 49.5, "at": iso(t0 + timedelta(seconds=second))}
        )
        assert response.json()["fired"] == []
    assert station.calls_of("SetChargingProfile") == []
    bad = await api.client.post(f"{V1}/grid/frequency", json={"hz": 5.0, "at": iso(t0)})
    assert bad.status_code == 422


async def test_frequency_response_sets_v2x_variables(
    api: ApiHarness, station: ApiTestStation
) -> None:
    station.variables[("V2XCtrlr", "FreqWattCurve")] = "[]"
    station.variables[("V2XCtrlr", "FreqWattEnabled")] = "false"
    curve = [[49.0, -7000], [49.85, 0], [50.15, 0], [51.0, 7000]]
    response = await api.client.put(
        f"{V1}/stations/CS1/v2g/frequency-response", json={"curve": curve, "enabled": True}
    )
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] is True
    assert json.loads(station.variables[("V2XCtrlr", "FreqWattCurve")]) == curve
    assert station.variables[("V2XCtrlr", "FreqWattEnabled")] == "true"
    station.behaviour.rejected_variables.add(("V2XCtrlr", "FreqWattEnabled"))
    rejected = await api.client.put(
        f"{V1}/stations/CS1/v2g/frequency-response", json={"enabled": False}
    )
    assert rejected.json()["accepted"] is False


async def test_frequency_response_with_a_bad_curve_is_422(
    api: ApiHarness, station: ApiTestStation
) -> None:
    response = await api.client.put(
        f"{V1}/stations/CS1/v2g/frequency-response",
        json={"curve": [[50.5, 0], [49.0, -7000]], "enabled": True},
    )
    assert response.status_code == 422
    assert station.calls_of("SetVariables") == []
    unknown = await api.client.put(
        f"{V1}/stations/NOPE/v2g/frequency-response", json={"enabled": True}
    )
    assert unknown.status_code == 404


# ---- backup -----------------------------------------------------------------------------------


async def test_backup_state_after_grid_loss(api: ApiHarness, station: ApiTestStation) -> None:
    await _plugged_leaf(api, station, soc_pct=60.0)
    normal = (await api.client.get(f"{V1}/stations/CS1/v2g/backup")).json()
    assert normal["grid_present"] is True
    await notify_grid_event(station, "grid_lost", True, datetime.now(UTC))
    lost = (
        await api.client.get(f"{V1}/stations/CS1/v2g/backup", params={"house_load_kw": 2.0})
    ).json()
    assert lost["grid_present"] is False
    assert lost["vehicle_id"] == "leaf-1"
    # 40 kWh x (0.60 - 0.10 backup reserve) x sqrt(0.9) / 2 kW
    assert lost["backup_hours"] == pytest.approx(40 * 0.5 * 0.9**0.5 / 2.0)
    await notify_grid_event(station, "grid_restored", False, datetime.now(UTC), event_id=2)
    back = (await api.client.get(f"{V1}/stations/CS1/v2g/backup")).json()
    assert back["grid_present"] is True
    assert (await api.client.get(f"{V1}/stations/NOPE/v2g/backup")).status_code == 404


async def test_emergency_backup_switch_is_a_data_transfer(
    api: ApiHarness, station: ApiTestStation
) -> None:
    response = await api.client.put(
        f"{V1}/stations/CS1/v2g/emergency-backup", json={"enabled": True}
    )
    assert response.status_code == 200
    assert response.json()["status"] == "Accepted"
    sent = station.calls_of("DataTransfer")[-1].payload
    assert sent["vendorId"] == "org.openv2g.v2x"
    assert sent["messageId"] == "EmergencyBackup"
    assert json.loads(sent["data"]) == {"enabled": True}
    state = (await api.client.get(f"{V1}/stations/CS1/v2g/backup")).json()
    assert state["emergency_backup"] is True
    await station.disconnect()


async def test_emergency_backup_to_an_offline_station_is_409(api: ApiHarness) -> None:
    await api.add_station("OFF")
    response = await api.client.put(
        f"{V1}/stations/OFF/v2g/emergency-backup", json={"enabled": True}
    )
    assert response.status_code == 409


# ---- economics --------------------------------------------------------------------------------


async def test_economics_from_meter_values_and_prices(
    api: ApiHarness, station: ApiTestStation
) -> None:
    body = dict(LEAF, station_id="CS1", evse_id=1)
    await api.client.post(f"{V1}/vehicles", json=body)
    day = datetime(2026, 1, 1, tzinfo=UTC)
    await _put_day_of_prices(api, day)  # 10 c for 4 h, 60 c (export 54 c) for 2 h
    # Charge 10 kWh in the first hour (10 c), export 6 kWh in hour 5 (54 c export).
    samples = [
        (day, 50.0, 0.0, 0.0),
        (day + timedelta(hours=1), 75.0, 10_000.0, 0.0),
        (day + timedelta(hours=5), 60.0, 10_000.0, 6_000.0),
    ]
    for seq, (at, soc, imp, exp) in enumerate(samples):
        kind = "Started" if seq == 0 else "Updated"
        await transaction_event(
            station,
            kind,
            "tx-e",
            seq,
            at,
            meter=[meter_value(at, soc_pct=soc, import_wh=imp, export_wh=exp)],
        )
    response = await api.client.get(
        f"{V1}/vehicles/leaf-1/economics",
        params={"from": iso(day), "to": iso(day + timedelta(days=1)), "equipment_cost": 15000},
    )
    assert response.status_code == 200, response.text
    e = response.json()
    assert e["imported_kwh"] == pytest.approx(10.0)
    assert e["exported_kwh"] == pytest.approx(6.0)
    assert e["import_cost_aud"] == pytest.approx(1.0)
    assert e["export_revenue_aud"] == pytest.approx(6.0 * 0.54)
    assert e["degradation_aud"] > 0
    assert e["net_value_aud"] == pytest.approx(
        e["export_revenue_aud"]
        + e["grid_service_aud"]
        - e["import_cost_aud"]
        - e["degradation_aud"]
    )
    assert e["annual_net_aud"] == pytest.approx(e["net_value_aud"] * 365.25)
    assert e["payback_years"] == pytest.approx(15000 / e["annual_benefit_aud"])


async def test_economics_errors(api: ApiHarness) -> None:
    await api.client.post(f"{V1}/vehicles", json=LEAF)
    backwards = await api.client.get(
        f"{V1}/vehicles/leaf-1/economics",
        params={"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"},
    )
    assert backwards.status_code == 422
    unknown = await api.client.get(
        f"{V1}/vehicles/none/economics",
        params={"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z"},
    )
    assert unknown.status_code == 404


async def test_background_replanner_sends_plans_and_stops(
    api: ApiHarness, station: ApiTestStation
) -> None:
    now = await _plugged_leaf(api, station)
    await _put_day_of_prices(api, _hour_floor(now))
    await api.client.patch(
        f"{V1}/vehicles/leaf-1", json={"departure": iso(now + timedelta(hours=10))}
    )
    service = V2gService(
        api.services.db,
        api.services.commands,
        settings=V2gSettings(replan_interval_s=0.05),
    )
    service.start_background()
    try:
        for _ in range(100):
            if service.replans:
                break
            await asyncio.sleep(0.05)
        assert service.replans == 1
        assert station.calls_of("SetChargingProfile")
    finally:
        await service.close()
    off = V2gService(api.services.db, api.services.commands)  # default: no background task
    off.start_background()
    await asyncio.sleep(0.2)
    assert off.replans == 0
    await off.close()


async def test_issue12_dispatch_method_default_option_and_history(
    api: ApiHarness, station: ApiTestStation
) -> None:
    now = await _plugged_leaf(api, station, soc_pct=80.0)
    await api.client.patch(
        f"{V1}/vehicles/leaf-1",
        json={"departure": iso(now + timedelta(hours=12)), "target_soc": 0.8},
    )
    default = await api.client.post(f"{V1}/v2g/dispatch", json={"target_kw": -5.0})
    assert default.status_code == 200, default.text
    assert default.json()["method"] == "proportional"
    assert default.json()["allocated_kw"] == pytest.approx(-5.0)
    option = await api.client.post(
        f"{V1}/v2g/dispatch", json={"target_kw": -3.0, "method": "water_filling"}
    )
    assert option.status_code == 200, option.text
    assert option.json()["method"] == "water_filling"
    bad = await api.client.post(f"{V1}/v2g/dispatch", json={"target_kw": -3.0, "method": "x"})
    assert bad.status_code == 422
    listed = (await api.client.get(f"{V1}/v2g/dispatches")).json()
    assert [d["method"] for d in listed[-2:]] == ["proportional", "water_filling"]
    # the request model's JSON schema is what OpenAPI publishes for the body
    method = DispatchCreate.model_json_schema()["properties"]["method"]
    assert method["default"] == "proportional"
    assert set(method["enum"]) == {"proportional", "water_filling"}
    assert "available power" in method["description"]
