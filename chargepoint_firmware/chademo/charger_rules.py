"""One control tick of the CHAdeMO charger as a pure function: `charger_step()`.

The I/O glue (`hardware/chademo_evse.py`, `ChademoEvse.tick`) reads the ports, the vehicle
frames and the clocks into `ChargerStepInputs`, calls `charger_step`, then applies the result
(power stage, relays, lock, cyclic CAN frames, events). The rules in between live here:

  setpoint -> signed amps (W / battery voltage, `setpoint_to_current_a`)
  -> departure SoC floor (`departure_floor_pct` with the charger's own charge power)
  -> safety supervisor (`chargepoint_firmware.safety.supervise`, the last gate)
  -> wanted direction and the charge current offered in 0x108 byte 3
  -> CHAdeMO state machine (`controller.step`).

Pure: never reads a clock (`now` and `wall_now` are inputs), imports no I/O.
Sign convention: + charge (into the vehicle), - discharge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from chargepoint_firmware.chademo.controller import (
    ACTIVE_STATES,
    ChargerState,
    ControllerCommand,
    ControllerConfig,
    ControllerInputs,
    ControllerState,
    Direction,
    InsulationResult,
    step,
)
from chargepoint_firmware.chademo.vehicle_view import VehicleView
from chargepoint_firmware.interfaces import RateUnit
from chargepoint_firmware.safety import (
    SafetyConfig,
    SafetyDecision,
    SafetyInputs,
    SafetyState,
    supervise,
)
from chargepoint_firmware.safety.departure import departure_floor_pct
from v2g_shared.schedule.envelope import EnvelopeBounds

__all__ = [
    "ChargerRulesConfig",
    "ChargerStepInputs",
    "ChargerStepOutputs",
    "charger_step",
    "departure_floor",
    "discharge_soc_limit_pct",
    "offered_charge_current_a",
    "setpoint_to_current_a",
    "wanted_direction",
]

# Limits configured as inf ("none") count as 10 MW for the departure floor's charge power.
_UNLIMITED_POWER_W = 10e6


@dataclass(frozen=True, slots=True)
class ChargerRulesConfig:
    """The EVSE's limits the rules need, plus the controller's and the supervisor's settings."""

    controller: ControllerConfig
    safety: SafetyConfig
    max_charge_current_a: float = 15.0
    max_charge_power_w: float = 7_000.0
    min_voltage_v: float = 150.0
    # Departure floor: battery capacity until the vehicle's 0x101 frame tells it.
    battery_capacity_kwh: float = 62.0
    charge_efficiency: float = 0.9  # DC terminals -> cells


@dataclass(frozen=True, slots=True)
class ChargerStepInputs:
    """Everything one tick reads, gathered by the I/O layer."""

    now: float  # monotonic seconds
    plugged: bool
    terminal_voltage_v: float
    measured_current_a: float
    grid_present: bool
    emergency_stop: bool
    insulation: InsulationResult
    insulation_fault_present: bool  # the insulation monitor's continuous supervision
    connector_locked: bool
    authorized: bool
    setpoint_limit: float | None  # the schedule's limit (None: no network limit)
    setpoint_unit: RateUnit
    vehicle: VehicleView
    conflicting_sender: bool
    islanded: bool
    csms_connected: bool
    csms_last_seen: float | None
    departure: datetime | None = None
    departure_target_pct: float | None = None
    wall_now: datetime | None = None  # needed only with a departure
    envelope: EnvelopeBounds | None = None  # the operating envelope in force (W), a local limit
    der_max_discharge_w: float | None = None  # OCPP 2.1 LimitMaxDischarge in force (W)


@dataclass(frozen=True, slots=True)
class ChargerStepOutputs:
    """The new controller state, the supervisor's decision and the command to apply."""

    state: ControllerState
    decision: SafetyDecision
    command: ControllerCommand
    # A new session began or the cable went: the caller forgets the last car's frames.
    forget_vehicle: bool


def setpoint_to_current_a(
    limit: float | None, unit: RateUnit, voltage_v: float, unlimited_a: float
) -> float:
    """A schedule limit as signed DC amps.

    W become A at the present battery voltage (`voltage_v`); with no usable voltage yet a power
    limit gives 0 A (nothing can be computed safely). `None` means "no network limit":
    `unlimited_a` (the EVSE's own maximum; the vehicle and safety limits still apply).
    """
    if limit is None:
        return unlimited_a
    if not math.isfinite(limit):
        return 0.0
    if unit == "A":
        return float(limit)
    if voltage_v <= 0 or not math.isfinite(voltage_v):
        return 0.0
    return float(limit) / voltage_v


def wanted_direction(requested_a: float) -> Direction:
    """The direction the schedule asks for (before safety)."""
    if requested_a > 0:
        return Direction.CHARGE
    if requested_a < 0:
        return Direction.DISCHARGE
    return Direction.NONE


def offered_charge_current_a(
    config: ChargerRulesConfig,
    requested_a: float,
    battery_voltage_v: float,
    latched_faults: frozenset[str],
) -> float:
    """The charge current to offer in 0x108 byte 3: the schedule's wish within the EVSE's
    current and power limits (power at the battery voltage, at least the EVSE minimum), 0 with
    a latched fault or no charge wish. Not bounded by the car's own request."""
    if requested_a <= 0 or latched_faults:
        return 0.0
    power_voltage = max(battery_voltage_v, config.min_voltage_v)
    return min(requested_a, config.max_charge_current_a, config.max_charge_power_w / power_voltage)


def departure_floor(
    config: ChargerRulesConfig,
    view: VehicleView,
    battery_voltage_v: float,
    this_session: bool,
    wall_now: datetime | None,
    departure: datetime | None,
    target_pct: float | None,
) -> float | None:
    """The SoC discharge must keep to reach the departure target (None: no constraint).

    Charge power: the EVSE's current and power limits at the battery voltage (the EVSE's
    minimum voltage while unknown, which can only understate it), and the vehicle's charge
    request when it is asking for current. Capacity: the vehicle's 0x101 when known.
    """
    if departure is None or target_pct is None:
        return None
    if wall_now is None:
        raise ValueError("wall_now is needed with a departure")
    voltage = max(battery_voltage_v, config.min_voltage_v)
    power_w = min(config.max_charge_power_w, config.max_charge_current_a * voltage)
    request_a = view.charge_request_a if this_session else 0.0
    if request_a > 0:
        power_w = min(power_w, request_a * voltage)
    power_w = min(power_w, _UNLIMITED_POWER_W)
    capacity_kwh = config.battery_capacity_kwh
    if this_session and view.charge_time and view.charge_time.total_battery_capacity_wh:
        capacity_kwh = view.charge_time.total_battery_capacity_wh / 1000.0
    return departure_floor_pct(
        wall_now, departure, target_pct, capacity_kwh, max(0.0, power_w), config.charge_efficiency
    )


def discharge_soc_limit_pct(view: VehicleView, which: str) -> float | None:
    """The vehicle's 0x200 SoC bound: "min" for discharge, "max" for charge (None: not given)."""
    limits = view.discharge_limits
    if limits is None:
        return None
    value = limits.min_soc_for_discharge if which == "min" else limits.max_soc_for_charge
    return float(value) if value is not None and math.isfinite(value) else None


def _this_session(state: ControllerState, view: VehicleView) -> bool:
    """The vehicle frames held were received in the session that is running."""
    return (
        state.d1_at is not None
        and view.last_frame_at is not None
        and view.last_frame_at >= state.d1_at
    )


def charger_step(
    config: ChargerRulesConfig,
    cstate: ControllerState,
    sstate: SafetyState,
    inputs: ChargerStepInputs,
) -> ChargerStepOutputs:
    """One control tick: setpoint -> amps -> safety -> controller; pure.

    `cstate` and `sstate` are the controller's and the supervisor's state from the last tick;
    the new ones are `outputs.state` and `outputs.decision.state`.
    """
    view = inputs.vehicle
    this_session = _this_session(cstate, view)
    status = view.status if this_session else None
    contactor_closed = status is not None and not status.ev_contactor_open
    # Voltage of the battery for W -> A and for the voltage window: only meaningful while
    # the EV contactor is closed (the insulation test puts 500 V on open terminals).
    battery_voltage = inputs.terminal_voltage_v if contactor_closed else 0.0
    # A failed pre-charge test latches like a fault found by continuous supervision.
    insulation_fault = (
        inputs.insulation_fault_present or inputs.insulation is InsulationResult.FAILED
    )

    requested = 0.0
    if inputs.authorized:
        requested = setpoint_to_current_a(
            inputs.setpoint_limit,
            inputs.setpoint_unit,
            battery_voltage,
            unlimited_a=config.max_charge_current_a,
        )
    expecting_frames = cstate.state in ACTIVE_STATES and this_session
    envelope = inputs.envelope
    safety_inputs = SafetyInputs(
        now=inputs.now,
        requested_current_a=requested,
        measured_voltage_v=battery_voltage,
        measured_current_a=inputs.measured_current_a,
        soc_pct=view.soc_pct if this_session else None,
        vehicle_last_frame_at=view.last_frame_at if expecting_frames else None,
        vehicle_charge_request_a=view.charge_request_a if this_session else 0.0,
        vehicle_max_discharge_current_a=view.max_discharge_current_a if this_session else 0.0,
        vehicle_min_discharge_voltage_v=view.min_discharge_voltage_v,
        vehicle_max_voltage_v=view.max_voltage_v,
        vehicle_discharge_compatible=view.discharge_compatible,
        vehicle_min_soc_for_discharge_pct=discharge_soc_limit_pct(view, "min"),
        vehicle_max_soc_for_charge_pct=discharge_soc_limit_pct(view, "max"),
        vehicle_faults=view.faults() if expecting_frames else frozenset(),
        departure_soc_floor_pct=departure_floor(
            config,
            view,
            battery_voltage,
            this_session,
            inputs.wall_now,
            inputs.departure,
            inputs.departure_target_pct,
        ),
        grid_present=inputs.grid_present,
        islanded=inputs.islanded,
        csms_connected=inputs.csms_connected,
        csms_last_seen=inputs.csms_last_seen,
        emergency_stop=inputs.emergency_stop,
        insulation_fault=insulation_fault,
        vehicle_charging_enabled=bool(status and status.charging_enabled),
        vehicle_capacity_wh=(
            float(view.charge_time.total_battery_capacity_wh) if view.charge_time else None
        ),
        conflicting_sender=inputs.conflicting_sender and expecting_frames,
        envelope_max_charge_w=envelope.max_charge_w if envelope else None,
        envelope_max_discharge_w=envelope.max_discharge_w if envelope else None,
        envelope_ramp_pct_per_s=envelope.ramp_pct_per_s if envelope else None,
        der_max_discharge_w=inputs.der_max_discharge_w,
    )
    decision = supervise(config.safety, sstate, safety_inputs)

    controller_inputs = ControllerInputs(
        now=inputs.now,
        plugged=inputs.plugged,
        authorized=inputs.authorized,
        wanted_direction=wanted_direction(requested),
        allowed_current_a=decision.current_a,
        vehicle=view,
        connector_locked=inputs.connector_locked,
        insulation=inputs.insulation,
        terminal_voltage_v=inputs.terminal_voltage_v,
        measured_current_a=inputs.measured_current_a,
        safety_faults=decision.latched_faults,
        offered_charge_current_a=offered_charge_current_a(
            config, requested, battery_voltage, decision.latched_faults
        ),
    )
    new_state, command = step(config.controller, cstate, controller_inputs)
    new_session = new_state.d1_at != cstate.d1_at
    unplugged = new_state.state is ChargerState.IDLE and cstate.state is not ChargerState.IDLE
    return ChargerStepOutputs(
        state=new_state,
        decision=decision,
        command=command,
        forget_vehicle=new_session or unplugged,
    )
