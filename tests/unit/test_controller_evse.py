"""ChademoEvse tick by tick with a fake clock and an in-memory CAN link (deterministic)."""

from __future__ import annotations

import pytest

from chargepoint_firmware.chademo.controller import ChargerState
from chargepoint_firmware.hardware.chademo_evse import ChademoEvse, ChademoEvseConfig
from chargepoint_firmware.hardware.sim_ports import DcLink, SimConnector, simulated_ports
from chargepoint_firmware.hardware.sim_vehicle import Battery, SimVehicle, SimVehicleConfig
from chargepoint_firmware.interfaces import (
    EvseSetpoint,
    HardwareEvent,
    HardwareEventKind,
    SessionState,
)
from chargepoint_firmware.safety import SafetyConfig
from tests.support.chademo_sim import LoopbackBus


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Bench:
    def __init__(self, config: ChademoEvseConfig | None = None, soc: float = 60.0) -> None:
        self.clock = FakeClock()
        self.connector = SimConnector(link=DcLink(clock=self.clock))
        self.ports, self.sims = simulated_ports(self.connector)
        self.sims.insulation.duration_s = 0.3
        evse_bus, vehicle_bus = LoopbackBus.pair()
        self.evse = ChademoEvse(
            config or ChademoEvseConfig(),
            self.ports,
            bus=evse_bus,
            clock=self.clock,  # type: ignore[arg-type]
        )
        self.vehicle = SimVehicle(
            vehicle_bus,  # type: ignore[arg-type]
            self.connector,
            Battery(soc_pct=soc),
            SimVehicleConfig(permission_delay_s=0.2),
            clock=self.clock,
        )
        evse_bus.handler = self.evse._on_message
        vehicle_bus.handler = self.vehicle._on_message
        self.evse_bus, self.vehicle_bus = evse_bus, vehicle_bus
        self.events: list[HardwareEvent] = []
        self.evse.subscribe(self.events.append)
        self.energy_wh = 0.0

    def run(self, seconds: float) -> None:
        for _ in range(round(seconds / 0.1)):
            self.clock.now += 0.1
            self.vehicle.tick()
            self.vehicle_bus.fire_periodic()
            self.evse.tick()
            self.evse_bus.fire_periodic()
            status = self.evse.status()
            self.energy_wh += status.voltage_v * status.current_a * 0.1 / 3600.0

    def start(self) -> None:
        self.evse.set_csms_connected(True)
        self.vehicle.plug_in()
        self.evse.allow_energy_transfer(True)
        for _ in range(100):
            self.run(0.1)
            if self.evse.controller_state.state is ChargerState.CHARGING:
                return
        raise AssertionError(f"no transfer: {self.evse.controller_state.state}")


def test_power_setpoint_becomes_current_at_the_battery_voltage() -> None:
    bench = Bench()
    bench.evse.set_setpoint(EvseSetpoint(evse_id=1, limit=3000.0, unit="W"))
    bench.start()
    bench.run(2.0)
    status = bench.evse.status()
    assert status.current_a == pytest.approx(3000.0 / status.voltage_v, abs=0.3)
    assert status.power_w == pytest.approx(3000.0, rel=0.05)
    bench.evse.set_setpoint(EvseSetpoint(evse_id=1, limit=-2000.0, unit="W"))
    bench.run(2.0)
    status = bench.evse.status()
    assert status.state is SessionState.DISCHARGING
    assert status.power_w == pytest.approx(-2000.0, rel=0.05)


def test_energy_registers_integrate_measured_power() -> None:
    bench = Bench()
    bench.start()
    import_at_start = bench.evse.status().energy_import_wh
    bench.energy_wh = 0.0
    bench.run(5.0)
    status = bench.evse.status()
    assert status.energy_import_wh - import_at_start == pytest.approx(bench.energy_wh, rel=0.03)
    assert status.energy_import_wh > 0 and status.energy_export_wh == 0.0
    bench.evse.set_setpoint(EvseSetpoint(evse_id=1, limit=-10.0, unit="A"))
    bench.run(3.0)
    after = bench.evse.status()
    assert after.energy_export_wh > 0
    assert after.energy_import_wh >= status.energy_import_wh  # registers only grow


def test_offline_fallback_applies_after_the_timeout() -> None:
    safety = SafetyConfig(
        max_charge_current_a=15,
        max_discharge_current_a=15,
        max_charge_power_w=7000,
        max_discharge_power_w=7000,
        min_voltage_v=150,
        max_voltage_v=500,
        offline_timeout_s=2.0,
        offline_safe_limit_a=6.0,
    )
    bench = Bench(ChademoEvseConfig(safety=safety))
    bench.evse.set_setpoint(EvseSetpoint(evse_id=1, limit=-10.0, unit="A"))
    bench.evse.set_csms_connected(True)
    bench.vehicle.plug_in()
    bench.evse.allow_energy_transfer(True)
    bench.run(6.0)
    assert bench.evse.status().current_a == pytest.approx(-10.0)
    bench.evse.set_csms_connected(False)
    bench.run(1.5)
    assert bench.evse.status().current_a == pytest.approx(-10.0)  # not yet
    bench.run(1.0)
    status = bench.evse.status()
    assert status.current_a == 0.0  # never discharge offline
    bench.evse.set_setpoint(EvseSetpoint(evse_id=1, limit=None))
    bench.run(3.0)
    assert bench.evse.status().current_a == pytest.approx(6.0)  # the offline safe limit


def test_reset_faults_reports_and_clears() -> None:
    bench = Bench()
    bench.start()
    bench.sims.emergency_stop.press()
    bench.run(0.2)
    assert "emergency_stop" in bench.evse.status().latched_faults
    assert bench.evse.status().state is SessionState.FAULTED
    faults = [e.detail for e in bench.events if e.kind is HardwareEventKind.FAULT]
    assert faults == ["emergency_stop"]
    bench.sims.emergency_stop.release()
    assert bench.evse.reset_faults() == ("emergency_stop",)
    assert bench.evse.status().latched_faults == ()
    assert bench.evse.status().state is not SessionState.FAULTED
    bench.run(0.1)
    assert bench.evse.status().latched_faults == ()
    cleared = [e.detail for e in bench.events if e.kind is HardwareEventKind.FAULT_CLEARED]
    assert cleared == ["emergency_stop"]
    assert bench.evse.reset_faults() == ()


def test_status_reports_the_vehicle_limits() -> None:
    bench = Bench(soc=55.0)
    bench.start()
    bench.run(1.0)
    status = bench.evse.status()
    assert status.plugged and status.soc_pct == pytest.approx(55.0, abs=1.0)
    vehicle = status.vehicle
    assert vehicle.max_voltage_v == 435 and vehicle.min_discharge_voltage_v == 250
    assert vehicle.discharge_compatible and vehicle.battery_capacity_kwh == 24.0
    assert vehicle.min_soc_for_discharge_pct == 20 and vehicle.max_soc_for_charge_pct == 95
    assert status.grid_present and status.grid_frequency_hz == 50.0
    assert status.commanded_current_a == pytest.approx(15.0)
    assert status.limited_by  # names the binding limit


def test_grid_loss_with_islanded_backup_keeps_supplying_the_house() -> None:
    safety = SafetyConfig(
        max_charge_current_a=15,
        max_discharge_current_a=15,
        max_charge_power_w=7000,
        max_discharge_power_w=7000,
        min_voltage_v=150,
        max_voltage_v=500,
        islanded_backup_enabled=True,
    )
    bench = Bench(ChademoEvseConfig(safety=safety))
    bench.evse.set_setpoint(EvseSetpoint(evse_id=1, limit=-8.0, unit="A"))
    bench.evse.set_csms_connected(True)
    bench.vehicle.plug_in()
    bench.evse.allow_energy_transfer(True)
    bench.run(6.0)
    assert bench.evse.status().current_a == pytest.approx(-8.0)
    bench.sims.grid.set_present(False)
    bench.run(0.5)
    assert bench.evse.status().current_a == pytest.approx(-8.0)  # islanded: the house runs on
    kinds = [(e.kind, e.detail) for e in bench.events]
    assert (HardwareEventKind.GRID_LOST, "grid_loss") in kinds
    assert (HardwareEventKind.BACKUP_MODE, "started") in kinds
    bench.sims.grid.set_present(True)
    bench.run(0.2)
    kinds = [(e.kind, e.detail) for e in bench.events]
    assert (HardwareEventKind.GRID_RESTORED, "") in kinds
    assert (HardwareEventKind.BACKUP_MODE, "ended") in kinds


def test_grid_loss_without_backup_stops_export_in_the_same_tick() -> None:
    bench = Bench()
    bench.evse.set_setpoint(EvseSetpoint(evse_id=1, limit=-8.0, unit="A"))
    bench.evse.set_csms_connected(True)
    bench.vehicle.plug_in()
    bench.evse.allow_energy_transfer(True)
    bench.run(6.0)
    assert bench.evse.status().current_a == pytest.approx(-8.0)
    bench.sims.grid.set_present(False)
    bench.run(0.1)
    assert bench.sims.power_stage.commanded_current_a() == 0.0
    assert bench.evse.status().limited_by == "safety:grid_loss"


def test_failed_precharge_insulation_test_latches_and_is_reported() -> None:
    bench = Bench()
    bench.sims.insulation.test_fails = True
    bench.vehicle.plug_in()
    bench.evse.allow_energy_transfer(True)
    bench.run(5.0)
    assert bench.evse.controller_state.state is ChargerState.ENDED
    assert bench.evse.controller_state.error_stop
    status = bench.evse.status()
    assert status.latched_faults == ("insulation_fault",)
    assert status.state is SessionState.FAULTED
    faults = [e.detail for e in bench.events if e.kind is HardwareEventKind.FAULT]
    assert faults == ["insulation_fault"]  # once, with its cause
    assert bench.sims.power_stage.commands == [] or all(
        current == 0.0 for _, current in bench.sims.power_stage.commands
    )
    assert not bench.vehicle.contactor_closed  # d2 never came on


def test_controller_error_stop_is_a_fault_event_with_its_cause() -> None:
    bench = Bench()
    bench.sims.lock.jammed = True
    bench.vehicle.plug_in()
    bench.evse.allow_energy_transfer(True)
    bench.run(15.0)
    faults = [e.detail for e in bench.events if e.kind is HardwareEventKind.FAULT]
    assert faults == ["connector_lock_failed"]
    ended = [e.detail for e in bench.events if e.kind is HardwareEventKind.SESSION_ENDED]
    assert ended == ["connector_lock_failed"]
