"""OCPP 2.1 V2X (block Q) charging profiles, built from the V2G plan (pure).

A 2.0.1 station learns a discharge from a negative `limit` (the project's convention,
`to_tx_profile`). A 2.1 station gets the native form: an `operationMode` per schedule period
and, depending on the mode, a signed `setpoint` (+ charge, - discharge), a `limit` (charge, never
negative here), a `dischargeLimit` (<= 0), a `setpointReactive`, or a frequency-watt curve with a
baseline. Which fields each mode needs or forbids (OCPP 2.1 part 2, Q "limits and setpoints per
operation mode"; the schema only knows the types):

* ChargingOnly: `limit` required; no setpoint, no discharge limit (the EV only charges).
* CentralSetpoint, CentralFrequency: `setpoint` required (the CSMS steers; for CentralFrequency
  the CSMS computes the setpoint from the frequency it measures and sends it through
  UpdateDynamicSchedule).
* ExternalSetpoint, ExternalLimits, LocalLoadBalancing: setpoint and limits come from another
  actor or the station itself; `limit`/`dischargeLimit` bound them when given.
* LocalFrequency: `v2xFreqWattCurve` required (1-20 points, frequency increasing); the station
  adds the curve's power to `v2xBaseline`.
* Idle: no limit, setpoint or discharge limit at all (no energy flows).
* Whenever given, `limit` >= 0, `dischargeLimit` <= 0 and dischargeLimit <= setpoint <= limit
  (a setpoint outside its limits is refused).

Nothing here reads the clock or does I/O.
"""

from __future__ import annotations

import enum
import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from csms.v2g.optimizer import VehiclePlan

MAX_FREQ_WATT_POINTS = 20  # V2XFreqWattPointType: maxItems 20 in the 2.1 schema
MAX_PERIODS = 1024  # ChargingScheduleType.chargingSchedulePeriod maxItems in the 2.1 schema
V2X_CONTROLLER = "V2XChargingCtrlr"  # the 2.1 device-model component


class OperationMode(enum.StrEnum):
    IDLE = "Idle"
    CHARGING_ONLY = "ChargingOnly"
    CENTRAL_SETPOINT = "CentralSetpoint"
    EXTERNAL_SETPOINT = "ExternalSetpoint"
    EXTERNAL_LIMITS = "ExternalLimits"
    CENTRAL_FREQUENCY = "CentralFrequency"
    LOCAL_FREQUENCY = "LocalFrequency"
    LOCAL_LOAD_BALANCING = "LocalLoadBalancing"


# Modes whose period must carry a setpoint / a limit; Idle carries none of the four.
_NEEDS_SETPOINT = {OperationMode.CENTRAL_SETPOINT, OperationMode.CENTRAL_FREQUENCY}
_NEEDS_LIMIT = {OperationMode.CHARGING_ONLY}


@dataclass(frozen=True)
class V2xPeriod:
    """One ChargingSchedulePeriod of a 2.1 profile, in W (the unit the V2G services send)."""

    start_s: int
    mode: OperationMode
    limit_w: float | None = None
    setpoint_w: float | None = None
    discharge_limit_w: float | None = None  # <= 0
    setpoint_reactive_var: float | None = None
    freq_watt: tuple[tuple[float, float], ...] | None = None  # (Hz, W), W signed
    baseline_w: float | None = None
    signal_watt: tuple[tuple[int, float], ...] | None = None  # (aFRR signal, W), W signed

    def as_ocpp(self) -> dict[str, Any]:
        out: dict[str, Any] = {"startPeriod": self.start_s, "operationMode": self.mode.value}
        for key, value in (
            ("limit", self.limit_w),
            ("setpoint", self.setpoint_w),
            ("dischargeLimit", self.discharge_limit_w),
            ("setpointReactive", self.setpoint_reactive_var),
            ("v2xBaseline", self.baseline_w),
        ):
            if value is not None:
                out[key] = _w(value)
        if self.freq_watt is not None:
            out["v2xFreqWattCurve"] = [
                {"frequency": float(hz), "power": _w(w)} for hz, w in self.freq_watt
            ]
        if self.signal_watt is not None:
            out["v2xSignalWattCurve"] = [
                {"signal": int(signal), "power": _w(w)} for signal, w in self.signal_watt
            ]
        return out


def _w(value: float) -> float:
    """Watts as sent: 0.1 W resolution, never -0.0."""
    rounded = round(float(value), 1)
    return 0.0 if rounded == 0 else rounded


def period_errors(period: V2xPeriod) -> list[str]:
    """What makes `period` unacceptable to a 2.1 station (empty: it is acceptable)."""
    errors: list[str] = []
    mode = period.mode
    values = (
        period.limit_w,
        period.setpoint_w,
        period.discharge_limit_w,
        period.setpoint_reactive_var,
        period.baseline_w,
    )
    if any(v is not None and not math.isfinite(v) for v in values):
        errors.append("values must be finite")
        return errors
    if period.start_s < 0:
        errors.append("startPeriod must be >= 0")
    if period.limit_w is not None and period.limit_w < 0:
        errors.append("limit must not be negative on 2.1 (use dischargeLimit or setpoint)")
    if period.discharge_limit_w is not None and period.discharge_limit_w > 0:
        errors.append("dischargeLimit must be <= 0")
    if mode is OperationMode.IDLE and any(
        v is not None for v in (period.limit_w, period.setpoint_w, period.discharge_limit_w)
    ):
        errors.append("Idle takes no limit, setpoint or dischargeLimit")
    if mode in _NEEDS_SETPOINT and period.setpoint_w is None:
        errors.append(f"{mode} needs a setpoint")
    if mode in _NEEDS_LIMIT and period.limit_w is None:
        errors.append(f"{mode} needs a limit")
    if mode is OperationMode.CHARGING_ONLY and (
        period.setpoint_w is not None or period.discharge_limit_w is not None
    ):
        errors.append("ChargingOnly takes no setpoint or dischargeLimit")
    if mode is OperationMode.LOCAL_FREQUENCY:
        errors.extend(_curve_errors(period.freq_watt))
    elif period.freq_watt is not None:
        errors.append("v2xFreqWattCurve belongs to LocalFrequency only")
    if period.signal_watt is not None:
        if mode is not OperationMode.CENTRAL_FREQUENCY:
            errors.append("v2xSignalWattCurve belongs to CentralFrequency (aFRR) only")
        errors.extend(signal_curve_errors(period.signal_watt))
    sp = period.setpoint_w
    if sp is not None:
        if period.limit_w is not None and sp > period.limit_w:
            errors.append("setpoint above limit")
        if period.discharge_limit_w is not None and sp < period.discharge_limit_w:
            errors.append("setpoint below dischargeLimit")
    return errors


def _curve_errors(curve: tuple[tuple[float, float], ...] | None) -> list[str]:
    if not curve:
        return ["LocalFrequency needs a v2xFreqWattCurve"]
    errors = []
    if len(curve) > MAX_FREQ_WATT_POINTS:
        errors.append(f"v2xFreqWattCurve holds at most {MAX_FREQ_WATT_POINTS} points")
    if any(not (math.isfinite(hz) and math.isfinite(w)) for hz, w in curve):
        errors.append("v2xFreqWattCurve values must be finite")
    elif any(b[0] <= a[0] for a, b in itertools.pairwise(curve)):
        errors.append("v2xFreqWattCurve frequencies must strictly increase")
    return errors


INT32 = 2**31 - 1


def signal_curve_errors(curve: Sequence[tuple[int, float]]) -> list[str]:
    """A v2xSignalWattCurve: 1-20 points, 32-bit integer signals strictly increasing, finite
    powers (V2XSignalWattPointType)."""
    if not curve:
        return ["v2xSignalWattCurve needs at least one point"]
    errors = []
    if len(curve) > MAX_FREQ_WATT_POINTS:
        errors.append(f"v2xSignalWattCurve holds at most {MAX_FREQ_WATT_POINTS} points")
    if any(
        isinstance(signal, bool) or not isinstance(signal, int) or not -INT32 - 1 <= signal <= INT32
        for signal, _ in curve
    ):
        errors.append("v2xSignalWattCurve signals must be 32-bit integers")
    elif any(not math.isfinite(w) for _, w in curve):
        errors.append("v2xSignalWattCurve powers must be finite")
    elif any(b[0] <= a[0] for a, b in itertools.pairwise(curve)):
        errors.append("v2xSignalWattCurve signals must strictly increase")
    return errors


def check_periods(periods: Sequence[V2xPeriod]) -> None:
    """ValueError naming the first bad period (index and reasons)."""
    if not periods:
        raise ValueError("a schedule needs at least one period")
    if len(periods) > MAX_PERIODS:
        raise ValueError(f"{len(periods)} periods exceed the {MAX_PERIODS} a schedule holds")
    if periods[0].start_s != 0:
        raise ValueError("the first period must start at 0")
    for k, period in enumerate(periods):
        if k and period.start_s <= periods[k - 1].start_s:
            raise ValueError(f"period {k}: startPeriod must increase")
        errors = period_errors(period)
        if errors:
            raise ValueError(f"period {k}: {'; '.join(errors)}")


@dataclass(frozen=True)
class PowerBounds:
    """What one EV + EVSE may do, in W, both magnitudes >= 0."""

    max_charge_w: float
    max_discharge_w: float

    def __post_init__(self) -> None:
        if not (
            math.isfinite(self.max_charge_w)
            and math.isfinite(self.max_discharge_w)
            and self.max_charge_w >= 0
            and self.max_discharge_w >= 0
        ):
            raise ValueError("power bounds must be finite and >= 0")

    def clamp(self, power_w: float) -> float:
        return min(self.max_charge_w, max(-self.max_discharge_w, power_w))


def setpoint_period(
    start_s: int,
    power_w: float,
    bounds: PowerBounds,
    *,
    modes: frozenset[OperationMode] | None = None,
    reactive_var: float | None = None,
) -> V2xPeriod:
    """The period that makes the EV run at `power_w` (signed): CentralSetpoint with the setpoint
    inside [-max discharge, max charge]; Idle when it rests (0 W, no reactive setpoint);
    ChargingOnly at the limit when the station offers no CentralSetpoint (`modes` given without
    it) or when the EV cannot discharge and the plan charges."""
    power = _w(bounds.clamp(power_w))
    can = modes is None or OperationMode.CENTRAL_SETPOINT in modes
    if power == 0 and reactive_var is None and (modes is None or OperationMode.IDLE in modes):
        return V2xPeriod(start_s, OperationMode.IDLE)
    if not can or (bounds.max_discharge_w == 0 and reactive_var is None):
        if power < 0:
            raise ValueError("discharge asked of a station or EV that cannot discharge")
        return V2xPeriod(start_s, OperationMode.CHARGING_ONLY, limit_w=power)
    return V2xPeriod(
        start_s,
        OperationMode.CENTRAL_SETPOINT,
        limit_w=_w(bounds.max_charge_w),
        setpoint_w=power,
        discharge_limit_w=_w(-bounds.max_discharge_w),
        setpoint_reactive_var=reactive_var,
    )


def plan_periods(
    interval_starts: Sequence[datetime],
    power_kw: Sequence[float],
    start: datetime,
    bounds: PowerBounds,
    *,
    modes: frozenset[OperationMode] | None = None,
    max_periods: int = MAX_PERIODS,
) -> list[V2xPeriod]:
    """One period per plan interval (offsets from `start`, the first at 0); equal neighbours
    are merged only when one period each would not fit in `max_periods`."""
    if len(interval_starts) != len(power_kw) or not power_kw:
        raise ValueError("a plan needs one power per interval and at least one interval")
    periods: list[V2xPeriod] = []
    merge = len(power_kw) > max_periods
    for k, (interval_start, kw) in enumerate(zip(interval_starts, power_kw, strict=True)):
        offset = 0 if k == 0 else round((interval_start - start).total_seconds())
        period = setpoint_period(offset, kw * 1000.0, bounds, modes=modes)
        if merge and periods and _same_values(periods[-1], period):
            continue
        periods.append(period)
    if len(periods) > max_periods:
        raise ValueError(f"{len(periods)} periods exceed the {max_periods} allowed")
    return periods


def _same_values(a: V2xPeriod, b: V2xPeriod) -> bool:
    return (a.mode, a.limit_w, a.setpoint_w, a.discharge_limit_w) == (
        b.mode,
        b.limit_w,
        b.setpoint_w,
        b.discharge_limit_w,
    )


def v21_profile(
    periods: Sequence[V2xPeriod],
    *,
    profile_id: int,
    stack_level: int,
    start_schedule: str,
    duration_s: int | None,
    transaction_id: str | None = None,
    purpose: str = "TxProfile",
    kind: str = "Absolute",
    dyn_update_interval_s: int | None = None,
) -> dict[str, Any]:
    """A 2.1 ChargingProfile (W) for SetChargingProfileRequest.chargingProfile; the periods are
    checked against the Q rules first (ValueError)."""
    check_periods(periods)
    schedule: dict[str, Any] = {
        "id": profile_id,
        "chargingRateUnit": "W",
        "chargingSchedulePeriod": [p.as_ocpp() for p in periods],
    }
    if kind != "Relative" and kind != "Dynamic":
        schedule["startSchedule"] = start_schedule
    if duration_s is not None:
        schedule["duration"] = max(1, int(duration_s))
    profile: dict[str, Any] = {
        "id": profile_id,
        "stackLevel": stack_level,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": kind,
        "chargingSchedule": [schedule],
    }
    if transaction_id is not None:
        profile["transactionId"] = transaction_id
    if dyn_update_interval_s is not None:
        profile["dynUpdateInterval"] = int(dyn_update_interval_s)
    return profile


def plan_to_v21_profile(
    plan: VehiclePlan,
    profile_id: int,
    transaction_id: str,
    stack_level: int,
    bounds: PowerBounds,
    *,
    modes: frozenset[OperationMode] | None = None,
) -> dict[str, Any]:
    """The plan as a native 2.1 TxProfile (Absolute, W, one CentralSetpoint / Idle /
    ChargingOnly period per interval): the same plan `to_tx_profile` sends a 2.0.1 station with
    negative limits."""
    if not plan.power_kw:
        raise ValueError(f"vehicle {plan.vehicle_id}: empty plan, nothing to send")
    start = max(plan.start, plan.interval_starts[0])
    periods = plan_periods(plan.interval_starts, plan.power_kw, start, bounds, modes=modes)
    utc = start.astimezone(UTC)
    return v21_profile(
        periods,
        profile_id=profile_id,
        stack_level=stack_level,
        start_schedule=utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z",
        duration_s=max(1, round((plan.departure - start).total_seconds())),
        transaction_id=transaction_id,
    )


def schedule_energy_wh(periods: Sequence[V2xPeriod], duration_s: float) -> float:
    """Signed energy (Wh) the setpoints (or ChargingOnly limits) of a schedule ask for over
    `duration_s`: what the plan's energy must equal when no bound cut it."""
    total = 0.0
    for k, period in enumerate(periods):
        end = periods[k + 1].start_s if k + 1 < len(periods) else duration_s
        power = period.setpoint_w if period.setpoint_w is not None else (period.limit_w or 0.0)
        if period.mode is OperationMode.IDLE:
            power = 0.0
        total += power * max(0.0, end - period.start_s) / 3600.0
    return total


def frequency_period(
    curve: Sequence[tuple[float, float]],
    bounds: PowerBounds,
    *,
    baseline_w: float = 0.0,
) -> V2xPeriod:
    """LocalFrequency: the station follows `baseline_w` + curve(measured Hz); the curve's power
    is clamped into the EV's bounds so that no point asks for more than it can do."""
    points = tuple((float(hz), _w(bounds.clamp(w))) for hz, w in curve)
    errors = _curve_errors(points)
    if errors:
        raise ValueError("; ".join(errors))
    return V2xPeriod(
        0,
        OperationMode.LOCAL_FREQUENCY,
        limit_w=_w(bounds.max_charge_w),
        discharge_limit_w=_w(-bounds.max_discharge_w),
        freq_watt=points,
        baseline_w=_w(bounds.clamp(baseline_w)),
    )


def central_frequency_period(setpoint_w: float, bounds: PowerBounds) -> V2xPeriod:
    """CentralFrequency: the CSMS computed `setpoint_w` from the frequency; later changes go
    through UpdateDynamicSchedule."""
    return V2xPeriod(
        0,
        OperationMode.CENTRAL_FREQUENCY,
        limit_w=_w(bounds.max_charge_w),
        setpoint_w=_w(bounds.clamp(setpoint_w)),
        discharge_limit_w=_w(-bounds.max_discharge_w),
    )


LOCAL_CONTROL_MODES = frozenset(
    {
        OperationMode.EXTERNAL_SETPOINT,
        OperationMode.EXTERNAL_LIMITS,
        OperationMode.LOCAL_LOAD_BALANCING,
    }
)


def local_control_period(
    mode: OperationMode,
    bounds: PowerBounds,
    *,
    max_charge_w: float | None = None,
    max_discharge_w: float | None = None,
) -> V2xPeriod:
    """Hand the setpoint or the limits to the station's side: ExternalSetpoint (a local EMS
    such as Home Assistant sets the power), ExternalLimits (a local controller sets the limits),
    LocalLoadBalancing (the station shares its site limit itself). The CSMS still bounds the
    power with `limit` and `dischargeLimit`: the EV's bounds, narrowed by the optional maxima."""
    if mode not in LOCAL_CONTROL_MODES:
        raise ValueError(f"{mode} is not a local-control mode")
    charge = bounds.max_charge_w if max_charge_w is None else min(bounds.max_charge_w, max_charge_w)
    discharge = (
        bounds.max_discharge_w
        if max_discharge_w is None
        else min(bounds.max_discharge_w, max_discharge_w)
    )
    if not (math.isfinite(charge) and math.isfinite(discharge)) or charge < 0 or discharge < 0:
        raise ValueError("maxima must be finite and >= 0")
    return V2xPeriod(0, mode, limit_w=_w(charge), discharge_limit_w=_w(-discharge))


def afrr_period(
    curve: Sequence[tuple[int, float]], bounds: PowerBounds, *, baseline_w: float = 0.0
) -> V2xPeriod:
    """aFRR (OCPP 2.1 Q, as this project reads it): CentralFrequency with a
    v2xSignalWattCurve; the station runs at v2xBaseline + curve(signal of the latest
    AFRRSignal), the setpoint (= the baseline) until a signal arrives. Powers are clamped into
    the EV's bounds (ValueError for a curve the schema or the rules refuse)."""
    errors = signal_curve_errors(curve)
    if errors:
        raise ValueError("; ".join(errors))
    points = tuple((int(signal), _w(bounds.clamp(w))) for signal, w in curve)
    baseline = _w(bounds.clamp(baseline_w))
    return V2xPeriod(
        0,
        OperationMode.CENTRAL_FREQUENCY,
        limit_w=_w(bounds.max_charge_w),
        setpoint_w=baseline,
        discharge_limit_w=_w(-bounds.max_discharge_w),
        baseline_w=baseline,
        signal_watt=points,
    )


def schedule_update(
    setpoint_w: float, bounds: PowerBounds, reactive_var: float | None = None
) -> dict[str, Any]:
    """ChargingScheduleUpdateType for UpdateDynamicSchedule / PullDynamicScheduleUpdate: the
    setpoint clamped into the bounds, which travel with it."""
    update: dict[str, Any] = {
        "setpoint": _w(bounds.clamp(setpoint_w)),
        "limit": _w(bounds.max_charge_w),
        "dischargeLimit": _w(-bounds.max_discharge_w),
    }
    if reactive_var is not None:
        if not math.isfinite(reactive_var):
            raise ValueError("setpointReactive must be finite")
        update["setpointReactive"] = _w(reactive_var)
    return update


@dataclass(frozen=True)
class V2xCapabilities:
    """What a 2.1 station said of its V2X controller (device model V2XChargingCtrlr)."""

    enabled: bool = False
    operation_modes: frozenset[OperationMode] = frozenset()
    energy_transfer_modes: frozenset[str] = field(default_factory=frozenset)

    @property
    def can_discharge(self) -> bool:
        return self.enabled and bool(
            self.operation_modes
            & {
                OperationMode.CENTRAL_SETPOINT,
                OperationMode.CENTRAL_FREQUENCY,
                OperationMode.LOCAL_FREQUENCY,
            }
        )

    def frequency_mode(self) -> OperationMode | None:
        """LocalFrequency where offered (the station answers within its own control cycle),
        else CentralFrequency, else None (use the setpoint or the 2.0.1 convention)."""
        if not self.enabled:
            return None
        for mode in (OperationMode.LOCAL_FREQUENCY, OperationMode.CENTRAL_FREQUENCY):
            if mode in self.operation_modes:
                return mode
        return None


_MAX_MEMBERS = 32  # a member list longer than every enum it can name is cut, not walked


def _members(value: str | None) -> list[str]:
    if not value:
        return []
    return [m.strip() for m in value[:2000].split(",")[:_MAX_MEMBERS] if m.strip()]


def v2x_capabilities(variables: Iterable[tuple[str, str, str | None]]) -> V2xCapabilities:
    """From (component, variable, Actual value) triples of the device model: V2XChargingCtrlr
    Enabled, SupportedOperationModes and SupportedEnergyTransferModes (member lists). Unknown
    mode names are ignored; no report at all means nothing is supported."""
    enabled = False
    modes: set[OperationMode] = set()
    transfers: set[str] = set()
    known = {m.value: m for m in OperationMode}
    for component, variable, value in variables:
        if component != V2X_CONTROLLER:
            continue
        if variable == "Enabled":
            enabled = str(value).strip().lower() == "true"
        elif variable == "SupportedOperationModes":
            modes.update(known[m] for m in _members(value) if m in known)
        elif variable == "SupportedEnergyTransferModes":
            transfers.update(_members(value))
    return V2xCapabilities(enabled, frozenset(modes), frozenset(transfers))
