"""Issue 14's V2X "done when", CSMS side: from the same price day, a 2.1 station (the `ocpp`
library's v21 ChargePoint offering only ocpp2.1, strict about what it receives) gets native V2X
profiles and a 2.0.1 station (v201 ChargePoint) gets the negative-limit convention, over real
loopback websockets through the REST API; dispatch and the DER / aFRR means likewise."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.api_harness import STATION_PASSWORD, ApiHarness
from tests.support.v2g_harness import (
    LEAF,
    iso,
    meter_value,
    transaction_event,
    v2g_api,
    v2g_station,
)
from tests.support.v21_station import V21Station, connected_v21_station

V1 = "/api/v1"


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[ApiHarness]:
    async with v2g_api(tmp_path, command_timeout_s=5.0) as harness:
        yield harness


async def _prices(api: ApiHarness, start: datetime) -> None:
    intervals = []
    for k in range(16):  # cheap 2 h, dear 2 h, then mid
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


async def _vehicle(api: ApiHarness, vehicle_id: str, station_id: str) -> None:
    body = dict(LEAF, id=vehicle_id, station_id=station_id, evse_id=1)
    response = await api.client.post(f"{V1}/vehicles", json=body)
    assert response.status_code == 201, response.text


def _periods(payload: dict) -> list[dict]:
    return payload["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"]


async def test_q_same_plan_native_on_21_and_negative_limits_on_201(api: ApiHarness) -> None:
    assert api.ocpp_url is not None
    now = datetime.now(UTC)
    await _prices(api, now.replace(minute=0, second=0, microsecond=0))
    await api.add_station("CS21")
    async with (
        connected_v21_station(api.ocpp_url, "CS21", STATION_PASSWORD) as cs21,
        v2g_station(api, "CS201") as cs201,
    ):
        seen = (await api.client.get(f"{V1}/stations/CS21/v2x")).json()
        assert seen["ocpp_version"] == "2.1"
        await cs21.report_v2x_controller("ChargingOnly,CentralSetpoint,CentralFrequency,Idle")
        await _vehicle(api, "leaf-21", "CS21")
        await _vehicle(api, "leaf-201", "CS201")
        await cs21.start_transaction("tx-21", now, 70.0)
        meter = [meter_value(now, soc_pct=70.0, import_wh=0.0, export_wh=0.0)]
        await transaction_event(cs201, "Started", "tx-201", 0, now, meter=meter)

        for station_id in ("CS21", "CS201"):
            response = await api.client.post(f"{V1}/stations/{station_id}/v2g/optimize")
            assert response.status_code == 200, response.text
            assert response.json()["status"] == "Accepted"
        native = _periods((await cs21.wait_for_call("SetChargingProfile")).payload)
        legacy = _periods((await cs201.wait_for_call("SetChargingProfile")).payload)
        assert all("operationMode" in p for p in native)
        assert any(p.get("setpoint", 0) < 0 for p in native)  # native discharge
        assert all(p.get("limit", 0) >= 0 for p in native)
        assert any(p["limit"] < 0 for p in legacy)  # 2.0.1 discharge: negative limit
        assert all("operationMode" not in p for p in legacy)

        # fleet dispatch: each its own version's means
        response = await api.client.post(
            f"{V1}/v2g/dispatch", json={"target_kw": -6.0, "duration_s": 600}
        )
        assert response.status_code == 200, response.text
        dispatched = [r for r in cs21.received if r.action == "SetChargingProfile"][-1]
        assert _periods(dispatched.payload)[0]["operationMode"] == "CentralSetpoint"
        assert _periods(dispatched.payload)[0]["setpoint"] < 0
        assert (
            cs201.calls_of("SetChargingProfile")[-1].payload["chargingProfile"]["chargingSchedule"][
                0
            ]["chargingSchedulePeriod"][0]["limit"]
            < 0
        )

        # aFRR reaches the 2.1 station only; DER curves go to it as SetDERControl
        afrr = await api.client.post(f"{V1}/grid/afrr", json={"signal": -50})
        assert afrr.status_code == 200, afrr.text
        assert (await cs21.wait_for_call("AFRRSignal")).payload["signal"] == -50
        put = await api.client.put(
            f"{V1}/stations/CS21/der/curves/volt_watt", json={"region": "australia_a"}
        )
        assert put.status_code == 200, put.text
        applied = await api.client.post(f"{V1}/stations/CS21/der/curves/apply")
        assert applied.status_code == 200, applied.text
        assert (await cs21.wait_for_call("SetDERControl")).payload["controlType"] == "VoltWatt"

        # CentralFrequency: the CSMS follows the curve with a Dynamic profile
        curve = {"curve": [[49.5, -7000], [49.85, 0], [50.15, 0], [50.5, 7000]], "enabled": True}
        put = await api.client.put(f"{V1}/stations/CS21/v2g/frequency-response", json=curve)
        assert put.status_code == 200 and put.json()["mode"] == "CentralFrequency", put.text
        sample = {"hz": 49.7, "at": iso(datetime.now(UTC))}
        response = await api.client.post(f"{V1}/grid/frequency", json=sample)
        assert response.status_code == 200, response.text
        assert [c["status"] for c in response.json()["central"]] == ["Accepted"]
        dynamic = [r for r in cs21.received if r.action == "SetChargingProfile"][-1].payload
        assert dynamic["chargingProfile"]["chargingProfileKind"] == "Dynamic"
        assert _periods(dynamic)[0]["operationMode"] == "CentralFrequency"


async def test_q_dynamic_setpoint_reaches_the_21_station(api: ApiHarness) -> None:
    assert api.ocpp_url is not None
    await api.add_station("CS21")
    async with connected_v21_station(api.ocpp_url, "CS21", STATION_PASSWORD) as cs21:
        station: V21Station = cs21
        body = {
            "profile_id": 62_001,
            "setpoint_w": -3000,
            "max_charge_w": 7000,
            "max_discharge_w": 5000,
        }
        response = await api.client.put(f"{V1}/stations/CS21/v2x/dynamic-setpoint", json=body)
        assert response.status_code == 200, response.text
        update = (await station.wait_for_call("UpdateDynamicSchedule")).payload
        assert update["scheduleUpdate"]["setpoint"] == -3000.0
        kept = await api.client.get(f"{V1}/stations/CS21/v2x/dynamic-setpoint/62001")
        assert kept.json()["scheduleUpdate"] == update["scheduleUpdate"]

        # DER and stream commands reach it as the strict 2.1 station wants them
        report = await api.client.post(
            f"{V1}/stations/CS21/der/controls/report", json={"requestId": 7}
        )
        assert report.status_code == 200 and report.json() == {"status": "Accepted"}
        assert (await station.wait_for_call("GetDERControl")).payload == {"requestId": 7}
        bad = await api.client.post(
            f"{V1}/stations/CS21/der/controls", json={"controlType": "VoltWatt"}
        )
        assert bad.status_code == 422  # not a SetDERControlRequest: never sent
        assert not [r for r in station.received if r.action == "SetDERControl"]
        opened = await api.client.post(
            f"{V1}/stations/CS21/periodic-streams",
            json={
                "component": "EVSE",
                "variable": "Power",
                "evse_id": 1,
                "interval_s": 1,
                "values": 10,
            },
        )
        assert opened.status_code == 200, opened.text
        (result,) = opened.json()["setMonitoringResult"]
        asked = (await station.wait_for_call("SetVariableMonitoring")).payload
        assert asked["setMonitoringData"][0]["periodicEventStream"] == {"interval": 1, "values": 10}
        await station.open_stream(5, result["id"], 1)  # the station opens it
        listed = (await api.client.get(f"{V1}/stations/CS21/periodic-streams")).json()
        assert [(s["stream_id"], s["variable_monitoring_id"]) for s in listed] == [
            (5, result["id"])
        ]
        stop = await api.client.delete(
            f"{V1}/stations/CS21/periodic-streams/monitors/{result['id']}"
        )
        assert stop.status_code == 200, stop.text
        assert (await station.wait_for_call("ClearVariableMonitoring")).payload == {
            "id": [result["id"]]
        }
