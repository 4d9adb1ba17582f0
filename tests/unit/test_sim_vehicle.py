"""The simulated vehicle and the simulated DC link, stepped with a fake clock."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import can
import pytest

from chargepoint_firmware.chademo.frames import (
    ChargerCapabilities,
    ChargerStatus,
    VehicleDischargeLimits,
    VehicleStatus,
    decode,
    encode,
)
from chargepoint_firmware.hardware.ports import InsulationResult
from chargepoint_firmware.hardware.sim_ports import (
    DcLink,
    SimConnector,
    SimGridMeter,
    SimInsulationMonitor,
    simulated_ports,
)
from chargepoint_firmware.hardware.sim_vehicle import Battery, SimVehicle, SimVehicleConfig
from tests.support.chademo_sim import unique_channel


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def buses() -> Iterator[tuple[can.BusABC, can.BusABC]]:
    channel = unique_channel("simvehicle")
    vehicle_bus = can.Bus(interface="virtual", channel=channel)
    charger_bus = can.Bus(interface="virtual", channel=channel)
    yield vehicle_bus, charger_bus
    vehicle_bus.shutdown()
    charger_bus.shutdown()


def drain(bus: can.BusABC) -> list[object]:
    frames = []
    while (msg := bus.recv(0)) is not None:
        frames.append(decode(msg.arbitration_id, bytes(msg.data)))
    return frames


def charger_says(vehicle: SimVehicle, *frames: ChargerCapabilities | ChargerStatus) -> None:
    for frame in frames:
        can_id, data = encode(frame)
        vehicle._on_message(can.Message(arbitration_id=can_id, data=data, is_extended_id=False))


# --- battery --------------------------------------------------------------------------------


def test_leaf_like_ocv_curve_is_monotonic_and_in_the_360_400_v_band() -> None:
    battery = Battery()
    voltages = []
    for soc in range(0, 101, 5):
        battery.soc_pct = float(soc)
        voltages.append(battery.ocv_v())
    assert voltages == sorted(voltages)
    battery.soc_pct = 73.0
    assert battery.ocv_v() == pytest.approx(374.0)  # the log: 374 V at 73 %
    for soc in (20.0, 50.0, 90.0, 100.0):
        battery.soc_pct = soc
        assert 360.0 <= battery.ocv_v() <= 400.0


def test_battery_integrates_energy_both_ways() -> None:
    battery = Battery(capacity_kwh=24.0, soc_pct=50.0, internal_resistance_ohm=0.1)
    energy = battery.apply(10.0, 3600.0)  # 10 A for one hour
    expected = (368.0 + 10.0 * 0.1) * 10.0  # Wh at the terminal voltage (OCV moves a little)
    assert energy == pytest.approx(expected, rel=0.02)
    stored = 368.0 * 10.0  # only the OCV part is stored; 10 A^2 x 0.1 ohm = 10 W is heat
    assert battery.soc_pct == pytest.approx(50.0 + stored / 24_000 * 100)
    out = battery.apply(-10.0, 3600.0)
    assert out < 0 and battery.soc_pct < 50.0 + stored / 24_000 * 100


def test_battery_round_trip_loses_i2r_heat_and_creates_no_charge() -> None:
    battery = Battery(capacity_kwh=24.0, soc_pct=50.0, internal_resistance_ohm=0.1)
    energy_in = sum(battery.apply(10.0, 1.0) for _ in range(3600))
    energy_out = -sum(battery.apply(-10.0, 1.0) for _ in range(3600))
    # The same charge in and out along the same OCV curve: SoC back where it started, and the
    # terminals saw 2 x I^2 R x 1 h = 20 Wh more going in than coming out.
    assert battery.soc_pct == pytest.approx(50.0, abs=0.005)
    assert energy_in - energy_out == pytest.approx(20.0, rel=0.05)


# --- DC link --------------------------------------------------------------------------------


def test_dc_link_current_needs_d2_and_the_ev_contactor_and_slews() -> None:
    clock = FakeClock()
    link = DcLink(clock=clock, slew_a_per_s=100.0)
    link.battery_ocv_v, link.battery_resistance_ohm = 370.0, 0.1
    link.commanded_current_a, link.voltage_limit_v = 20.0, 435.0
    assert link.current_a() == 0.0
    link.d2_on = True
    clock.now += 1.0
    assert link.current_a() == 0.0  # EV contactor still open
    link.ev_contactor_closed = True
    link.update()
    clock.now += 0.1
    assert link.current_a() == pytest.approx(10.0)  # 100 A/s for 100 ms
    clock.now += 0.1
    assert link.current_a() == pytest.approx(20.0)
    assert link.voltage_v() == pytest.approx(372.0)  # OCV + I * R
    link.commanded_current_a = -15.0
    clock.now += 0.5
    assert link.current_a() == pytest.approx(-15.0)
    link.ev_contactor_closed = False
    assert link.current_a() == 0.0  # an open contactor interrupts at once


def test_dc_link_default_power_stage_meets_the_chademo_stop_time() -> None:
    # docs/chademo.md: current <= 5 A within 0.5 s of a stop, from any current up to 255 A.
    clock = FakeClock()
    link = DcLink(clock=clock, d2_on=True, ev_contactor_closed=True, battery_ocv_v=370.0)
    link.commanded_current_a, link.voltage_limit_v = 255.0, 435.0
    link.update()
    clock.now += 2.0
    assert link.current_a() == pytest.approx(255.0)
    link.commanded_current_a = 0.0
    for _ in range(5):  # five 100 ms control cycles
        clock.now += 0.1
        link.update()
    assert abs(link.current_a()) <= 5.0


def test_dc_link_does_not_charge_past_the_voltage_limit() -> None:
    clock = FakeClock()
    link = DcLink(clock=clock, d2_on=True, ev_contactor_closed=True, battery_ocv_v=436.0)
    link.commanded_current_a, link.voltage_limit_v = 10.0, 435.0
    clock.now += 1.0
    assert link.current_a() == 0.0


def test_insulation_test_drives_the_test_voltage_then_decays() -> None:
    clock = FakeClock()
    connector = SimConnector(link=DcLink(clock=clock, decay_tau_s=0.1))
    monitor = SimInsulationMonitor(connector, duration_s=1.0, test_voltage_v=500.0)
    assert monitor.test_result() is InsulationResult.IDLE
    monitor.start_test()
    clock.now += 0.5
    assert monitor.test_result() is InsulationResult.RUNNING
    assert connector.link.voltage_v() > 490.0
    clock.now += 0.6
    assert monitor.test_result() is InsulationResult.PASSED
    clock.now += 1.0
    assert connector.link.voltage_v() < 10.0
    monitor.fault = True
    assert monitor.test_result() is InsulationResult.FAILED and monitor.fault_present()


def test_grid_meter_setters() -> None:
    grid = SimGridMeter()
    assert grid.voltage_present() and grid.frequency_hz() == 50.0
    grid.set_frequency(49.7)
    assert grid.frequency_hz() == 49.7
    grid.set_present(False)
    assert not grid.voltage_present() and grid.frequency_hz() is None


# --- vehicle sequence ----------------------------------------------------------------------


def make_vehicle(
    buses: tuple[can.BusABC, can.BusABC], **config: float
) -> tuple[SimVehicle, SimConnector, FakeClock]:
    clock = FakeClock()
    connector = SimConnector(link=DcLink(clock=clock))
    settings = SimVehicleConfig(permission_delay_s=0.2, contactor_delay_s=0.2, request_delay_s=0.2)
    for name, value in config.items():
        setattr(settings, name, value)
    vehicle = SimVehicle(buses[0], connector, Battery(soc_pct=50.0), settings, clock=clock)
    return vehicle, connector, clock


def run(vehicle: SimVehicle, clock: FakeClock, seconds: float) -> None:
    for _ in range(round(seconds / 0.1)):
        clock.now += 0.1
        vehicle.tick()


def bring_to_energy_transfer(
    vehicle: SimVehicle, connector: SimConnector, clock: FakeClock, available_a: int = 15
) -> None:
    vehicle.plug_in()
    connector.d1_on = True
    run(vehicle, clock, 0.3)
    charger_says(vehicle, ChargerCapabilities(available_output_current_a=available_a))
    charger_says(vehicle, ChargerStatus(protocol_number=2))
    run(vehicle, clock, 0.3)
    assert vehicle.charging_enabled
    connector.locked = True
    connector.link.d2_on = True
    run(vehicle, clock, 0.5)
    assert vehicle.contactor_closed and connector.link.ev_contactor_closed


def test_vehicle_is_silent_until_d1_and_sends_its_five_frames(
    buses: tuple[can.BusABC, can.BusABC],
) -> None:
    vehicle, connector, clock = make_vehicle(buses)
    vehicle.plug_in()
    run(vehicle, clock, 0.5)
    assert drain(buses[1]) == []
    connector.d1_on = True
    run(vehicle, clock, 0.3)
    frames = drain(buses[1])
    kinds = {type(f).__name__ for f in frames}
    assert kinds == {
        "VehicleChargeLimits",
        "VehicleChargeTime",
        "VehicleStatus",
        "VehicleDischargeLimits",
        "VehicleDischargeEstimate",
    }
    status = next(f for f in frames if isinstance(f, VehicleStatus))
    assert status.discharge_compatible and status.ev_contactor_open
    assert not status.charging_enabled  # not before the charger answers
    assert status.target_battery_voltage_v == 410


def test_request_ramps_2a_per_cycle_and_follows_0x108(
    buses: tuple[can.BusABC, can.BusABC],
) -> None:
    vehicle, connector, clock = make_vehicle(buses)
    bring_to_energy_transfer(vehicle, connector, clock)
    requests = []
    for _ in range(10):
        run(vehicle, clock, 0.1)
        requests.append(vehicle.request_a)
    steps = [b - a for a, b in itertools.pairwise(requests) if b != a]
    assert steps and all(step == pytest.approx(2.0) for step in steps[:-1])
    assert max(requests) == 15.0  # capped by the charger's 0x108 byte 3
    charger_says(vehicle, ChargerCapabilities(available_output_current_a=0))
    assert vehicle.request_a == 0.0  # drops at once (direction change, as in the log)
    charger_says(vehicle, ChargerCapabilities(available_output_current_a=6))
    run(vehicle, clock, 1.0)
    assert vehicle.request_a == 6.0


def test_discharge_limit_ramps_and_respects_the_soc_floor(
    buses: tuple[can.BusABC, can.BusABC],
) -> None:
    vehicle, connector, clock = make_vehicle(buses, max_discharge_current_a=10)
    bring_to_energy_transfer(vehicle, connector, clock)
    drain(buses[1])
    run(vehicle, clock, 1.0)
    limits = [f for f in drain(buses[1]) if isinstance(f, VehicleDischargeLimits)]
    values = [f.max_discharge_current_a for f in limits]
    assert values == sorted(values) and values[-1] == 10
    assert all(b - a <= 2 for a, b in itertools.pairwise(values))
    vehicle.battery.soc_pct = 19.0  # below the 20 % floor it advertises
    run(vehicle, clock, 0.2)
    limits = [f for f in drain(buses[1]) if isinstance(f, VehicleDischargeLimits)]
    assert limits[-1].max_discharge_current_a == 0


def test_time_scale_multiplies_the_energy_per_real_second(
    buses: tuple[can.BusABC, can.BusABC],
) -> None:
    results = []
    for scale in (1.0, 60.0):
        vehicle, connector, clock = make_vehicle(buses, time_scale=scale)
        bring_to_energy_transfer(vehicle, connector, clock)
        connector.link.commanded_current_a, connector.link.voltage_limit_v = 10.0, 435.0
        run(vehicle, clock, 0.5)  # let the current settle
        before = vehicle.energy_in_wh
        run(vehicle, clock, 2.0)
        results.append(vehicle.energy_in_wh - before)
    assert results[1] == pytest.approx(results[0] * 60.0, rel=0.02)
    assert results[0] == pytest.approx(370 * 10 * 2.0 / 3600, rel=0.05)


def test_stop_after_charger_stop_waits_for_low_current_then_opens_contactor(
    buses: tuple[can.BusABC, can.BusABC],
) -> None:
    vehicle, connector, clock = make_vehicle(buses, weld_check_s=0.3)
    bring_to_energy_transfer(vehicle, connector, clock)
    charger_says(vehicle, ChargerStatus(charger_delivering=True, stop_control=False))
    connector.link.commanded_current_a, connector.link.voltage_limit_v = 15.0, 435.0
    run(vehicle, clock, 0.5)
    charger_says(vehicle, ChargerStatus(charger_delivering=True, stop_control=True))
    run(vehicle, clock, 0.5)
    assert not vehicle.charging_enabled
    assert vehicle.contactor_closed  # 15 A still flowing: never open under load
    connector.link.commanded_current_a = 0.0
    run(vehicle, clock, 0.2)
    assert vehicle.contactor_closed  # weld check time
    run(vehicle, clock, 0.3)
    assert not vehicle.contactor_closed


@pytest.mark.parametrize(
    "flag",
    [
        "fault_battery_overvoltage",
        "fault_battery_undervoltage",
        "fault_battery_current_deviation",
        "fault_high_battery_temperature",
        "fault_battery_voltage_deviation",
        "fault_vehicle_charging_system",
    ],
)
def test_fault_injection_sets_the_flag_on_the_wire(
    buses: tuple[can.BusABC, can.BusABC], flag: str
) -> None:
    vehicle, connector, clock = make_vehicle(buses)
    bring_to_energy_transfer(vehicle, connector, clock)
    vehicle.inject_fault(flag)
    drain(buses[1])
    run(vehicle, clock, 0.1)
    status = next(f for f in drain(buses[1]) if isinstance(f, VehicleStatus))
    assert getattr(status, flag) is True
    assert status.charging_current_request_a == 0


def test_other_injections_show_on_the_wire(buses: tuple[can.BusABC, can.BusABC]) -> None:
    vehicle, connector, clock = make_vehicle(buses)
    bring_to_energy_transfer(vehicle, connector, clock)
    vehicle.shift_out_of_park()
    vehicle.set_normal_stop_flag()
    drain(buses[1])
    run(vehicle, clock, 0.1)
    status = next(f for f in drain(buses[1]) if isinstance(f, VehicleStatus))
    assert status.shift_not_park and status.normal_stop_request and not status.charging_enabled
    vehicle.go_silent()
    run(vehicle, clock, 0.5)
    assert drain(buses[1]) == []
    with pytest.raises(ValueError, match="unknown fault flag"):
        vehicle.inject_fault("nope")


def test_voltage_deviation_is_detected_by_the_car(buses: tuple[can.BusABC, can.BusABC]) -> None:
    vehicle, connector, clock = make_vehicle(buses)
    bring_to_energy_transfer(vehicle, connector, clock)
    ocv = round(vehicle.battery.ocv_v())
    charger_says(vehicle, ChargerStatus(output_voltage_v=ocv))
    run(vehicle, clock, 0.5)
    assert not any(vehicle._rt.flags.values())
    vehicle.inject_voltage_deviation(30.0)
    charger_says(vehicle, ChargerStatus(output_voltage_v=ocv))
    run(vehicle, clock, 0.1)
    assert not vehicle._rt.flags["fault_battery_voltage_deviation"]  # detection takes 0.2 s
    run(vehicle, clock, 0.3)
    assert vehicle._rt.flags["fault_battery_voltage_deviation"]


def test_simulated_ports_share_the_connector() -> None:
    connector = SimConnector()
    ports, sims = simulated_ports(connector)
    ports.d1.set_on(True)
    ports.d2.set_on(True)
    assert connector.d1_on and connector.link.d2_on
    assert sims.d1.history[-1][1] is True
    connector.plugged = True
    assert ports.plug.is_plugged()
    sims.lock.actuation_s = 0.0
    ports.lock.set_locked(True)
    assert ports.lock.is_locked() and connector.locked
    sims.lock.jammed = True
    ports.lock.set_locked(False)
    ports.lock.set_locked(True)
    assert not ports.lock.is_locked()
