"""The departure from the CSMS to the CHAdeMO power stage.

1. Over a real websocket: SetVariables V2XCtrlr(evse).DepartureTime / DepartureSoC reach the
   EVSE's hardware through the wiring main.py installs (`wire_agent_departures`).
2. The device model wired to a `ChademoEvse` with the simulated vehicle: a departure set while
   the car discharges stops it at the departure floor; moving the departure into the past
   releases it again.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ocpp.v201 import call

from chargepoint_firmware.device_model import DeviceModel
from chargepoint_firmware.device_model.store import InMemoryStore
from chargepoint_firmware.hardware.chademo_evse import ChademoEvseConfig
from chargepoint_firmware.hardware.sim_vehicle import Battery, SimVehicleConfig
from chargepoint_firmware.interfaces import EvseHardware, EvseSetpoint
from chargepoint_firmware.main import wire_agent_departures, wire_departures
from chargepoint_firmware.safety.departure import departure_floor_pct
from tests.support.agent_harness import eventually, start_harness
from tests.support.chademo_sim import running_sim, start_session, wait_until
from v2g_shared.schedule.model import format_datetime


def departure_variables(evse_id: int, departure: str, soc: str) -> list[dict[str, Any]]:
    component = {"name": "V2XCtrlr", "evse": {"id": evse_id}}
    return [
        {
            "component": component,
            "variable": {"name": "DepartureTime"},
            "attribute_value": departure,
        },
        {"component": component, "variable": {"name": "DepartureSoC"}, "attribute_value": soc},
    ]


async def test_set_variables_over_ocpp_reach_the_evse_hardware(tmp_path: Path) -> None:
    h = await start_harness(tmp_path, evse_count=2)
    try:
        wire_agent_departures(h.agent)
        assert h.evses[2].departures == [(None, None)]
        result = await h.call(
            call.SetVariables(
                set_variable_data=departure_variables(2, "2026-11-27T07:30:00Z", "80")
            )
        )
        assert [r["attribute_status"] for r in result.set_variable_result] == ["Accepted"] * 2
        await eventually(lambda: h.evses[2].departures[-1][1] == 80.0)
        assert h.evses[2].departures[-1] == (datetime(2026, 11, 27, 7, 30, tzinfo=UTC), 80.0)
        assert h.evses[1].departures == [(None, None)]
        got = await h.call(
            call.GetVariables(
                get_variable_data=[
                    {
                        "component": {"name": "V2XCtrlr", "evse": {"id": 2}},
                        "variable": {"name": "DepartureSoC"},
                    }
                ]
            )
        )
        assert got.get_variable_result[0]["attribute_value"] == "80"
        rejected = await h.call(
            call.SetVariables(set_variable_data=departure_variables(1, "soon", "101"))
        )
        assert [r["attribute_status"] for r in rejected.set_variable_result] == ["Rejected"] * 2
        assert h.evses[1].departures == [(None, None)]
    finally:
        await h.close()


async def test_a_departure_set_while_discharging_stops_at_its_floor() -> None:
    config = ChademoEvseConfig(max_discharge_current_a=30.0, max_discharge_power_w=12_000.0)
    vehicle = SimVehicleConfig(permission_delay_s=0.2, time_scale=400.0, max_discharge_current_a=30)
    async with running_sim(config, battery=Battery(soc_pct=52.0), vehicle_config=vehicle) as rig:
        evse, battery = rig.sim.evse, rig.sim.vehicle.battery
        model = DeviceModel([1], InMemoryStore())
        hardware: dict[int, EvseHardware] = {1: evse}
        wire_departures(model, hardware)
        evse.set_csms_connected(True)
        evse.set_setpoint(EvseSetpoint(evse_id=1, limit=-30.0, unit="A"))
        await start_session(rig)
        await wait_until(lambda: evse.status().current_a <= -5.0, 5.0)
        # 50 % needed in 10 minutes (floor ~46.5 %), set while the car is already discharging.
        departure = datetime.now(UTC) + timedelta(minutes=10)
        model.set_variables(
            [
                {
                    "component": {"name": "V2XCtrlr", "evse": {"id": 1}},
                    "variable": {"name": name},
                    "attributeValue": value,
                }
                for name, value in (
                    ("DepartureTime", format_datetime(departure)),
                    ("DepartureSoC", "50"),
                )
            ]
        )
        assert evse.departure[1] == 50.0
        await wait_until(lambda: evse.status().current_a == 0.0, 15.0, context=evse.status)
        assert evse.status().limited_by == "safety:soc_floor"
        power = min(7_000.0, 15.0 * evse.status().voltage_v)
        floor = departure_floor_pct(datetime.now(UTC), departure, 50.0, 24.0, power, 0.9)
        assert floor is not None
        # Rounded SoC and three 100 ms cycles of 30 A at 400x (see test_chademo_departure.py).
        assert floor - 0.5 - 3 * 0.52 <= battery.soc_pct <= floor + 1.0
        held_at = battery.soc_pct

        past = format_datetime(datetime.now(UTC) - timedelta(minutes=1))
        model.set_variables(
            [
                {
                    "component": {"name": "V2XCtrlr", "evse": {"id": 1}},
                    "variable": {"name": "DepartureTime"},
                    "attributeValue": past,
                }
            ]
        )
        await wait_until(lambda: battery.soc_pct < held_at - 3.0, 10.0, context=evse.status)
