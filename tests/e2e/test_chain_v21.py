"""End to end over OCPP 2.1, beside a 2.0.1 station: REST API -> CSMS -> OCPP 2.1 websocket ->
agent -> composite schedule (V2X operation mode) -> safety -> CHAdeMO controller -> python-can
virtual bus -> simulated vehicle, and the export register back through the CSMS to the API.

The 2.1 station is told to discharge the 2.1 way (a TxProfile period with operationMode
CentralSetpoint, a negative setpoint and a dischargeLimit); the 2.0.1 station beside it the 2.0.1
way (a negative limit). Both discharge on CAN frame 0x208 at the same power.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from chargepoint_firmware.chademo.frames import ChargerDischargeStatus
from chargepoint_firmware.simulate import Car
from tests.support.chademo_sim import BusRecorder
from tests.support.e2e_stack import iso_ms, running_stack, until, until_true
from tests.support.v2g_harness import LEAF

EXPORT = "Energy.Active.Export.Register"
SPEED = 60.0


def v21_setpoint_profile(transaction_id: str, setpoint_w: float, discharge_limit_w: float) -> Any:
    return {
        "id": 200,
        # Above the V2G layers (the plan the CSMS sends after the 2.1 agent's
        # NotifyEVChargingNeeds sits at stack level 1): the operator's setpoint wins.
        "stackLevel": 5,
        "chargingProfilePurpose": "TxProfile",
        "chargingProfileKind": "Absolute",
        "transactionId": transaction_id,
        "chargingSchedule": [
            {
                "id": 200,
                "startSchedule": iso_ms(datetime.now(UTC) - timedelta(seconds=5)),
                "chargingRateUnit": "W",
                "chargingSchedulePeriod": [
                    {
                        "startPeriod": 0,
                        "operationMode": "CentralSetpoint",
                        "setpoint": setpoint_w,
                        "dischargeLimit": discharge_limit_w,
                    }
                ],
            }
        ],
    }


def discharge_a(bus: BusRecorder) -> list[int]:
    return [
        f.discharge_current_a
        for _, f in bus.decoded(0x208)
        if isinstance(f, ChargerDischargeStatus)
    ]


async def test_21_and_201_stations_discharge_side_by_side_each_its_own_way(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        native = await stack.add_station(
            "E2E-21",
            car=Car("Leaf", 24.0, 80.0),
            speed=SPEED,
            meter_interval_s=int(SPEED),
            ocpp_versions=["2.1", "2.0.1"],
        )
        legacy = await stack.add_station(
            "E2E-201", car=Car("Leaf", 24.0, 80.0), speed=SPEED, meter_interval_s=int(SPEED)
        )
        versions = {
            s: (await stack.api.get(f"/stations/{s}")).json()["ocpp_version"]
            for s in ("E2E-21", "E2E-201")
        }
        assert versions == {"E2E-21": "ocpp2.1", "E2E-201": "ocpp2.0.1"}
        buses = {"E2E-21": stack.sniff(native), "E2E-201": stack.sniff(legacy)}
        native.plug_in()
        legacy.plug_in()
        tx21 = await stack.remote_start(native)
        tx201 = await stack.remote_start(legacy)

        # 2.1: a native V2X setpoint (the setpoint asks for 6 kW; the dischargeLimit allows 4).
        response = await stack.api.post(
            "/stations/E2E-21/charging-profiles",
            json={"evse_id": 1, "charging_profile": v21_setpoint_profile(tx21, -6000.0, -4000.0)},
        )
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "Accepted", response.text
        # 2.0.1: the negative-limit convention.
        response = await stack.set_tx_profile("E2E-201", tx201, -4000.0)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "Accepted", response.text

        for station_id, bus in buses.items():
            await until_true(
                lambda bus=bus: any(a >= 5 for a in discharge_a(bus)),
                within_s=20,
                what=f"{station_id}: discharge current on 0x208",
            )
            # 4 kW at ~370 V is ~11 A: the dischargeLimit / limit, not the hardware, sets it.
            await until_true(
                lambda bus=bus: 9 <= discharge_a(bus)[-1] <= 12,
                within_s=8,
                what=f"{station_id}: discharge settling at 4 kW",
            )

        for station_id, tx in (("E2E-21", tx21), ("E2E-201", tx201)):

            async def exported(station_id: str = station_id, tx: str = tx) -> Any:
                samples = await stack.meter_values(station_id, tx, EXPORT)
                values = [s["value"] for s in sorted(samples, key=lambda s: s["timestamp"])]
                return samples if len(values) >= 2 and values[-1] > values[0] else None

            samples = await until(exported, within_s=15, what=f"{station_id}: export register")
            assert samples[-1]["value"] > 1.0


async def test_q_same_fleet_dispatch_discharges_a_21_and_a_201_station_each_its_own_way(
    tmp_path: Path,
) -> None:
    """The issue's "done when": one V2G decision (a fleet dispatch of -8 kW over two cars), a
    native CentralSetpoint profile to the 2.1 agent (which reports V2XChargingCtrlr) and a
    negative limit to the 2.0.1 agent, both discharging on CAN."""
    async with running_stack(tmp_path) as stack:
        native = await stack.add_station(
            "Q-21",
            car=Car("Leaf", 24.0, 80.0),
            speed=SPEED,
            meter_interval_s=int(SPEED),
            ocpp_versions=["2.1", "2.0.1"],
        )
        legacy = await stack.add_station(
            "Q-201", car=Car("Leaf", 24.0, 80.0), speed=SPEED, meter_interval_s=int(SPEED)
        )
        buses = {"Q-21": stack.sniff(native), "Q-201": stack.sniff(legacy)}
        # The CSMS learns the 2.1 station's V2X controller from its device-model report.
        report = await stack.api.post(
            "/stations/Q-21/ocpp/GetBaseReport",
            json={"requestId": 7, "reportBase": "FullInventory"},
        )
        assert report.status_code == 200, report.text

        async def v2x_known() -> Any:
            seen = (await stack.api.get("/stations/Q-21/v2x")).json()
            return seen if "CentralSetpoint" in seen["operation_modes"] else None

        seen = await until(v2x_known, within_s=15, what="Q-21: V2XChargingCtrlr reported")
        assert seen["ocpp_version"] == "2.1" and seen["v2x_enabled"] is True
        assert "DC_BPT" in seen["energy_transfer_modes"]

        for station_id in ("Q-21", "Q-201"):
            vehicle = dict(
                LEAF, id=f"car-{station_id}", capacity_kwh=24.0, station_id=station_id, evse_id=1
            )
            response = await stack.api.post("/vehicles", json=vehicle)
            assert response.status_code == 201, response.text
        native.plug_in()
        legacy.plug_in()
        await stack.remote_start(native)
        await stack.remote_start(legacy)

        async def dispatched() -> Any:
            response = await stack.api.post(
                "/v2g/dispatch", json={"target_kw": -8.0, "duration_s": 600}
            )
            if response.status_code == 422:  # no SoC metered yet: not plugged for the fleet
                return None
            assert response.status_code == 200, response.text
            body = response.json()
            return body if len(body["per_vehicle"]) == 2 and body["accepted_kw"] < -7 else None

        await until(dispatched, within_s=30, what="a dispatch both stations accept")

        profiles = (await stack.api.get("/stations/Q-21/charging-profiles")).json()
        periods = [
            p
            for profile in profiles
            for s in profile["profile"]["chargingSchedule"]
            for p in s["chargingSchedulePeriod"]
        ]
        assert any(
            p.get("operationMode") == "CentralSetpoint" and p.get("setpoint", 0) < 0
            for p in periods
        ), profiles
        legacy_profiles = (await stack.api.get("/stations/Q-201/charging-profiles")).json()
        legacy_periods = [
            p
            for profile in legacy_profiles
            for s in profile["profile"]["chargingSchedule"]
            for p in s["chargingSchedulePeriod"]
        ]
        assert any(p["limit"] < 0 for p in legacy_periods), legacy_profiles
        assert all("operationMode" not in p for p in legacy_periods)

        for station_id, bus in buses.items():
            await until_true(
                lambda bus=bus: any(a >= 5 for a in discharge_a(bus)),
                within_s=20,
                what=f"{station_id}: discharge current on 0x208 from the dispatch",
            )


async def test_q_afrr_curve_then_signal_moves_the_21_agents_discharge_on_can(
    tmp_path: Path,
) -> None:
    """aFRR end to end: the API arms the fleet's signal-watt curve (a CentralFrequency profile
    with v2xSignalWattCurve on the 2.1 agent); an AFRRSignal of -100 then makes the agent
    discharge (curve(-100) = -6 kW) on CAN 0x208."""
    async with running_stack(tmp_path) as stack:
        agent = await stack.add_station(
            "AFRR-21",
            car=Car("Leaf", 24.0, 80.0),
            speed=SPEED,
            meter_interval_s=int(SPEED),
            ocpp_versions=["2.1", "2.0.1"],
        )
        bus = stack.sniff(agent)
        report = await stack.api.post(
            "/stations/AFRR-21/ocpp/GetBaseReport",
            json={"requestId": 8, "reportBase": "FullInventory"},
        )
        assert report.status_code == 200, report.text

        async def v2x_known() -> Any:
            seen = (await stack.api.get("/stations/AFRR-21/v2x")).json()
            return seen if "CentralFrequency" in seen["operation_modes"] else None

        await until(v2x_known, within_s=15, what="AFRR-21: V2XChargingCtrlr reported")
        vehicle = dict(LEAF, id="car-afrr", capacity_kwh=24.0, station_id="AFRR-21", evse_id=1)
        assert (await stack.api.post("/vehicles", json=vehicle)).status_code == 201
        agent.plug_in()
        await stack.remote_start(agent)
        curve = {
            "curve": [{"signal": -100, "power_w": -6_000}, {"signal": 100, "power_w": 6_000}],
            "baseline_w": 0,
            "duration_s": 600,
            "station_ids": ["AFRR-21"],
        }

        async def armed() -> Any:
            response = await stack.api.post("/grid/afrr/curve", json=curve)
            assert response.status_code == 200, response.text
            (result,) = response.json()["results"]
            return result if result["status"] == "Accepted" else None

        await until(armed, within_s=30, what="the aFRR curve accepted by the agent")
        assert not any(a >= 5 for a in discharge_a(bus))  # at the baseline (0 W) until a signal
        signal = await stack.api.post(
            "/grid/afrr", json={"signal": -100, "station_ids": ["AFRR-21"]}
        )
        assert signal.status_code == 200, signal.text
        assert signal.json()["results"][0]["status"] == "Accepted"
        await until_true(
            lambda: any(a >= 5 for a in discharge_a(bus)),
            within_s=20,
            what="AFRR-21: discharge current on 0x208 from the aFRR signal",
        )
