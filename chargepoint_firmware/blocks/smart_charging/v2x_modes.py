"""OCPP 2.1 V2X operation modes (Q) to one signed target for a CHAdeMO EVSE (pure).

The composite gives the mode, setpoint, curves and dischargeLimit in force (`v2x_at`) and the
limit in force (`limit_at`); this module turns them into the signed power/current the EVSE should
run at (+ charge, - discharge). Setpoints are targets; the limit, the dischargeLimit, the DER
discharge cap and "discharge not allowed" bound them; the safety supervisor bounds the result
again (EV and EVSE limits, SoC window, grid presence) and has the last word.

How each mode drives a CHAdeMO EVSE (it has one DC current setpoint, no reactive power):
- ChargingOnly, ExternalLimits, LocalLoadBalancing: charge up to the limit, never discharge
  (a CHAdeMO station has no external limit input or local load balancer of its own: the limit
  in force is all it follows).
- Idle: 0 (no energy transfer; the session stays up).
- CentralSetpoint, ExternalSetpoint: the period's setpoint (ExternalSetpoint: no external
  setpoint source exists on this station, so the CSMS's setpoint is followed, 0 without one).
- CentralFrequency: the setpoint the CSMS moves (dynamic updates); with an aFRR signal received
  and a v2xSignalWattCurve, v2xBaseline + curve(signal).
- LocalFrequency: v2xBaseline + v2xFreqWattCurve(measured grid frequency); the baseline alone
  while no frequency is measured.
setpointReactive is not applied (DC CHAdeMO: no reactive power); it is stored and reported.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

from v2g_shared.freq_watt import FreqWattCurve, freq_watt
from v2g_shared.schedule import OperationMode, V2xPeriod

Mode = OperationMode
_CHARGE_ONLY = frozenset({Mode.CHARGING_ONLY, Mode.EXTERNAL_LIMITS, Mode.LOCAL_LOAD_BALANCING})


@dataclass(frozen=True, slots=True)
class V2xInputs:
    """What the station measured or was told, besides the schedule."""

    grid_frequency_hz: float | None = None
    afrr_signal: int | None = None
    discharge_allowed: bool = True  # NotifyAllowedEnergyTransfer / V2X enabled
    der_discharge_cap: float | None = None  # >= 0, magnitude (DER LimitMaxDischarge)


def signal_watt(points: tuple[tuple[int, float], ...], signal: int) -> float:
    """Piecewise-linear signal -> power, flat beyond the ends (v2xSignalWattCurve)."""
    ordered = sorted(points)
    xs = [p[0] for p in ordered]
    if signal <= xs[0]:
        return ordered[0][1]
    if signal >= xs[-1]:
        return ordered[-1][1]
    right = bisect.bisect_right(xs, signal)
    (x0, y0), (x1, y1) = ordered[right - 1], ordered[right]
    return y0 + (y1 - y0) * (signal - x0) / (x1 - x0)


def _curve_power(points: tuple[tuple[float, float], ...], hz: float) -> float | None:
    """v2xFreqWattCurve at hz (the shared frequency-watt interpolation; one point = flat)."""
    if len(points) == 1:
        return points[0][1]
    try:
        return freq_watt(FreqWattCurve(points), hz)
    except ValueError:  # frequencies not increasing: validation refused such a profile
        return None


def v2x_target(
    period: V2xPeriod, limit: float | None, inputs: V2xInputs
) -> tuple[float | None, str]:
    """(signed target, source) for a native 2.1 period; None target = no limit (hardware max).

    `limit` is the composite limit (None = not limited by a profile)."""
    mode = period.mode
    target: float | None
    if mode in _CHARGE_ONLY:
        target = None if limit is None else max(0.0, limit)
        return target, f"v2x:{mode.value}"
    if mode is Mode.IDLE:
        return 0.0, f"v2x:{mode.value}"
    baseline = period.v2x_baseline or 0.0
    if mode is Mode.LOCAL_FREQUENCY:
        hz = inputs.grid_frequency_hz
        response = None
        if hz is not None and period.freq_watt_curve is not None:
            response = _curve_power(period.freq_watt_curve, hz)
        target = baseline + (response or 0.0)
    elif (
        mode is Mode.CENTRAL_FREQUENCY
        and inputs.afrr_signal is not None
        and period.signal_watt_curve
    ):
        target = baseline + signal_watt(period.signal_watt_curve, inputs.afrr_signal)
    else:
        target = period.setpoint if period.setpoint is not None else 0.0
    return bound(target, limit, period.discharge_limit, inputs), f"v2x:{mode.value}"


def bound(
    target: float, limit: float | None, discharge_limit: float | None, inputs: V2xInputs
) -> float:
    """The target inside [lower, upper]: upper = the limit (charge), lower = the tightest of
    dischargeLimit, the DER discharge cap and 0 when discharge is not allowed."""
    if not math.isfinite(target):
        return 0.0
    if limit is not None:
        target = min(target, limit)
    lower = -math.inf
    if discharge_limit is not None:
        lower = max(lower, discharge_limit)
    if inputs.der_discharge_cap is not None:
        lower = max(lower, -inputs.der_discharge_cap)
    if not inputs.discharge_allowed:
        lower = max(lower, 0.0)
    return max(target, lower)  # on a conflict the lower bound (less discharge) wins
