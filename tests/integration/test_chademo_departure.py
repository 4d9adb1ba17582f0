"""ChademoEvse + simulated vehicle on a python-can `virtual` bus: the departure SoC floor.

A discharge request stops at the SoC from which the car can still be charged to the departure
target in time, not at the driving reserve. The simulated battery runs 400x faster than the
wall clock, while the departure is measured on the wall clock, so the floor barely moves
during a test.

SoC reaches the EVSE as a rounded whole percent (0x102 byte 6), and between the battery and
the stopped current lie up to three 100 ms cycles (the age of the last 0x102, the EVSE tick,
the DC link ramping down). At 400x one cycle of 30 A moves a 24 kWh battery by ~0.5 %, so the
bounds below allow for that resolution and lag and nothing more (on a real car at 1x the lag
is worth ~0.001 %).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from chargepoint_firmware.hardware.chademo_evse import ChademoEvseConfig
from chargepoint_firmware.hardware.sim_vehicle import Battery, SimVehicleConfig
from chargepoint_firmware.interfaces import EvseSetpoint, SessionState
from chargepoint_firmware.safety.departure import departure_floor_pct
from tests.support.chademo_sim import Rig, running_sim, start_session, wait_ticks, wait_until

TIME_SCALE = 400.0
# 30 A discharge so that a test crosses tens of percent in seconds; charge stays at 15 A.
CONFIG = ChademoEvseConfig(
    max_discharge_current_a=30.0,
    max_discharge_power_w=12_000.0,
    max_charge_current_a=15.0,
    max_charge_power_w=7_000.0,
)
VEHICLE = SimVehicleConfig(
    permission_delay_s=0.2, time_scale=TIME_SCALE, max_discharge_current_a=30
)
# One 100 ms tick of 30 A at ~370 V, 400x, on 24 kWh: ~0.5 % SoC.
TICK_SOC_PCT = 30 * 370.0 * 0.1 * TIME_SCALE / 3600.0 / 24_000.0 * 100.0
RESOLUTION_PCT = 0.5  # 0x102 byte 6 is a rounded whole percent
LAG_TICKS = 3


def lowest_allowed(floor: float, capacity_kwh: float = 24.0) -> float:
    return floor - RESOLUTION_PCT - LAG_TICKS * TICK_SOC_PCT * 24.0 / capacity_kwh


def expected_floor(rig: Rig, departure: datetime, target: float) -> float:
    """The floor as the EVSE should compute it now: 24 kWh from 0x101, 15 A at the battery
    voltage (7 kW cap), 90 % efficiency."""
    voltage = rig.sim.evse.status().voltage_v
    power = min(7_000.0, 15.0 * voltage)
    floor = departure_floor_pct(datetime.now(UTC), departure, target, 24.0, power, 0.9)
    assert floor is not None
    return floor


async def discharge(rig: Rig) -> None:
    evse = rig.sim.evse
    evse.set_csms_connected(True)
    evse.set_setpoint(EvseSetpoint(evse_id=1, limit=-30.0, unit="A"))
    await start_session(rig)
    await wait_until(lambda: evse.status().current_a <= -5.0, 5.0)


async def test_discharge_stops_at_the_departure_floor_not_at_the_reserve() -> None:
    async with running_sim(CONFIG, battery=Battery(soc_pct=50.0), vehicle_config=VEHICLE) as rig:
        evse, battery = rig.sim.evse, rig.sim.vehicle.battery
        # 50 % needed in 10 minutes: ~0.83 kWh can still be charged, so the floor is ~46.5 %.
        departure = datetime.now(UTC) + timedelta(minutes=10)
        evse.set_departure(departure, 50.0)
        await discharge(rig)
        floor = expected_floor(rig, departure, 50.0)
        assert 45.5 < floor < 47.5
        await wait_until(lambda: evse.status().current_a == 0.0, 15.0, context=evse.status)
        status = evse.status()
        assert status.state is SessionState.SUSPENDED
        assert status.limited_by == "safety:soc_floor"
        assert battery.soc_pct >= lowest_allowed(floor)
        assert battery.soc_pct <= floor + 1.0  # stopped at the floor, not somewhere above it
        # Five more control cycles (~200 s of battery time), each re-evaluating the floor:
        # none of them discharges (counted, so a stalled loop cannot pass this vacuously).
        ticks = await wait_ticks(evse, 5)
        assert all(t.commanded_a >= 0.0 for t in ticks), ticks
        assert battery.soc_pct >= lowest_allowed(floor)
        assert evse.status().current_a == 0.0
        assert evse.status().energy_export_wh > 0


async def test_discharge_without_departure_goes_down_to_the_reserve() -> None:
    async with running_sim(CONFIG, battery=Battery(soc_pct=50.0), vehicle_config=VEHICLE) as rig:
        evse, battery = rig.sim.evse, rig.sim.vehicle.battery
        assert evse.departure == (None, None)
        await discharge(rig)
        await wait_until(lambda: battery.soc_pct < 44.0, 15.0)  # through a 50 % target's floor
        await wait_until(lambda: evse.status().current_a == 0.0, 20.0, context=evse.status)
        assert evse.status().limited_by == "safety:soc_floor"
        # The driving reserve and the car's 0x200 minimum are both 20 %.
        assert lowest_allowed(20.0) <= battery.soc_pct <= 20.0 + RESOLUTION_PCT


@pytest.mark.parametrize("how", ["cleared", "passed"])
async def test_discharge_resumes_once_the_departure_is_cleared_or_has_passed(how: str) -> None:
    async with running_sim(CONFIG, battery=Battery(soc_pct=49.0), vehicle_config=VEHICLE) as rig:
        evse, battery = rig.sim.evse, rig.sim.vehicle.battery
        departure = datetime.now(UTC) + timedelta(minutes=10)
        evse.set_departure(departure, 50.0)
        await discharge(rig)
        await wait_until(lambda: evse.status().current_a == 0.0, 15.0, context=evse.status)
        held_at = battery.soc_pct
        assert held_at > 44.0
        if how == "cleared":
            evse.set_departure(None, None)
        else:  # the CSMS moved the departure into the past: it constrains nothing any more
            evse.set_departure(datetime.now(UTC) - timedelta(seconds=1), 50.0)
        await wait_until(lambda: evse.status().current_a <= -5.0, 5.0, context=evse.status)
        await wait_until(lambda: battery.soc_pct < held_at - 3.0, 10.0)


async def test_the_vehicle_capacity_from_0x101_sets_the_floor() -> None:
    # A 40 kWh car: the same 0.83 kWh is fewer percent, so the floor is higher (~47.9 %) than
    # the 24 kWh car's, and lower than the configured 62 kWh default would give (~48.7 %).
    battery = Battery(soc_pct=50.0, capacity_kwh=40.0)
    async with running_sim(CONFIG, battery=battery, vehicle_config=VEHICLE) as rig:
        evse = rig.sim.evse
        departure = datetime.now(UTC) + timedelta(minutes=10)
        evse.set_departure(departure, 50.0)
        await discharge(rig)
        assert evse.vehicle.charge_time is not None
        assert evse.vehicle.charge_time.total_battery_capacity_wh == 40_000
        await wait_until(lambda: evse.status().current_a == 0.0, 15.0, context=evse.status)
        voltage = evse.status().voltage_v
        power = min(7_000.0, 15.0 * voltage)
        floor = departure_floor_pct(datetime.now(UTC), departure, 50.0, 40.0, power, 0.9)
        assert floor is not None
        assert lowest_allowed(floor, 40.0) <= battery.soc_pct <= floor + 1.0


def test_departure_must_be_time_zone_aware_and_target_a_percentage() -> None:
    from chargepoint_firmware.hardware.chademo_evse import ChademoEvse
    from chargepoint_firmware.hardware.sim_ports import SimConnector, simulated_ports

    ports, _ = simulated_ports(SimConnector())
    evse = ChademoEvse(CONFIG, ports)
    with pytest.raises(ValueError):
        evse.set_departure(datetime(2026, 11, 26, 18, 0), 80.0)
    with pytest.raises(ValueError):
        evse.set_departure(datetime.now(UTC), 120.0)
    evse.set_departure(datetime(2026, 11, 26, 18, 0, tzinfo=UTC), 80.0)
    assert evse.departure == (datetime(2026, 11, 26, 18, 0, tzinfo=UTC), 80.0)


def test_bad_capacity_or_efficiency_is_a_configuration_error() -> None:
    with pytest.raises(ValueError):
        ChademoEvseConfig(battery_capacity_kwh=0.0)
    with pytest.raises(ValueError):
        ChademoEvseConfig(charge_efficiency=1.5)
