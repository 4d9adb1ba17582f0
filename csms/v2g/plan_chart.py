"""The data of the plan chart: price curve, the plan's power and SoC, and the plain-charging
and threshold-rule baselines over the same intervals. One definition for `csms v2g plan
--plot` (drawn with matplotlib) and the dashboard's what-if page (drawn with uPlot)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from csms.v2g.baselines import Schedule, cost_plan, plain_charging, threshold_rules
from csms.v2g.optimizer import VehiclePlan
from csms.v2g.prices import PriceSeries
from csms.v2g.vehicle import VehicleSession


@dataclass(frozen=True)
class PlanChart:
    """Per interval of the plan: start (Unix seconds), import/export price (c/kWh), power (kW,
    + charge / - discharge) and SoC after the interval (%) of the plan and both baselines;
    and each one's total cost (c, energy plus wear)."""

    times: tuple[float, ...]
    import_c_kwh: tuple[float, ...]
    export_c_kwh: tuple[float, ...]
    plan_kw: tuple[float, ...]
    plan_soc: tuple[float, ...]
    plain_kw: tuple[float, ...]
    plain_soc: tuple[float, ...]
    rules_kw: tuple[float, ...]
    rules_soc: tuple[float, ...]
    plan_cost_c: float
    plain_cost_c: float
    rules_cost_c: float
    soc_start: float
    target_soc: float
    departure: float

    def as_dict(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def _aligned(schedule: Schedule, starts: tuple[datetime, ...]) -> tuple[list[float], list[float]]:
    by_start = dict(
        zip(
            schedule.interval_starts,
            zip(schedule.power_kw, schedule.soc_after, strict=True),
            strict=True,
        )
    )
    power, soc = [], []
    last_soc = 0.0
    for start in starts:
        kw, after = by_start.get(start, (0.0, last_soc))
        last_soc = after
        power.append(float(kw))
        soc.append(100.0 * float(after))
    return power, soc


def plan_chart(
    plan: VehiclePlan, session: VehicleSession, prices: PriceSeries, now: datetime
) -> PlanChart:
    planned = cost_plan(plan, session, prices, now)
    plain = plain_charging(session, prices, now)
    rules = threshold_rules(session, prices, now)
    starts = tuple(planned.interval_starts)
    interval_s = prices.interval.total_seconds()
    price_index = [
        min(max(int((s - prices.start).total_seconds() // interval_s), 0), len(prices) - 1)
        for s in starts
    ]
    plain_kw, plain_soc = _aligned(plain, starts)
    rules_kw, rules_soc = _aligned(rules, starts)
    return PlanChart(
        times=tuple(s.timestamp() for s in starts),
        import_c_kwh=tuple(prices.import_c_kwh[i] for i in price_index),
        export_c_kwh=tuple(prices.export_c_kwh[i] for i in price_index),
        plan_kw=tuple(float(p) for p in planned.power_kw),
        plan_soc=tuple(100.0 * float(s) for s in planned.soc_after),
        plain_kw=tuple(plain_kw),
        plain_soc=tuple(plain_soc),
        rules_kw=tuple(rules_kw),
        rules_soc=tuple(rules_soc),
        plan_cost_c=planned.total_cost_c,
        plain_cost_c=plain.total_cost_c,
        rules_cost_c=rules.total_cost_c,
        soc_start=100.0 * session.soc,
        target_soc=100.0 * session.target_soc,
        departure=session.departure.timestamp(),
    )
