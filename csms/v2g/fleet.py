"""Fleet flexibility, aggregated bids and dispatch of a fleet power target (pure).

Signs: up = more charging (absorb power, FCAS "lower"), down = discharging (inject, "raise").
A fleet target is signed like every power here: negative = discharge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from csms.v2g.vehicle import VehicleSession, available_v2g_energy_kwh

MIN_BID_KW = 10.0  # the aggregator offers nothing smaller


@dataclass(frozen=True)
class Flexibility:
    """What one vehicle can do from idle, sustained for `duration` (meter side)."""

    vehicle_id: str
    up_kw: float
    down_kw: float
    up_kwh: float  # energy it can still absorb
    down_kwh: float  # energy it can deliver above its floor
    duration: timedelta
    until: datetime  # departure: nothing can be asked after it


def vehicle_flexibility(session: VehicleSession, now: datetime, duration: timedelta) -> Flexibility:
    """Headroom of one plugged-in vehicle for a response lasting `duration` from `now`.

    Discharge never goes below the reserve, nor below the SoC from which the departure target
    can be recharged in the time left after the response; a vehicle leaving before the
    response would end offers no power.
    """
    v = session.vehicle
    d_hours = duration / timedelta(hours=1)
    if d_hours <= 0:
        raise ValueError("duration must be positive")
    hours_left = (session.departure - now) / timedelta(hours=1)
    down_kwh = (
        available_v2g_energy_kwh(v, session.soc, session.target_soc, hours_left - d_hours)
        * v.discharge_efficiency
        if session.soc >= v.reserve_soc
        else 0.0
    )
    up_kwh = max(0.0, v.soc_max - session.soc) * v.capacity_kwh / v.charge_efficiency
    stays = hours_left >= d_hours
    return Flexibility(
        vehicle_id=session.vehicle_id,
        up_kw=min(v.max_charge_kw, up_kwh / d_hours) if stays else 0.0,
        down_kw=min(v.max_discharge_kw, down_kwh / d_hours) if stays else 0.0,
        up_kwh=up_kwh,
        down_kwh=down_kwh,
        duration=duration,
        until=session.departure,
    )


@dataclass(frozen=True)
class FleetFlexibility:
    up_kw: float
    down_kw: float
    up_kwh: float
    down_kwh: float
    vehicles: int
    duration: timedelta


def aggregate(flex: Sequence[Flexibility]) -> FleetFlexibility:
    durations = {f.duration for f in flex}
    if len(durations) > 1:
        raise ValueError("aggregate flexibilities computed for one duration")
    return FleetFlexibility(
        up_kw=sum(f.up_kw for f in flex),
        down_kw=sum(f.down_kw for f in flex),
        up_kwh=sum(f.up_kwh for f in flex),
        down_kwh=sum(f.down_kwh for f in flex),
        vehicles=len(flex),
        duration=durations.pop() if durations else timedelta(0),
    )


@dataclass(frozen=True)
class Bid:
    direction: str  # "raise" (discharge) or "lower" (charge more)
    capacity_kw: float
    energy_kwh: float
    duration: timedelta
    response_time_s: float
    vehicles: int


def make_bid(
    fleet: FleetFlexibility,
    direction: str,
    response_time_s: float,
    min_bid_kw: float = MIN_BID_KW,
) -> Bid | None:
    """The fleet's offer for one direction, or None below the minimum bid size."""
    if direction not in ("raise", "lower"):
        raise ValueError("direction is 'raise' or 'lower'")
    capacity = fleet.down_kw if direction == "raise" else fleet.up_kw
    if capacity < min_bid_kw:
        return None
    hours = fleet.duration / timedelta(hours=1)
    return Bid(
        direction, capacity, capacity * hours, fleet.duration, response_time_s, fleet.vehicles
    )


def water_fill(target: float, caps: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Split target >= 0 as x_i = min(cap_i, level x w_i), one level for all: what a vehicle
    cannot take goes to the others. Sums to min(target, sum caps). O(n log n)."""
    caps = np.maximum(np.asarray(caps, dtype=float), 0.0)
    w = np.ones_like(caps) if weights is None else np.asarray(weights, dtype=float)
    if np.any(w < 0):
        raise ValueError("weights must be >= 0")
    usable = (caps > 0) & (w > 0)
    out = np.zeros_like(caps)
    if target <= 0 or not usable.any():
        return out
    c, wu = caps[usable], w[usable]
    if target >= c.sum():
        out[usable] = c
        return out
    order = np.argsort(c / wu, kind="stable")
    c_sorted, w_sorted = c[order], wu[order]
    ratio = c_sorted / w_sorted
    saturated_before = np.concatenate(([0.0], np.cumsum(c_sorted)[:-1]))
    weight_from = np.cumsum(w_sorted[::-1])[::-1]
    level = (target - saturated_before) / weight_from
    k = int(np.argmax(level <= ratio))  # first vehicle that is not saturated at its level
    out[usable] = np.minimum(c, level[k] * wu)
    return out


def proportional_split(
    target: float, caps: np.ndarray, weights: np.ndarray | None = None
) -> np.ndarray:
    """Split target >= 0 as P_i = P x w_i / sum(w) (w = each vehicle's available power by
    default, as the seed's aggregator does); a vehicle whose share exceeds its cap is capped and
    the excess split the same way over the others. Each round caps at least one more vehicle
    or ends, so at most n rounds. Sums to min(target, sum caps)."""
    caps = np.maximum(np.asarray(caps, dtype=float), 0.0)
    w = caps.copy() if weights is None else np.asarray(weights, dtype=float)
    if w.shape != caps.shape:
        raise ValueError("one weight per vehicle")
    if np.any(w < 0):
        raise ValueError("weights must be >= 0")
    out = np.zeros_like(caps)
    open_ = (caps > 0) & (w > 0)
    if target <= 0 or not open_.any():
        return out
    if target >= caps[open_].sum():
        out[open_] = caps[open_]
        return out
    remaining = float(target)
    for _ in range(int(open_.sum())):  # bounded: one vehicle capped per round at least
        share = np.zeros_like(caps)
        share[open_] = remaining * w[open_] / w[open_].sum()
        over = open_ & (share >= caps)
        if not over.any():
            out[open_] = share[open_]
            break
        out[over] = caps[over]
        remaining -= float(caps[over].sum())
        open_ &= ~over
        if remaining <= 0 or not open_.any():
            break
    return out


DISPATCH_METHODS = ("proportional", "water_filling")


@dataclass(frozen=True)
class Allocation:
    requested_kw: float
    delivered_kw: float
    per_vehicle_kw: dict[str, float]

    @property
    def shortfall_kw(self) -> float:
        return abs(self.requested_kw) - abs(self.delivered_kw)


def dispatch(
    target_kw: float,
    vehicles: Sequence[Flexibility],
    weights: Sequence[float] | None = None,
    method: str = "proportional",
) -> Allocation:
    """Split a signed fleet target (negative = discharge) within each vehicle's headroom.

    "proportional" (default, the seed aggregator's rule): shares proportional to each vehicle's
    available power in the target's direction (or to `weights`). "water_filling": equal shares
    (or proportional to `weights`). Either way a vehicle that cannot take its share is capped
    and the rest spread over the others.
    """
    if method not in DISPATCH_METHODS:
        raise ValueError(f"method must be one of {', '.join(DISPATCH_METHODS)}")
    caps = np.array([f.down_kw if target_kw < 0 else f.up_kw for f in vehicles], dtype=float)
    w = None if weights is None else np.asarray(weights, dtype=float)
    if method == "proportional":
        share = proportional_split(abs(target_kw), caps, w)
    else:
        share = water_fill(abs(target_kw), caps, w)
    sign = -1.0 if target_kw < 0 else 1.0
    signed = sign * share
    return Allocation(
        requested_kw=target_kw,
        delivered_kw=float(signed.sum()),
        per_vehicle_kw={f.vehicle_id: float(p) for f, p in zip(vehicles, signed, strict=True)},
    )
