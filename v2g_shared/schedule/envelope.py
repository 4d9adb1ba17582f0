"""The operating envelope on the wire (CSIP-AUS, issue 18): what a station reads from it.

The CSMS sends a site's envelope as a ChargingStationMaxProfile (evse 0) whose profile and
periods carry customData vendorId "org.openv2g.envelope" (docs: /work/notes/envelope_wire.md):
each period's `limit` is the CHARGE bound (W, >= 0), customData "dischargeLimitW" the DISCHARGE
bound (W, >= 0) and, when the envelope has one, "rampRatePctPerS" the ramp rate (% of the
station's rated power per second, 0 < x <= 100). Over OCPP 2.1 the period also carries the
native `dischargeLimit` (= -discharge bound, in the schedule's unit).

A third-party 2.0.1 station ignores customData and reads `limit` as a symmetric bound; ours reads
the envelope asymmetrically (composite.py) and hands it to the safety supervisor as a local limit.

Pure; imports only the model. The numbers come from a peer, so every reader bounds them:
an unreadable discharge bound reads as 0 (no discharge), an unreadable ramp as "no ramp from the
envelope" (the supervisor's own ramp still applies); validation refuses both before install.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from v2g_shared.schedule.model import (
    ChargingProfile,
    ChargingProfilePurpose,
    ChargingRateUnit,
    ChargingSchedulePeriod,
)

__all__ = [
    "ENVELOPE_PROFILE_ID",
    "ENVELOPE_VENDOR_ID",
    "MAX_ENVELOPE_W",
    "EnvelopeBounds",
    "envelope_bounds",
    "envelope_discharge_bounds",
    "envelope_violations",
    "is_envelope_period",
    "is_envelope_profile",
    "period_discharge_bound_w",
    "period_ramp_pct_per_s",
]

ENVELOPE_VENDOR_ID = "org.openv2g.envelope"
ENVELOPE_PROFILE_ID = 62007  # the wire contract's profile (and schedule) id
# Any bound above this (1 GW) is no bound a charger can reach: peer numbers are capped to it.
MAX_ENVELOPE_W = 1e9


def _ours(custom_data: Mapping[str, Any] | None) -> bool:
    return custom_data is not None and custom_data.get("vendorId") == ENVELOPE_VENDOR_ID


def is_envelope_profile(profile: ChargingProfile) -> bool:
    """A ChargingStationMaxProfile tagged as the operating envelope."""
    return profile.purpose is ChargingProfilePurpose.CHARGING_STATION_MAX_PROFILE and _ours(
        profile.custom_data
    )


def is_envelope_period(period: ChargingSchedulePeriod) -> bool:
    return _ours(period.custom_data)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def period_discharge_bound_w(period: ChargingSchedulePeriod) -> float | None:
    """customData dischargeLimitW of an envelope period (W, in [0, MAX_ENVELOPE_W]); None for a
    period that is not an envelope period or does not carry it; 0 when it is unreadable."""
    data = period.custom_data
    if not _ours(data) or data is None or "dischargeLimitW" not in data:
        return None
    value = _number(data["dischargeLimitW"])
    if value is None or value < 0:
        return 0.0  # unreadable: the conservative reading is "no discharge"
    return min(value, MAX_ENVELOPE_W)


def envelope_discharge_bounds(
    period: ChargingSchedulePeriod, unit: ChargingRateUnit
) -> list[tuple[float, ChargingRateUnit]]:
    """The discharge bounds (magnitudes >= 0, each with its unit) an envelope period gives:
    customData dischargeLimitW and the native 2.1 dischargeLimit; empty for other periods."""
    if not is_envelope_period(period):
        return []
    out: list[tuple[float, ChargingRateUnit]] = []
    watts = period_discharge_bound_w(period)
    if watts is not None:
        out.append((watts, ChargingRateUnit.W))
    native = period.discharge_limit
    if native is not None:
        out.append((-min(0.0, native) if math.isfinite(native) else 0.0, unit))
    return out


def period_ramp_pct_per_s(period: ChargingSchedulePeriod) -> float | None:
    """customData rampRatePctPerS of an envelope period, within (0, 100]; None when absent or
    unreadable (the supervisor's configured ramp still applies)."""
    data = period.custom_data
    if not _ours(data) or data is None:
        return None
    value = _number(data.get("rampRatePctPerS"))
    if value is None or value <= 0:
        return None
    return min(value, 100.0)


@dataclass(frozen=True, slots=True)
class EnvelopeBounds:
    """An envelope period as local limits: magnitudes in W (>= 0), None = not bounded."""

    max_charge_w: float | None = None
    max_discharge_w: float | None = None
    ramp_pct_per_s: float | None = None

    def tightest(self, other: EnvelopeBounds) -> EnvelopeBounds:
        """Both envelopes at once: the smaller bound of each kind."""

        def low(a: float | None, b: float | None) -> float | None:
            return b if a is None else a if b is None else min(a, b)

        return EnvelopeBounds(
            low(self.max_charge_w, other.max_charge_w),
            low(self.max_discharge_w, other.max_discharge_w),
            low(self.ramp_pct_per_s, other.ramp_pct_per_s),
        )


def envelope_bounds(
    period: ChargingSchedulePeriod, unit: ChargingRateUnit, volts_per_a: float
) -> EnvelopeBounds:
    """The bounds an envelope period sets, in W. A schedule in A is converted with
    `volts_per_a` (the EVSE's nominal DC voltage). A negative `limit` (not sent by our CSMS)
    reads as the composite reads it: no charging."""

    def watts(value: float) -> float:
        return value * volts_per_a if unit is ChargingRateUnit.A else value

    charge = None
    if period.limit is not None and math.isfinite(period.limit):
        charge = min(max(0.0, watts(period.limit)), MAX_ENVELOPE_W)
    discharge = period_discharge_bound_w(period)
    native = period.discharge_limit
    if native is not None:
        native_w = (
            0.0 if not math.isfinite(native) else min(-min(0.0, watts(native)), MAX_ENVELOPE_W)
        )
        discharge = native_w if discharge is None else min(discharge, native_w)
    return EnvelopeBounds(charge, discharge, period_ramp_pct_per_s(period))


def envelope_violations(profile: ChargingProfile) -> list[tuple[str, str]]:
    """(rule, message) for an envelope-tagged profile that breaks the wire contract; empty for
    every other profile."""
    tagged = _ours(profile.custom_data) or any(
        is_envelope_period(p) for s in profile.schedules for p in s.periods
    )
    if not tagged:
        return []
    out: list[tuple[str, str]] = []
    if profile.purpose is not ChargingProfilePurpose.CHARGING_STATION_MAX_PROFILE:
        out.append(("Envelope.purpose", "an envelope is a ChargingStationMaxProfile"))
    for schedule in profile.schedules:
        for period in schedule.periods:
            where = f"period at {period.start_period} s"
            data = period.custom_data
            if not is_envelope_period(period) or data is None:
                out.append(("Envelope.customData", f"{where}: no envelope customData"))
                continue
            if period.limit is not None and period.limit < 0:
                out.append(("Envelope.limit", f"{where}: the charge bound must be >= 0"))
            value = _number(data.get("dischargeLimitW"))
            if value is None or value < 0:
                out.append(("Envelope.dischargeLimitW", f"{where}: must be a number >= 0"))
            if "rampRatePctPerS" in data:
                ramp = _number(data["rampRatePctPerS"])
                if ramp is None or not 0 < ramp <= 100:
                    out.append(("Envelope.rampRatePctPerS", f"{where}: must be in (0, 100]"))
    return out
