"""The charger's pure tick rules: W -> A, the offered current, the departure floor, one step."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from chargepoint_firmware.chademo.charger_rules import (
    ChargerRulesConfig,
    ChargerStepInputs,
    charger_step,
    departure_floor,
    discharge_soc_limit_pct,
    offered_charge_current_a,
    setpoint_to_current_a,
    wanted_direction,
)
from chargepoint_firmware.chademo.controller import (
    ChargerState,
    ControllerConfig,
    ControllerState,
    Direction,
    InsulationResult,
)
from chargepoint_firmware.chademo.frames import VehicleChargeTime, VehicleDischargeLimits
from chargepoint_firmware.chademo.vehicle_view import VehicleView
from chargepoint_firmware.safety import SafetyConfig, SafetyState
from tests.support.chademo_sim import EV_LIMITS, ev_status

CONFIG = ChargerRulesConfig(
    controller=ControllerConfig(),
    safety=SafetyConfig(
        max_charge_current_a=15,
        max_discharge_current_a=15,
        max_charge_power_w=7000,
        max_discharge_power_w=7000,
        min_voltage_v=150,
        max_voltage_v=500,
    ),
    max_charge_current_a=15.0,
    max_charge_power_w=3_000.0,
    min_voltage_v=150.0,
    battery_capacity_kwh=40.0,
    charge_efficiency=0.9,
)
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def test_power_setpoints_become_amps_at_the_battery_voltage() -> None:
    assert setpoint_to_current_a(3700.0, "W", 370.0, unlimited_a=15.0) == pytest.approx(10.0)
    assert setpoint_to_current_a(-3000.0, "W", 375.0, unlimited_a=15.0) == pytest.approx(-8.0)
    assert setpoint_to_current_a(12.5, "A", 370.0, unlimited_a=15.0) == 12.5
    assert setpoint_to_current_a(-7.0, "A", 0.0, unlimited_a=15.0) == -7.0
    assert setpoint_to_current_a(None, "W", 370.0, unlimited_a=15.0) == 15.0
    # No battery voltage yet: a power limit cannot be converted, so nothing flows.
    assert setpoint_to_current_a(3700.0, "W", 0.0, unlimited_a=15.0) == 0.0
    assert setpoint_to_current_a(math.nan, "W", 370.0, unlimited_a=15.0) == 0.0


def test_wanted_direction_follows_the_sign_of_the_request() -> None:
    assert wanted_direction(3.0) is Direction.CHARGE
    assert wanted_direction(-0.1) is Direction.DISCHARGE
    assert wanted_direction(0.0) is Direction.NONE


def test_offered_current_is_the_wish_within_the_evse_current_and_power_limits() -> None:
    assert offered_charge_current_a(CONFIG, 10.0, 400.0, frozenset()) == 7.5  # 3 kW / 400 V
    assert offered_charge_current_a(CONFIG, 5.0, 400.0, frozenset()) == 5.0  # the wish
    small = replace(CONFIG, max_charge_power_w=1_500.0)  # unknown voltage: the EVSE minimum
    assert offered_charge_current_a(small, 40.0, 0.0, frozenset()) == pytest.approx(1500 / 150)
    big = replace(CONFIG, max_charge_power_w=100_000.0)
    assert offered_charge_current_a(big, 40.0, 400.0, frozenset()) == 15.0  # current limit
    assert offered_charge_current_a(CONFIG, 10.0, 400.0, frozenset({"emergency_stop"})) == 0.0
    assert offered_charge_current_a(CONFIG, -10.0, 400.0, frozenset()) == 0.0


def test_departure_floor_uses_the_evse_power_and_the_vehicle_capacity_when_known() -> None:
    view = VehicleView()
    assert departure_floor(CONFIG, view, 400.0, True, NOW, None, 80.0) is None
    assert departure_floor(CONFIG, view, 400.0, True, NOW, NOW + timedelta(hours=1), None) is None
    # 3 kW x 0.9 x 2 h = 5.4 kWh = 13.5 % of the configured 40 kWh.
    floor = departure_floor(CONFIG, view, 400.0, True, NOW, NOW + timedelta(hours=2), 80.0)
    assert floor == pytest.approx(80.0 - 13.5)
    # The vehicle's 0x101 says 20 kWh: twice the % per kWh.
    view = view.with_frame(VehicleChargeTime(total_battery_capacity_wh=20_000), 1.0)
    floor = departure_floor(CONFIG, view, 400.0, True, NOW, NOW + timedelta(hours=2), 80.0)
    assert floor == pytest.approx(80.0 - 27.0)
    # ... but only frames of this session count.
    floor = departure_floor(CONFIG, view, 400.0, False, NOW, NOW + timedelta(hours=2), 80.0)
    assert floor == pytest.approx(80.0 - 13.5)
    # A small vehicle request bounds the charge power: 5 A x 400 V = 2 kW.
    view = view.with_frame(ev_status(charging_current_request_a=5), 1.0)
    floor = departure_floor(CONFIG, view, 400.0, True, NOW, NOW + timedelta(hours=2), 80.0)
    assert floor == pytest.approx(80.0 - 100 * 2.0 * 0.9 * 2 / 20)
    with pytest.raises(ValueError, match="wall_now"):
        departure_floor(CONFIG, view, 400.0, True, None, NOW, 80.0)


def test_discharge_soc_limits_come_from_0x200() -> None:
    assert discharge_soc_limit_pct(VehicleView(), "min") is None
    view = VehicleView().with_frame(
        VehicleDischargeLimits(min_soc_for_discharge_pct=20, max_soc_for_charge_pct=95), 0.0
    )
    assert discharge_soc_limit_pct(view, "min") == 20.0
    assert discharge_soc_limit_pct(view, "max") == 95.0


def _inputs(**changes: object) -> ChargerStepInputs:
    base = ChargerStepInputs(
        now=10.0,
        plugged=True,
        terminal_voltage_v=0.0,
        measured_current_a=0.0,
        grid_present=True,
        emergency_stop=False,
        insulation=InsulationResult.IDLE,
        insulation_fault_present=False,
        connector_locked=False,
        authorized=True,
        setpoint_limit=None,
        setpoint_unit="A",
        vehicle=VehicleView(),
        conflicting_sender=False,
        islanded=False,
        csms_connected=True,
        csms_last_seen=10.0,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_step_starts_a_session_and_asks_to_forget_the_last_car() -> None:
    plugged = ControllerState(state=ChargerState.PLUGGED, since=0.0)
    out = charger_step(CONFIG, plugged, SafetyState(), _inputs())
    assert out.state.state is ChargerState.HANDSHAKE and out.command.d1
    assert out.forget_vehicle  # a new session (d1 time changed)
    again = charger_step(CONFIG, out.state, out.decision.state, _inputs(now=10.1))
    assert not again.forget_vehicle


def test_step_latches_a_failed_insulation_test_and_stops() -> None:
    plugged = ControllerState(state=ChargerState.PLUGGED, since=0.0)
    out = charger_step(CONFIG, plugged, SafetyState(), _inputs())
    view = VehicleView().with_frame(EV_LIMITS, 10.05).with_frame(ev_status(), 10.05)
    out = charger_step(
        CONFIG,
        out.state,
        out.decision.state,
        _inputs(now=10.1, vehicle=view, insulation=InsulationResult.FAILED),
    )
    assert "insulation_fault" in out.decision.latched_faults
    assert out.state.state is ChargerState.STOPPING and out.state.error_stop
    assert out.command.output_current_a == 0.0


def test_step_offers_the_power_limit_as_amps_in_0x108() -> None:
    # Mid-charge at 400 V with a 2 kW schedule: the offer is 5 A, whatever the car asks.
    view = (
        VehicleView()
        .with_frame(EV_LIMITS, 9.95)
        .with_frame(
            ev_status(
                charging_enabled=True, ev_contactor_open=False, charging_current_request_a=15
            ),
            9.95,
        )
    )
    charging = ControllerState(
        state=ChargerState.CHARGING,
        since=5.0,
        d1_at=1.0,
        permission_at=2.0,
        d2_at=3.0,
        delivering=True,
        vehicle_enabled_seen=True,
        ev_contactor_closed_seen=True,
    )
    out = charger_step(
        CONFIG,
        charging,
        SafetyState(),
        _inputs(
            vehicle=view,
            terminal_voltage_v=400.0,
            setpoint_limit=2000.0,
            setpoint_unit="W",
            connector_locked=True,
        ),
    )
    assert out.state.state is ChargerState.CHARGING
    capabilities = out.command.frames[0]
    assert capabilities.available_output_current_a == 5  # type: ignore[union-attr]
    assert 0 <= out.command.output_current_a <= 5.0
