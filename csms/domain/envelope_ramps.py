"""Ramps between envelope limits: a CSIP-AUS DERControl's rampTms (issue 18), pure.

IEEE 2030.5 DERControlBase.rampTms is "the requested ramp time, in hundredths of a second, for
the device to transition from the current DERControl mode setting(s) to the new mode
setting(s)" (without it the DefaultDERControl's setGradW applies, which the agent enforces as
`rampRatePctPerS`). CACTUS ALL-25 and ALL-28 read it the same way: "the DER shall ramp
export/import to 50 % in 60 seconds".

So when an envelope with `ramp_time_s` comes into force, each station's bounds (charge and
discharge, what its ChargingStationMaxProfile carries) move from the bounds it held just before
to the envelope's over that time, in at most `max_steps` steps. A step never allows more than
the straight line from old to new at any instant of the step, widened by `SLACK_S` on each side
(the profile's whole-second resolution), so a tightening is never slower than asked and a
loosening never faster; the new bounds hold from the ramp's end on. The station's "current
setting" is what it last accepted (`profile_bounds_at` of the profile sent), so a ramp re-sent
half way goes on from where the station is, and still ends at start + rampTms.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from csms.domain.envelopes import (
    ENVELOPE_PROFILE_ID,
    ENVELOPE_VENDOR_ID,
    MAX_ENVELOPE_W,
    ChargerBounds,
    StationPeriod,
)

MAX_RAMP_STEPS = 10
MIN_STEP_S = 1.0  # no step shorter than the profile's resolution
SLACK_S = 1.0


def linear(old: float, new: float, start: datetime, end: datetime, t: datetime) -> float:
    """The straight line from `old` at `start` to `new` at `end` (flat outside)."""
    if t <= start:
        return old
    if t >= end:
        return new
    fraction = (t - start) / (end - start)
    return old + (new - old) * fraction


def ramp_steps(
    old: float, new: float, start: datetime, end: datetime, max_steps: int
) -> list[tuple[datetime, float]]:
    """(step start, value) from `start`: at most `max_steps` steps of equal length towards
    `new`, then `new` from `end` on. Each step holds the lower end of the line over the step
    widened by SLACK_S, so it is never above the line; monotone, within [min, max] of the two."""
    if end <= start or old == new:
        return [(start, new)]
    span = end - start
    n = max(1, min(max_steps, int(span.total_seconds() // MIN_STEP_S)))
    slack = timedelta(seconds=SLACK_S)
    out: list[tuple[datetime, float]] = []
    for k in range(n):
        step_start = start + span * k / n
        step_end = start + span * (k + 1) / n
        low_end = linear(old, new, start, end, max(start, step_start - slack))
        high_end = linear(old, new, start, end, min(end, step_end + slack))
        value = min(low_end, high_end)
        if not out or out[-1][1] != value:
            out.append((step_start, value))
    if out[-1][1] != new:
        out.append((end, new))
    return out


def _ramp_of(period: StationPeriod) -> float | None:
    envelope = period.envelope
    return None if envelope is None else envelope.ramp_time_s


def ramp_periods(
    periods: Sequence[StationPeriod],
    *,
    current: ChargerBounds | None,
    max_steps: int = MAX_RAMP_STEPS,
) -> list[StationPeriod]:
    """A station's bounds timeline with each envelope's ramp stepped in. `current`: the bounds
    the station holds at the first period's start (None: unknown, the first period applies at
    once). The first period's ramp started at its envelope's start (it may already be under
    way); a later period's at its own start, from the bounds in force just before it."""
    out: list[StationPeriod] = []
    steps_allowed = max(1, min(MAX_RAMP_STEPS, max_steps))
    for index, period in enumerate(periods):
        origin = current if index == 0 else out[-1].bounds if out else None
        ramp = _ramp_of(period)
        if ramp is None or origin is None or origin == period.bounds:
            out.append(period)
            continue
        assert period.envelope is not None
        ramp_start = min(period.start, period.envelope.start) if index == 0 else period.start
        ramp_end = ramp_start + timedelta(seconds=ramp)
        if ramp_end <= period.start:
            out.append(period)
            continue
        charge = ramp_steps(
            origin.max_charge_w, period.bounds.max_charge_w, period.start, ramp_end, steps_allowed
        )
        discharge = ramp_steps(
            origin.max_discharge_w,
            period.bounds.max_discharge_w,
            period.start,
            ramp_end,
            steps_allowed,
        )
        moments = sorted({t for t, _ in charge} | {t for t, _ in discharge})
        moments = [t for t in moments if period.end is None or t < period.end]
        for k, moment in enumerate(moments):
            step_end = moments[k + 1] if k + 1 < len(moments) else period.end
            bounds = ChargerBounds(_value_at(charge, moment), _value_at(discharge, moment))
            # The steps are the ramp: the default's setGradW (2030.5: used when rampTms is
            # absent) does not slow it further on the agent.
            out.append(StationPeriod(moment, step_end, bounds, None, period.envelope))
    return out


def _value_at(steps: Sequence[tuple[datetime, float]], t: datetime) -> float:
    found = steps[0][1]
    for moment, value in steps:
        if moment <= t:
            found = value
    return found


def profile_bounds_at(payload: Mapping[str, Any] | None, t: datetime) -> ChargerBounds | None:
    """The bounds an envelope SetChargingProfile (as `envelope_profile` builds it) gives at `t`:
    charge `limit`, discharge customData `dischargeLimitW`. None for anything else, before its
    start, or with values out of bounds (a stored payload, bounded anyway)."""
    try:
        profile = payload["chargingProfile"] if payload is not None else None
        if not isinstance(profile, Mapping) or profile.get("id") != ENVELOPE_PROFILE_ID:
            return None
        schedule = profile["chargingSchedule"][0]
        start = datetime.fromisoformat(str(schedule["startSchedule"]).replace("Z", "+00:00"))
        if start.tzinfo is None or t < start:
            return None
        offset = (t - start).total_seconds()
        found: ChargerBounds | None = None
        for period in schedule["chargingSchedulePeriod"][:1024]:
            if float(period["startPeriod"]) > offset:
                break
            custom = period.get("customData") or {}
            if custom.get("vendorId") != ENVELOPE_VENDOR_ID:
                return None
            charge, discharge = float(period["limit"]), float(custom["dischargeLimitW"])
            if not all(math.isfinite(x) and 0 <= x <= MAX_ENVELOPE_W for x in (charge, discharge)):
                return None
            found = ChargerBounds(charge, discharge)
        return found
    except (KeyError, IndexError, TypeError, ValueError, AttributeError):
        return None
