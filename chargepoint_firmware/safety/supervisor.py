"""The safety supervisor: the last gate between the schedule and the power hardware.

`supervise(config, state, inputs)` is a pure function called once per control tick (100 ms in
the CHAdeMO controller). It clamps the requested current to every applicable limit, latches
faults until `reset_faults`, and returns the current to command, the name of the binding limit
and the state to carry to the next tick. It never reads the clock: `inputs.now` is the time.

Sign convention (as in chargepoint_firmware.interfaces): + charge (into the vehicle),
- discharge (out of the vehicle). DC amps, volts, watts, monotonic seconds.

Choices where the sources leave room (docs/chademo.md, docs/v2g.md "Safety"):
- Charge stops when the measured voltage is at or above the threshold
  min(config.max_voltage_v, vehicle max battery voltage) (0x108 bytes 4-5). Discharge stops at
  or below max(config.min_voltage_v, vehicle minimum discharge voltage).
- The power limits are turned into currents with max(measured voltage, config.min_voltage_v,
  1 V), so a low or zero reading can only tighten the current, never open it up.
- SoC window: discharge needs a known SoC above the floor max(driving reserve, backup reserve,
  vehicle minimum, departure floor); vehicle percentages of 0 mean "unused", and a vehicle
  maximum above 100 % (the Leaf sends 178) is no ceiling. Unknown SoC blocks discharge only.
- Grid: export only with grid present, or when islanded backup is configured AND islanded.
  Loss of grid stops export in the same tick (well within the 2 s of AS/NZS 4777.2).
- Offline: the CSMS is offline when not connected for more than offline_timeout_s since it was
  last seen (or since the first disconnected tick if never seen). Then charge is capped at
  offline_safe_limit_a and discharge is 0, except islanded backup, which is a local decision
  the house needs most when the network is down (`offline_allows_islanded_backup`).
- Ramp: |current| may grow by at most ramp_rate_a_per_s x dt per tick; decreases are
  immediate; a change of direction goes through 0 and ramps up from there. The first tick
  (no previous tick) starts from 0.
- Current deviation (latched): the measured current differs from the previous tick's command
  by more than deviation_current_a for deviation_time_s, counting only excess (more current
  than commanded, or the wrong direction), not a shortfall. Defaults 10 A / 5 s mirror the
  EV-side rule behind 0x102 byte 4 bit 2.
- Voltage deviation (latched): the measured voltage is above the charge threshold by more than
  deviation_voltage_v, or, while discharging (commanded or measured), below the discharge
  minimum by more than deviation_voltage_v, for deviation_time_s. (The supervisor commands
  current, not voltage, so the window is the reference.) Default 20 V.
- CAN silence (latched): more than can_silence_timeout_s (1 s) since the last vehicle frame,
  counting only time the charger was listening. When the controller itself stalled (more than
  half the timeout between two ticks: a GC pause, a starved process), the frames sent meanwhile
  may still be queued behind the tick that resumes, so the silence clock restarts at the
  resume (`listening_since`); but never more than can_silence_max_s (2 s) after the last frame,
  so a controller that is late on every tick still trips. Before the first vehicle frame the
  current is 0 without a fault (`no_vehicle_frames`).
- Vehicle plausibility (latched; finding 7 of issue 12), checked only while vehicle frames are
  expected (`vehicle_last_frame_at` given), i.e. within one session:
  * `vehicle_max_voltage_above_rating`: the 0x100 maximum battery voltage is more than
    vehicle_max_voltage_margin_v (50 V) above the charger's rated output voltage
    (config.max_voltage_v, announced in 0x108). The CHAdeMO compatibility check refuses an EV
    whose target voltage exceeds the charger's available output voltage; the EV's maximum is
    its own cut-off a few percent above its target (Leaf: 435 V for ~410 V), so a maximum far
    above the rating cannot come from a vehicle that passed the check.
  * `vehicle_limits_changed`: the 0x100 maximum battery voltage or the 0x101 battery capacity
    changes within a session (they are constants of the vehicle, checked once at the start).
  * `soc_implausible`: the SoC (charged rate) moves faster than max_soc_rate_pct_per_s
    (5 %/s) x elapsed time + soc_tolerance_pct (2 %, byte rounding). Even 350 kW into a 20 kWh
    pack is under 0.5 %/s, so 5 %/s is far above anything physical. An absent SoC (None, e.g.
    "not used") keeps the last value as reference; SoC is tracked only once 0x100 (whose byte 6
    scales the 0x102 charged rate) has been received, so the first scaling is no jump.
  * `conflicting_sender`: a second sender of the vehicle's frames was detected
    (`safety.senders`, fed by the receive path).
- Operating envelope (CSIP-AUS, issue 18; the network's dynamic limits for the site, from the
  envelope profile in force): a local limit like the EVSE's own. envelope_max_charge_w bounds
  charge ("envelope_import"), envelope_max_discharge_w bounds discharge ("envelope_export"),
  both turned into currents with the power-limit voltage rule above; None = no envelope bound.
  envelope_ramp_pct_per_s (% of the EVSE's rated power per second, CSIP setGradW / 100) limits
  how fast |current| grows: rated power of the direction (max_charge_power_w or
  max_discharge_power_w; if infinite, its current limit x max_voltage_v) x pct / 100, divided by
  the same voltage; the tighter of it and ramp_rate_a_per_s applies ("envelope_ramp" when the
  envelope's binds). Decreases stay immediate. The envelope only adds bounds: it can never
  loosen another limit.
- OCPP 2.1 DER LimitMaxDischarge in force (the control the agent selected, which the CSMS also
  sends for the envelope on 2.1): der_max_discharge_w bounds discharge like the envelope's
  export bound ("der_limit_max_discharge"); None = no such control. It only adds a bound.
- Any NaN or infinite input latches `non_finite_input:<field>` and commands 0.
- While any fault is latched the command is 0 at once (so <= 5 A within 0.5 s of a stop).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Final

__all__ = [
    "FAULT_CAN_SILENCE",
    "FAULT_CONFLICTING_SENDER",
    "FAULT_CURRENT_DEVIATION",
    "FAULT_EMERGENCY_STOP",
    "FAULT_INSULATION",
    "FAULT_NON_FINITE_PREFIX",
    "FAULT_SOC_IMPLAUSIBLE",
    "FAULT_VEHICLE_LIMITS_CHANGED",
    "FAULT_VEHICLE_MAX_VOLTAGE",
    "FAULT_VEHICLE_PREFIX",
    "FAULT_VOLTAGE_DEVIATION",
    "SafetyConfig",
    "SafetyDecision",
    "SafetyInputs",
    "SafetyState",
    "discharge_soc_floor",
    "envelope_ramp_a_per_s",
    "reset_faults",
    "supervise",
]

FAULT_CAN_SILENCE: Final = "can_silence"
FAULT_EMERGENCY_STOP: Final = "emergency_stop"
FAULT_INSULATION: Final = "insulation_fault"
FAULT_CURRENT_DEVIATION: Final = "current_deviation"
FAULT_VOLTAGE_DEVIATION: Final = "voltage_deviation"
FAULT_VEHICLE_PREFIX: Final = "vehicle_fault:"  # + a VehicleStatus.faults() name
FAULT_NON_FINITE_PREFIX: Final = "non_finite_input:"  # + the SafetyInputs field name
FAULT_VEHICLE_MAX_VOLTAGE: Final = "vehicle_max_voltage_above_rating"
FAULT_VEHICLE_LIMITS_CHANGED: Final = "vehicle_limits_changed"
FAULT_SOC_IMPLAUSIBLE: Final = "soc_implausible"
FAULT_CONFLICTING_SENDER: Final = "conflicting_sender"

# limited_by values (besides "fault:<name>")
LIMIT_REQUEST: Final = "request"
LIMIT_RAMP: Final = "ramp_rate"
LIMIT_ENVELOPE_IMPORT: Final = "envelope_import"  # the envelope's charge bound
LIMIT_ENVELOPE_EXPORT: Final = "envelope_export"  # the envelope's discharge bound
LIMIT_ENVELOPE_RAMP: Final = "envelope_ramp"
LIMIT_DER_DISCHARGE: Final = "der_limit_max_discharge"  # OCPP 2.1 LimitMaxDischarge in force


@dataclass(frozen=True, slots=True)
class SafetyConfig:
    """The EVSE's own limits and the supervisor's thresholds (from the agent's configuration)."""

    max_charge_current_a: float
    max_discharge_current_a: float
    max_charge_power_w: float
    max_discharge_power_w: float
    min_voltage_v: float
    max_voltage_v: float
    driving_reserve_soc_pct: float = 20.0
    backup_reserve_soc_pct: float = 0.0
    can_silence_timeout_s: float = 1.0
    can_silence_max_s: float = 2.0  # the bound on the silence clock whatever the tick gaps
    offline_timeout_s: float = 300.0
    offline_safe_limit_a: float = 0.0  # charge cap while the CSMS is gone; discharge is 0
    ramp_rate_a_per_s: float = 20.0  # limits increases of |current|; decreases are immediate
    islanded_backup_enabled: bool = False
    deviation_current_a: float = 10.0
    deviation_voltage_v: float = 20.0
    deviation_time_s: float = 5.0
    offline_allows_islanded_backup: bool = True
    vehicle_max_voltage_margin_v: float = 50.0  # 0x100 max above max_voltage_v that trips
    max_soc_rate_pct_per_s: float = 5.0  # fastest plausible SoC change
    soc_tolerance_pct: float = 2.0  # on top of the rate: byte rounding, first frames

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, bool):
                continue
            if not isinstance(value, int | float) or math.isnan(value) or value < 0:
                raise ValueError(f"SafetyConfig.{item.name} must be a number >= 0, got {value!r}")
        # Limits may be infinite ("no limit of this kind"); thresholds and timers may not.
        for name in (
            "min_voltage_v",
            "driving_reserve_soc_pct",
            "backup_reserve_soc_pct",
            "can_silence_timeout_s",
            "can_silence_max_s",
            "offline_timeout_s",
            "offline_safe_limit_a",
            "ramp_rate_a_per_s",
            "deviation_current_a",
            "deviation_voltage_v",
            "deviation_time_s",
            "vehicle_max_voltage_margin_v",
            "max_soc_rate_pct_per_s",
            "soc_tolerance_pct",
        ):
            if math.isinf(getattr(self, name)):
                raise ValueError(f"SafetyConfig.{name} must be finite")
        if self.min_voltage_v >= self.max_voltage_v:
            raise ValueError("SafetyConfig.min_voltage_v must be below max_voltage_v")
        if self.ramp_rate_a_per_s <= 0:
            raise ValueError("SafetyConfig.ramp_rate_a_per_s must be > 0")
        if self.can_silence_max_s < self.can_silence_timeout_s:
            raise ValueError("SafetyConfig.can_silence_max_s must be >= can_silence_timeout_s")


@dataclass(frozen=True, slots=True)
class SafetyInputs:
    """Everything the supervisor looks at in one control tick."""

    now: float  # monotonic seconds
    requested_current_a: float  # signed (+ charge, - discharge), already converted from W
    measured_voltage_v: float
    measured_current_a: float  # signed
    soc_pct: float | None
    vehicle_last_frame_at: float | None  # monotonic time of the last frame from the vehicle
    vehicle_charge_request_a: float  # 0x102 byte 3
    vehicle_max_discharge_current_a: float  # 0x200 byte 0, decoded (plain amps)
    vehicle_min_discharge_voltage_v: float | None  # 0x200 bytes 4-5
    vehicle_max_voltage_v: float | None  # 0x100 bytes 4-5
    vehicle_discharge_compatible: bool  # 0x102 byte 5 bit 7
    vehicle_min_soc_for_discharge_pct: float | None  # 0x200 byte 6 (0/None = unused)
    vehicle_max_soc_for_charge_pct: float | None  # 0x200 byte 7 (0/None = unused)
    vehicle_faults: frozenset[str]  # VehicleStatus.faults(), incl. stop requests and shift
    departure_soc_floor_pct: float | None  # SoC the driver needs at departure
    grid_present: bool
    islanded: bool  # the site's transfer switch has islanded the house
    csms_connected: bool
    csms_last_seen: float | None  # monotonic time of the last message from the CSMS
    emergency_stop: bool
    insulation_fault: bool
    # 0x102 byte 5 bit 0: False = the vehicle does not permit energy transfer (not a fault;
    # the controller turns its 1 -> 0 edge into a stop).
    vehicle_charging_enabled: bool = True
    vehicle_capacity_wh: float | None = None  # 0x101 bytes 5-6 (None/0 = not given)
    conflicting_sender: bool = False  # safety.senders saw a second sender of 0x100-0x102
    # The operating envelope in force (magnitudes, W; None = no such bound) and its ramp rate
    # (% of the EVSE's rated power per second; None = none).
    envelope_max_charge_w: float | None = None
    envelope_max_discharge_w: float | None = None
    envelope_ramp_pct_per_s: float | None = None
    # The OCPP 2.1 DER LimitMaxDischarge in force, as W (magnitude; None = no such control).
    der_max_discharge_w: float | None = None


@dataclass(frozen=True, slots=True)
class SafetyState:
    """Carried from one tick to the next (start with `SafetyState()`)."""

    latched_faults: frozenset[str] = frozenset()
    last_command_a: float = 0.0
    last_tick: float | None = None
    # Since when the controller has been ticking without a stall (None: no stall seen yet).
    listening_since: float | None = None
    current_deviation_since: float | None = None
    voltage_deviation_since: float | None = None
    csms_unreachable_since: float | None = None
    # The session's vehicle constants and the last SoC seen (None outside a session).
    session_max_voltage_v: float | None = None
    session_capacity_wh: float | None = None
    last_soc_pct: float | None = None
    last_soc_at: float | None = None


@dataclass(frozen=True, slots=True)
class SafetyDecision:
    """What to command this tick and why."""

    current_a: float  # signed: + charge, - discharge
    limited_by: str  # the binding limit: "request", "ramp_rate", "fault:<name>", a limit name
    new_faults: tuple[str, ...]  # faults latched in this tick (sorted), to report as events
    state: SafetyState
    # The bounds in each direction before the ramp (>= 0), e.g. for 0x108 byte 3 / 0x208 byte 3.
    charge_limit_a: float = 0.0
    discharge_limit_a: float = 0.0

    @property
    def latched_faults(self) -> frozenset[str]:
        return self.state.latched_faults


def reset_faults(state: SafetyState) -> SafetyState:
    """Clear every latched fault (an explicit operator or CSMS action).

    A cause still present at the next tick latches again.
    """
    return replace(
        state,
        latched_faults=frozenset(),
        current_deviation_since=None,
        voltage_deviation_since=None,
    )


def discharge_soc_floor(config: SafetyConfig, inputs: SafetyInputs) -> float:
    """The SoC at or below which discharge stops."""
    floor = max(config.driving_reserve_soc_pct, config.backup_reserve_soc_pct)
    vehicle_min = inputs.vehicle_min_soc_for_discharge_pct
    if vehicle_min is not None and vehicle_min > 0:
        floor = max(floor, vehicle_min)
    if inputs.departure_soc_floor_pct is not None:
        floor = max(floor, inputs.departure_soc_floor_pct)
    return floor


def _non_finite_fields(inputs: SafetyInputs) -> list[str]:
    bad = []
    for item in fields(inputs):
        value = getattr(inputs, item.name)
        if isinstance(value, float) and not math.isfinite(value):
            bad.append(item.name)
    return bad


def _charge_threshold_v(config: SafetyConfig, inputs: SafetyInputs) -> float:
    vehicle_max = inputs.vehicle_max_voltage_v
    if vehicle_max is not None and vehicle_max > 0:
        return min(config.max_voltage_v, vehicle_max)
    return config.max_voltage_v


def _discharge_min_v(config: SafetyConfig, inputs: SafetyInputs) -> float:
    vehicle_min = inputs.vehicle_min_discharge_voltage_v
    if vehicle_min is not None:
        return max(config.min_voltage_v, vehicle_min)
    return config.min_voltage_v


def _tightest(candidates: list[tuple[float, str]]) -> tuple[float, str]:
    """The smallest bound (>= 0) and its name; on a tie the first listed wins."""
    best_value, best_name = math.inf, LIMIT_REQUEST
    for value, name in candidates:
        value = max(0.0, value)
        if value < best_value:
            best_value, best_name = value, name
    return best_value, best_name


def _vehicle_plausibility(
    config: SafetyConfig, state: SafetyState, inputs: SafetyInputs, new: set[str]
) -> SafetyState:
    """Add the plausibility faults of this tick to `new`; return the state to carry."""
    if inputs.vehicle_last_frame_at is None:  # no session: forget the last vehicle
        return replace(
            state,
            session_max_voltage_v=None,
            session_capacity_wh=None,
            last_soc_pct=None,
            last_soc_at=None,
        )
    if inputs.conflicting_sender:
        new.add(FAULT_CONFLICTING_SENDER)
    max_v = inputs.vehicle_max_voltage_v
    if max_v is not None and max_v > config.max_voltage_v + config.vehicle_max_voltage_margin_v:
        new.add(FAULT_VEHICLE_MAX_VOLTAGE)
    seen_v, seen_wh = state.session_max_voltage_v, state.session_capacity_wh
    capacity = inputs.vehicle_capacity_wh or None  # 0 = not given
    if (max_v is not None and seen_v is not None and max_v != seen_v) or (
        capacity is not None and seen_wh is not None and capacity != seen_wh
    ):
        new.add(FAULT_VEHICLE_LIMITS_CHANGED)
    last_soc, last_at = state.last_soc_pct, state.last_soc_at
    soc, now = inputs.soc_pct, inputs.now
    if max_v is None:  # 0x100 (its charged-rate reference) not yet received: SoC not scaled yet
        soc = None
    if soc is not None and last_soc is not None and last_at is not None:
        elapsed = max(0.0, now - last_at)
        if abs(soc - last_soc) > config.max_soc_rate_pct_per_s * elapsed + config.soc_tolerance_pct:
            new.add(FAULT_SOC_IMPLAUSIBLE)
    if soc is not None:
        last_soc, last_at = soc, now
    return replace(
        state,
        session_max_voltage_v=max_v if max_v is not None else seen_v,
        session_capacity_wh=capacity if capacity is not None else seen_wh,
        last_soc_pct=last_soc,
        last_soc_at=last_at,
    )


def envelope_ramp_a_per_s(
    config: SafetyConfig, inputs: SafetyInputs, charging: bool, power_voltage: float
) -> float | None:
    """The envelope's ramp rate as A/s in one direction (None: no envelope ramp, or no finite
    rated power to take the percentage of)."""
    pct = inputs.envelope_ramp_pct_per_s
    if pct is None:
        return None
    if charging:
        rated_w = config.max_charge_power_w
        fallback = config.max_charge_current_a * config.max_voltage_v
    else:
        rated_w = config.max_discharge_power_w
        fallback = config.max_discharge_current_a * config.max_voltage_v
    if math.isinf(rated_w):
        rated_w = fallback
    if math.isinf(rated_w):
        return None
    return max(0.0, pct) / 100.0 * rated_w / power_voltage


def _since(condition: bool, started: float | None, now: float) -> float | None:
    if not condition:
        return None
    return now if started is None else started


def supervise(config: SafetyConfig, state: SafetyState, inputs: SafetyInputs) -> SafetyDecision:
    """Clamp `inputs.requested_current_a` to every applicable limit for this tick."""
    now = inputs.now
    bad_fields = _non_finite_fields(inputs)
    new: set[str] = {FAULT_NON_FINITE_PREFIX + name for name in bad_fields}
    if "now" in bad_fields:
        # Without a usable time nothing else can be judged: stop, keep the last good tick.
        latched = state.latched_faults | new
        return _stopped(state, latched, new, state.last_tick)

    # --- faults ---------------------------------------------------------------------------
    if inputs.emergency_stop:
        new.add(FAULT_EMERGENCY_STOP)
    if inputs.insulation_fault:
        new.add(FAULT_INSULATION)
    new.update(FAULT_VEHICLE_PREFIX + name for name in inputs.vehicle_faults)
    last_frame = inputs.vehicle_last_frame_at
    listening_since = _listening_since(config, state, now)
    if _can_silent(config, last_frame, listening_since, now) and (
        "vehicle_last_frame_at" not in bad_fields
    ):
        new.add(FAULT_CAN_SILENCE)

    measured_v, measured_a = inputs.measured_voltage_v, inputs.measured_current_a
    commanded = state.last_command_a
    excess = measured_a - commanded
    shortfall_only = (commanded >= 0 and 0 <= measured_a <= commanded) or (
        commanded <= 0 and commanded <= measured_a <= 0
    )
    current_deviates = abs(excess) > config.deviation_current_a and not shortfall_only
    current_since = _since(current_deviates, state.current_deviation_since, now)
    if current_since is not None and now - current_since >= config.deviation_time_s:
        new.add(FAULT_CURRENT_DEVIATION)

    charge_threshold = _charge_threshold_v(config, inputs)
    discharge_min = _discharge_min_v(config, inputs)
    voltage_deviates = measured_v > charge_threshold + config.deviation_voltage_v or (
        (commanded < 0 or measured_a < 0)
        and measured_v < discharge_min - config.deviation_voltage_v
    )
    voltage_since = _since(voltage_deviates, state.voltage_deviation_since, now)
    if voltage_since is not None and now - voltage_since >= config.deviation_time_s:
        new.add(FAULT_VOLTAGE_DEVIATION)

    # A non-finite input already latched its own fault; judge plausibility on sound data only.
    plausible = state if bad_fields else _vehicle_plausibility(config, state, inputs, new)

    # --- offline bookkeeping --------------------------------------------------------------
    if inputs.csms_connected:
        unreachable_since = None
    elif inputs.csms_last_seen is not None:
        unreachable_since = inputs.csms_last_seen
    else:
        unreachable_since = (
            state.csms_unreachable_since if state.csms_unreachable_since is not None else now
        )
    offline = unreachable_since is not None and now - unreachable_since > config.offline_timeout_s

    latched = state.latched_faults | new
    newly_latched = tuple(sorted(new - state.latched_faults))
    carried = replace(
        plausible,
        current_deviation_since=current_since,
        voltage_deviation_since=voltage_since,
        csms_unreachable_since=unreachable_since,
        listening_since=listening_since,
    )
    if latched:
        return _stopped(carried, latched, set(newly_latched), now)

    # --- limits per direction -------------------------------------------------------------
    power_voltage = max(measured_v, config.min_voltage_v, 1.0)
    islanded_backup = config.islanded_backup_enabled and inputs.islanded and not inputs.grid_present
    export_allowed = inputs.grid_present or (config.islanded_backup_enabled and inputs.islanded)
    soc = inputs.soc_pct

    common: list[tuple[float, str]] = []
    if last_frame is None:
        common.append((0.0, "no_vehicle_frames"))
    if not inputs.vehicle_charging_enabled:
        common.append((0.0, "vehicle_not_enabled"))

    charge = list(common)
    charge.append((config.max_charge_current_a, "evse_charge_current"))
    charge.append((config.max_charge_power_w / power_voltage, "evse_charge_power"))
    charge.append((inputs.vehicle_charge_request_a, "vehicle_charge_request"))
    vehicle_max_soc = inputs.vehicle_max_soc_for_charge_pct
    ceiling_set = vehicle_max_soc is not None and 0 < vehicle_max_soc <= 100
    if ceiling_set and soc is not None and vehicle_max_soc is not None and soc >= vehicle_max_soc:
        charge.append((0.0, "vehicle_max_soc"))
    if measured_v >= charge_threshold:
        charge.append((0.0, "max_voltage"))
    if offline:
        charge.append((config.offline_safe_limit_a, "offline_fallback"))
    if inputs.envelope_max_charge_w is not None:
        charge.append((inputs.envelope_max_charge_w / power_voltage, LIMIT_ENVELOPE_IMPORT))

    discharge = list(common)
    if not export_allowed:
        discharge.append((0.0, "grid_loss"))
    if offline and not (islanded_backup and config.offline_allows_islanded_backup):
        discharge.append((0.0, "offline_fallback"))
    if not inputs.vehicle_discharge_compatible:
        discharge.append((0.0, "vehicle_not_discharge_compatible"))
    if soc is None:
        discharge.append((0.0, "soc_unknown"))
    elif soc <= discharge_soc_floor(config, inputs):
        discharge.append((0.0, "soc_floor"))
    if measured_v <= discharge_min:
        discharge.append((0.0, "min_voltage"))
    discharge.append((config.max_discharge_current_a, "evse_discharge_current"))
    discharge.append((config.max_discharge_power_w / power_voltage, "evse_discharge_power"))
    discharge.append((inputs.vehicle_max_discharge_current_a, "vehicle_discharge_limit"))
    if inputs.envelope_max_discharge_w is not None:
        discharge.append((inputs.envelope_max_discharge_w / power_voltage, LIMIT_ENVELOPE_EXPORT))
    if inputs.der_max_discharge_w is not None:
        discharge.append((inputs.der_max_discharge_w / power_voltage, LIMIT_DER_DISCHARGE))

    charge_limit, charge_name = _tightest(charge)
    discharge_limit, discharge_name = _tightest(discharge)

    requested = inputs.requested_current_a
    if requested >= 0:
        magnitude, limited_by = requested, LIMIT_REQUEST
        if charge_limit < magnitude:
            magnitude, limited_by = charge_limit, charge_name
        direction = 1.0
    else:
        magnitude, limited_by = -requested, LIMIT_REQUEST
        if discharge_limit < magnitude:
            magnitude, limited_by = discharge_limit, discharge_name
        direction = -1.0

    # --- ramp: only increases of |current| are limited -----------------------------------
    dt = 0.0 if state.last_tick is None else max(0.0, now - state.last_tick)
    same_direction = commanded == 0 or (commanded > 0) == (direction > 0)
    base = abs(commanded) if same_direction else 0.0
    ramp, ramp_name = config.ramp_rate_a_per_s, LIMIT_RAMP
    envelope_ramp = envelope_ramp_a_per_s(config, inputs, direction > 0, power_voltage)
    if envelope_ramp is not None and envelope_ramp < ramp:
        ramp, ramp_name = envelope_ramp, LIMIT_ENVELOPE_RAMP
    allowed = base + ramp * dt
    if magnitude > allowed:
        magnitude, limited_by = allowed, ramp_name

    current = direction * magnitude if magnitude > 0 else 0.0
    return SafetyDecision(
        current_a=current,
        limited_by=limited_by,
        new_faults=(),
        state=replace(carried, last_command_a=current, last_tick=now),
        charge_limit_a=charge_limit,
        discharge_limit_a=discharge_limit,
    )


def _listening_since(config: SafetyConfig, state: SafetyState, now: float) -> float | None:
    """When the controller resumed listening: `now` after a stall, else as before."""
    if state.last_tick is not None and now - state.last_tick > config.can_silence_timeout_s / 2:
        return now
    return state.listening_since


def _can_silent(
    config: SafetyConfig, last_frame: float | None, listening_since: float | None, now: float
) -> bool:
    if last_frame is None:
        return False
    heard_or_resumed = last_frame if listening_since is None else max(last_frame, listening_since)
    return (
        now - heard_or_resumed > config.can_silence_timeout_s
        or now - last_frame > config.can_silence_max_s
    )


def _stopped(
    state: SafetyState, latched: frozenset[str], new: set[str], tick: float | None
) -> SafetyDecision:
    return SafetyDecision(
        current_a=0.0,
        limited_by="fault:" + min(latched),
        new_faults=tuple(sorted(new - state.latched_faults)),
        state=replace(state, latched_faults=latched, last_command_a=0.0, last_tick=tick),
    )
