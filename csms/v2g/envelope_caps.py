"""Plans within the site's operating envelope (issue 18), pure.

A station's share of its site's envelope reaches the planners as `PowerCap`s (charge and
discharge kW over a time span). The optimizer bounds each interval's charge and discharge by
the tightest cap the interval overlaps (`interval_caps`); `clip_plan` is the last guard before
a plan is sent: whatever produced it, no interval leaves the caps (SoC re-simulated when
anything was cut). Fleet dispatch narrows a vehicle's power to the caps over the response
(`narrowed_session`). Grid-service dispatches (frequency response, aFRR, local control) are
held to the same share: `held_power_w` clips one power, `held_bounds` narrows the bounds a
profile carries (its `limit` / `dischargeLimit`, which also bound the curve points).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

import numpy as np

from csms.v2g.model import simulate
from csms.v2g.optimizer import VehiclePlan
from csms.v2g.v2x import PowerBounds
from csms.v2g.vehicle import PowerCap, VehicleSession, tightest

# A plan's power within this of its cap is at the cap (solver round-off), never above it.
CAP_TOLERANCE_KW = 1e-9


def interval_caps(
    caps: Sequence[PowerCap], starts: Sequence[datetime], step: timedelta
) -> tuple[np.ndarray, np.ndarray]:
    """Per interval [s, s + step): the charge and discharge caps (inf where none applies)."""
    charge = np.full(len(starts), np.inf)
    discharge = np.full(len(starts), np.inf)
    for k, s in enumerate(starts):
        found = tightest(caps, s, s + step)
        if found is not None:
            charge[k], discharge[k] = found
    return charge, discharge


def within_caps(
    plan: VehiclePlan, caps: Sequence[PowerCap], tolerance_kw: float = CAP_TOLERANCE_KW
) -> bool:
    """Whether each interval of the plan stays within the caps it overlaps (give or take
    `tolerance_kw`: solver round-off)."""
    for k, start in enumerate(plan.interval_starts):
        end = plan.interval_starts[k + 1] if k + 1 < len(plan.interval_starts) else None
        found = tightest(caps, start, end or start + _last_step(plan))
        if found is None:
            continue
        p = plan.power_kw[k]
        if p > found[0] + tolerance_kw or -p > found[1] + tolerance_kw:
            return False
    return True


def _last_step(plan: VehiclePlan) -> timedelta:
    starts = plan.interval_starts
    if len(starts) >= 2:
        return starts[-1] - starts[-2]
    return timedelta(hours=max(plan.hours[-1], 1e-6)) if plan.hours else timedelta(seconds=1)


def clip_plan(plan: VehiclePlan, session: VehicleSession) -> VehiclePlan:
    """The plan with each interval's power clipped into its caps (the session's); the SoC
    after each interval re-simulated when something was cut."""
    caps = session.power_caps
    if not caps or not plan.power_kw:
        return plan
    powers = list(plan.power_kw)
    cut = False
    for k, start in enumerate(plan.interval_starts):
        end = plan.interval_starts[k + 1] if k + 1 < len(powers) else start + _last_step(plan)
        found = tightest(caps, start, end)
        if found is None:
            continue
        clipped = min(max(powers[k], -found[1]), found[0])
        if clipped != powers[k]:
            powers[k], cut = clipped, True
    if not cut:
        return plan
    actual, soc = simulate(session.vehicle, plan.soc_start, powers, plan.hours)
    met = bool(soc[-1] >= plan.target_soc - 1e-6) if len(soc) else plan.target_met
    note = "clipped to the site's operating envelope"
    return replace(
        plan,
        power_kw=tuple(float(p) for p in actual),
        soc_after=tuple(float(s) for s in soc),
        target_met=met,
        warnings=(*plan.warnings, note),
    )


def narrowed_session(session: VehicleSession, start: datetime, end: datetime) -> VehicleSession:
    """The session with the vehicle's power bounds narrowed to its caps over [start, end)
    (fleet dispatch: one power for the whole response)."""
    found = tightest(session.power_caps, start, end)
    if found is None:
        return session
    v = session.vehicle
    charge, discharge = min(v.max_charge_kw, found[0]), min(v.max_discharge_kw, found[1])
    if (charge, discharge) == (v.max_charge_kw, v.max_discharge_kw):
        return session
    return replace(session, vehicle=replace(v, max_charge_kw=charge, max_discharge_kw=discharge))


def envelope_share_w(
    caps: Sequence[PowerCap], start: datetime, end: datetime
) -> tuple[float, float] | None:
    """(charge W, discharge W): the station's tightest share over [start, end) (None: no
    envelope applies)."""
    found = tightest(caps, start, end)
    if found is None:
        return None
    return max(0.0, found[0] * 1000.0), max(0.0, found[1] * 1000.0)


def held_power_w(
    power_w: float, caps: Sequence[PowerCap], start: datetime, end: datetime
) -> tuple[float, bool]:
    """`power_w` (signed, + charge) held within the share over [start, end), and whether the
    envelope cut it."""
    found = envelope_share_w(caps, start, end)
    if found is None:
        return power_w, False
    held = min(max(power_w, -found[1]), found[0])
    return held, held != power_w


def held_bounds(
    bounds: PowerBounds, caps: Sequence[PowerCap], start: datetime, end: datetime
) -> tuple[PowerBounds, bool]:
    """`bounds` narrowed to the share over [start, end), and whether the envelope narrowed
    them."""
    found = envelope_share_w(caps, start, end)
    if found is None:
        return bounds, False
    charge = min(bounds.max_charge_w, found[0])
    discharge = min(bounds.max_discharge_w, found[1])
    narrowed = (charge, discharge) != (bounds.max_charge_w, bounds.max_discharge_w)
    return (PowerBounds(charge, discharge) if narrowed else bounds), narrowed
