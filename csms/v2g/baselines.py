"""Baselines the optimizer must beat, simulated with the same SoC model and costed the same way.

- plain charging: charge at full power from now until the departure target is met;
- the seed's threshold rules: charge below 10 c/kWh while SoC < 90 %, discharge above 40 c/kWh
  between 16:00 and 21:00 local time while SoC > 60 %. A departure guard is added (charge when
  the target would otherwise become unreachable, never discharge below what can be recharged
  in time) so that the rules also meet the departure target and the comparison is fair.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timezone

import numpy as np

from csms.v2g.model import energy_cost_c, simulate, wear_cost_c
from csms.v2g.optimizer import VehiclePlan
from csms.v2g.prices import AEST, PriceSeries, hours_overlap
from csms.v2g.vehicle import VehicleSession


@dataclass(frozen=True)
class ThresholdRules:
    charge_below_c_kwh: float = 10.0
    charge_up_to_soc: float = 0.90
    discharge_above_c_kwh: float = 40.0
    discharge_from: time = time(16, 0)
    discharge_until: time = time(21, 0)
    discharge_above_soc: float = 0.60
    local_tz: timezone = AEST


@dataclass(frozen=True)
class Schedule:
    """A signed power per interval for one vehicle, its SoC, and what it costs."""

    interval_starts: tuple[datetime, ...]
    hours: tuple[float, ...]
    power_kw: tuple[float, ...]
    soc_after: tuple[float, ...]
    energy_cost_c: float
    wear_cost_c: float

    @property
    def total_cost_c(self) -> float:
        return self.energy_cost_c + self.wear_cost_c

    @property
    def soc_at_departure(self) -> float:
        return self.soc_after[-1] if self.soc_after else float("nan")


def session_intervals(
    session: VehicleSession, prices: PriceSeries, now: datetime
) -> tuple[list[datetime], np.ndarray, np.ndarray, np.ndarray]:
    """Intervals in which the vehicle is plugged in: starts, plugged hours, import, export."""
    begin = now if session.arrival is None else max(now, session.arrival)
    step = prices.interval
    first = max(0, prices.index_at(begin))
    starts, hours, imports, exports = [], [], [], []
    for i in range(first, len(prices)):
        s = prices.interval_start(i)
        if s >= session.departure:
            break
        h = hours_overlap(s, s + step, begin, session.departure)
        if h <= 1e-9:
            continue
        starts.append(s)
        hours.append(h)
        imports.append(prices.import_c_kwh[i])
        exports.append(prices.export_c_kwh[i])
    return starts, np.array(hours), np.array(imports), np.array(exports)


def cost_schedule(
    session: VehicleSession,
    prices: PriceSeries,
    now: datetime,
    power_kw: np.ndarray,
    soc_after: np.ndarray,
) -> Schedule:
    """Cost a vehicle's signed powers (alone on its meter) the way every plan is costed."""
    starts, hours, imports, exports = session_intervals(session, prices, now)
    power = np.asarray(power_kw, dtype=float)
    return Schedule(
        interval_starts=tuple(starts),
        hours=tuple(float(h) for h in hours),
        power_kw=tuple(float(p) for p in power),
        soc_after=tuple(float(s) for s in soc_after),
        energy_cost_c=energy_cost_c(imports, exports, power * hours),
        wear_cost_c=wear_cost_c(power, hours, session.vehicle.wear_c_kwh),
    )


def plain_charging(session: VehicleSession, prices: PriceSeries, now: datetime) -> Schedule:
    """Charge at full power from now until the target is reached."""
    v = session.vehicle
    _, hours, _, _ = session_intervals(session, prices, now)
    target = min(session.target_soc, v.soc_max)
    requested = np.full(len(hours), v.max_charge_kw)
    power, soc = simulate(v, session.soc, requested, hours, ceiling_soc=max(target, session.soc))
    return cost_schedule(session, prices, now, power, soc)


def threshold_rules(
    session: VehicleSession,
    prices: PriceSeries,
    now: datetime,
    rules: ThresholdRules | None = None,
) -> Schedule:
    """The seed's price thresholds, with a departure guard."""
    rules = rules or ThresholdRules()
    v = session.vehicle
    cap = v.capacity_kwh
    eta_c, eta_d = v.charge_efficiency, v.discharge_efficiency
    starts, hours, imports, exports = session_intervals(session, prices, now)
    target_kwh = min(session.target_soc, v.soc_max) * cap
    floor_kwh = min(v.reserve_soc, session.soc) * cap
    ceiling_kwh = max(v.soc_max, session.soc) * cap
    # Energy the charger can still add after each interval (battery side).
    can_add_after = np.concatenate([np.cumsum((v.max_charge_kw * eta_c * hours)[::-1])[::-1], [0]])
    # Like the planner: a vehicle plugged in below its reserve only charges in this session.
    may_discharge = session.soc >= v.reserve_soc
    energy = session.soc * cap
    power = np.zeros(len(hours))
    soc = np.zeros(len(hours))
    for k, h in enumerate(hours):
        local = starts[k].astimezone(rules.local_tz).time()
        # Departure guard: the least this interval must store to keep the target reachable.
        must_store = max(0.0, target_kwh - energy - can_add_after[k + 1])
        p = 0.0
        if imports[k] < rules.charge_below_c_kwh and energy < rules.charge_up_to_soc * cap:
            room = min(rules.charge_up_to_soc * cap, ceiling_kwh) - energy
            p = min(v.max_charge_kw, room / (eta_c * h))
        elif (
            may_discharge
            and exports[k] > rules.discharge_above_c_kwh
            and rules.discharge_from <= local < rules.discharge_until
            and energy > rules.discharge_above_soc * cap
        ):
            keep = max(
                rules.discharge_above_soc * cap, floor_kwh, target_kwh - can_add_after[k + 1]
            )
            p = -min(v.max_discharge_kw, max(0.0, (energy - keep) * eta_d / h))
        if must_store > 0 and p * h * eta_c < must_store:
            p = min(v.max_charge_kw, must_store / (eta_c * h))
        energy += p * h * eta_c if p > 0 else p * h / eta_d
        power[k] = p
        soc[k] = energy / cap
    return cost_schedule(session, prices, now, power, soc)


def cost_plan(
    plan: VehiclePlan, session: VehicleSession, prices: PriceSeries, now: datetime
) -> Schedule:
    """Cost an optimizer plan exactly like the baselines (the vehicle alone on its meter)."""
    return cost_schedule(
        session, prices, now, np.asarray(plan.power_kw), np.asarray(plan.soc_after)
    )
