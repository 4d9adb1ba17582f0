"""Pure helpers of the V2G services: session context from EV needs, re-plan reasons, price
runs and lookup, plan JSON, dispatch shares."""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from csms.domain.errors import InvalidRequest
from csms.domain.v2g_records import PlanRecord, PriceRow
from csms.services.v2g.records import SessionContext
from csms.services.v2g.settings import V2gSettings
from csms.v2g import PriceSeries, VehiclePlan
from csms.v2g import bounds as b


def plan_to_json(plan: VehiclePlan) -> dict[str, Any]:
    return {
        "vehicle_id": plan.vehicle_id,
        "start": plan.start.isoformat(),
        "departure": plan.departure.isoformat(),
        "interval_starts": [s.isoformat() for s in plan.interval_starts],
        "hours": list(plan.hours),
        "power_kw": list(plan.power_kw),
        "soc_start": plan.soc_start,
        "soc_after": list(plan.soc_after),
        "target_soc": plan.target_soc,
        "target_met": plan.target_met,
        "warnings": list(plan.warnings),
    }


def expected_soc(plan: dict[str, Any], now: datetime) -> float:
    """The SoC a stored plan expected at `now` (linear within the interval)."""
    starts = [datetime.fromisoformat(s) for s in plan["interval_starts"]]
    soc_before = float(plan["soc_start"])
    begin = datetime.fromisoformat(plan["start"])
    for start, hours, after in zip(starts, plan["hours"], plan["soc_after"], strict=True):
        end = max(start, begin) + timedelta(hours=hours)
        if now < end:
            span = (end - max(start, begin)).total_seconds()
            done = max(0.0, (now - max(start, begin)).total_seconds())
            return soc_before + (after - soc_before) * (done / span if span > 0 else 1.0)
        soc_before = after
    return soc_before


def replan_reasons(
    last: PlanRecord | None,
    ctx: SessionContext,
    now: datetime,
    prices_changed_at: datetime | None,
    settings: V2gSettings,
) -> list[str]:
    """Why the vehicle needs a new plan (empty = keep the one it has). Pure."""
    if last is None:
        return ["no plan yet"]
    reasons: list[str] = []
    plan = last.plan
    if (now - last.planned_at).total_seconds() >= settings.plan_max_age_s:
        reasons.append("cadence")
    if prices_changed_at is not None and prices_changed_at > last.planned_at:
        reasons.append("prices changed")
    if ctx.transaction is not None and last.transaction_id != ctx.transaction.transaction_id:
        reasons.append("new transaction")
    if abs(datetime.fromisoformat(plan["departure"]) - ctx.departure) > timedelta(minutes=5):
        reasons.append("departure changed")
    if abs(float(plan["target_soc"]) - ctx.target_soc) > 1e-6:
        reasons.append("target SoC changed")
    if ctx.soc is not None and abs(expected_soc(plan, now) - ctx.soc) > settings.soc_tolerance:
        reasons.append("SoC moved beyond tolerance")
    return reasons


def series_from_rows(rows: Sequence[PriceRow], now: datetime) -> PriceSeries:
    """The run of stored intervals that holds `now` and continues without gap."""
    ordered = sorted(rows, key=lambda r: r.interval_start)
    first = next(
        (
            i
            for i, r in enumerate(ordered)
            if r.interval_start <= now < r.interval_start + timedelta(seconds=r.interval_s)
        ),
        None,
    )
    if first is None:
        raise InvalidRequest(f"no stored price covers {now.isoformat()}: PUT /api/v1/prices")
    run = [ordered[first]]
    for row in ordered[first + 1 :]:
        prev = run[-1]
        if row.interval_s != prev.interval_s or row.interval_start != prev.interval_start + (
            timedelta(seconds=prev.interval_s)
        ):
            break
        run.append(row)
    return PriceSeries(
        start=run[0].interval_start,
        interval=timedelta(seconds=run[0].interval_s),
        import_c_kwh=tuple(r.import_c_kwh for r in run),
        export_c_kwh=tuple(r.export_c_kwh for r in run),
    )


def departure_from_needs(
    payload: dict[str, Any], capacity_kwh: float, soc: float | None
) -> tuple[datetime | None, float | None]:
    """(departure, target SoC) from a NotifyEVChargingNeeds request (K15)."""
    # Station data: anything unreadable, non-finite or out of range is ignored (None), and
    # the target is kept within 0..1.
    needs = payload.get("chargingNeeds") or {}
    departure = None
    if needs.get("departureTime"):
        try:
            moment = datetime.fromisoformat(str(needs["departureTime"]).replace("Z", "+00:00"))
            departure = b.check_time(moment, "departureTime")
        except ValueError:
            departure = None
    target = None
    dc = needs.get("dcChargingParameters") or {}
    ev_soc = _finite(dc.get("stateOfCharge"), 0.0, 100.0)
    current = ev_soc / 100.0 if ev_soc is not None else soc
    capacity = _finite(dc.get("evEnergyCapacity"), 1.0, 1e7) or capacity_kwh * 1000.0
    energy = _finite(dc.get("energyAmount"), 0.0, 1e7)
    full = _finite(dc.get("fullSoC"), 0.0, 100.0)
    if energy is not None and current is not None:
        target = min(1.0, max(0.0, current + energy / capacity))
    elif full is not None:
        target = full / 100.0
    return departure, target


def _finite(value: Any, low: float, high: float) -> float | None:
    """A number within [low, high] from station data, else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) and low <= number <= high else None


def nonzero_share(
    contexts: Sequence[SessionContext], per_vehicle_kw: dict[str, float]
) -> list[SessionContext]:
    return [c for c in contexts if abs(per_vehicle_kw[c.vehicle.id]) > 1e-6]


def price_lookup(rows: Sequence[PriceRow]) -> Any:
    ordered = sorted(rows, key=lambda r: r.interval_start)
    starts = [r.interval_start for r in ordered]

    def lookup(moment: datetime) -> tuple[float, float] | None:
        # Energy measured at `moment` flowed just before it: price of the interval ending then.
        i = bisect.bisect_left(starts, moment) - 1
        if i < 0:
            return None
        row = ordered[i]
        if moment > row.interval_start + timedelta(seconds=row.interval_s):
            return None
        return row.import_c_kwh, row.export_c_kwh

    return lookup
