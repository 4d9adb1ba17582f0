"""V2G service layer, the parts without I/O: settings, records the service returns, and pure
helpers (session context from EV needs, re-plan reasons, price runs, plan JSON, price lookup).
Stack levels and profile ids of the V2G TxProfiles are explained in csms.services.v2g_service.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from pydantic import BaseModel

from csms.domain.errors import InvalidRequest
from csms.domain.models import Transaction
from csms.domain.v2g_records import (
    PlanRecord,
    PriceRow,
    VehicleRecord,
)
from csms.settings import Settings
from csms.v2g import (
    Chemistry,
    PriceSeries,
    Vehicle,
    VehiclePlan,
    VehicleSession,
)
from csms.v2g import bounds as b
from csms.v2g.economics import Economics

PLAN_STACK_LEVEL = 1
DISPATCH_STACK_LEVEL = 2
FREQUENCY_STACK_LEVEL = 3
PLAN_PROFILE_ID = 62_001
DISPATCH_PROFILE_ID = 62_002
FREQUENCY_PROFILE_ID = 62_003

# DataTransfer the emergency-backup switch sends (the agent's V2X extension).
BACKUP_VENDOR_ID = "org.openv2g.v2x"
BACKUP_MESSAGE_ID = "EmergencyBackup"

SOC = "SoC"
IMPORT_REGISTER = "Energy.Active.Import.Register"
EXPORT_REGISTER = "Energy.Active.Export.Register"
GRID_TECH_CODES = ("grid_lost", "grid_restored", "backup_mode")


class V2gSettings(BaseModel):
    """V2G service settings: the `v2g_*` fields of `csms.settings.Settings`
    (`CSMS_V2G_<NAME>` / `--v2g-<name>`), read once with the rest."""

    # Background re-planning: every this many seconds look at each plugged-in vehicle and
    # re-plan when prices, SoC, departure changed or the plan is older than `plan_max_age_s`.
    # 0 = off (the default, and in tests).
    replan_interval_s: float = 0.0
    plan_max_age_s: float = 900.0
    soc_tolerance: float = 0.03
    # NEM uploads: import = (RRP/10 + margin) x (1 + GST); export = RRP/10 + export offset.
    retail_margin_c_kwh: float = 0.0
    gst_rate: float = 0.10
    export_offset_c_kwh: float = 0.0
    # Grid-service payment per kWh of accepted dispatch/frequency response (AUD).
    grid_service_aud_per_kwh: float = 0.50
    # Without a departure from the API, the EV or a prediction: plug-in + this, to this SoC.
    default_dwell_h: float = 12.0
    default_target_soc: float = 0.80
    house_load_kw: float = 1.0  # backup time estimate
    frequency_rule_hold_s: float = 5.0
    frequency_rule_threshold_hz: float = 49.8
    frequency_discharge_kw: float = 5.0
    frequency_duration_s: float = 600.0
    frequency_min_soc: float = 0.5
    # Plans look at most this far ahead (csms/v2g/bounds.py DEFAULT_MAX_HORIZON_H).
    max_horizon_h: float = 168.0

    @classmethod
    def from_settings(cls, settings: Settings) -> V2gSettings:
        return cls(**{name: getattr(settings, f"v2g_{name}") for name in cls.model_fields})


class CommandSender(Protocol):
    async def send(
        self,
        station_id: str,
        action: str,
        payload: dict[str, Any],
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> dict[str, Any]: ...


@dataclass(frozen=True)
class SessionContext:
    """Where a vehicle stands now and what it needs, with where each figure came from."""

    vehicle: VehicleRecord
    soc: float | None
    soc_source: str
    departure: datetime
    target_soc: float
    departure_source: str  # api / ev / predicted / default
    transaction: Transaction | None
    confidence: float | None = None

    def session(self, soc: float | None = None) -> VehicleSession:
        value = self.soc if soc is None else soc
        if value is None:
            raise InvalidRequest(
                f"vehicle {self.vehicle.id!r}: no SoC known (no SoC meter value yet); give soc"
            )
        return VehicleSession(
            vehicle=to_vehicle(self.vehicle),
            soc=min(1.0, max(0.0, value)),
            departure=self.departure,
            target_soc=self.target_soc,
        )


@dataclass(frozen=True)
class VehiclePlanRequest:
    vehicle_id: str
    soc: float | None = None
    departure: datetime | None = None
    target_soc: float | None = None
    arrival: datetime | None = None


@dataclass(frozen=True)
class PlanRequest:
    vehicles: tuple[VehiclePlanRequest, ...]
    import_limit_kw: float | None = None
    export_limit_kw: float | None = None
    site_base_kw: tuple[float, ...] | None = None  # per price interval from the first one
    prices: PriceSeries | None = None  # None = the stored prices
    now: datetime | None = None


@dataclass(frozen=True)
class SentPlan:
    plan: VehiclePlan
    station_id: str
    evse_id: int
    transaction_id: str
    status: str
    status_info: dict[str, Any] | None
    profile: dict[str, Any]
    plan_id: int


@dataclass(frozen=True)
class DispatchOutcome:
    id: int
    requested_kw: float
    allocated_kw: float
    accepted_kw: float
    per_vehicle: dict[str, dict[str, Any]]


@dataclass(frozen=True)
class BackupState:
    station_id: str
    grid_present: bool
    backup_active: bool
    emergency_backup: bool
    since: datetime | None
    vehicle_id: str | None
    soc: float | None
    house_load_kw: float
    backup_hours: float | None


@dataclass(frozen=True)
class EconomicsReport:
    vehicle_id: str
    start: datetime
    end: datetime
    economics: Economics
    equivalent_full_cycles: float
    v2g_benefit_aud: float
    annual_benefit_aud: float
    payback_years: float
    equipment_cost_aud: float
    priced_kwh: float
    unpriced_kwh: float


def bounded(value: float, bound: b.Bound, name: str) -> float:
    """`value` checked against a V2G bound; InvalidRequest (422) naming `name` when outside."""
    try:
        return bound.check(value, name)
    except b.BoundError as exc:
        raise InvalidRequest(str(exc)) from exc


def in_time_range(moment: datetime, name: str) -> datetime:
    """A time within csms/v2g/bounds.py's range (far years overflow date arithmetic)."""
    try:
        return b.check_time(moment, name)
    except b.BoundError as exc:
        raise InvalidRequest(str(exc)) from exc


def within_horizon(now: datetime, departure: datetime, max_hours: float, name: str) -> None:
    """InvalidRequest naming `name` and the limit when `departure` is beyond the horizon."""
    try:
        b.check_horizon(now, departure, max_hours, name)
    except b.BoundError as exc:
        raise InvalidRequest(f"{exc}: v2g_max_horizon_h") from exc


def to_vehicle(record: VehicleRecord) -> Vehicle:
    try:
        return Vehicle(
            vehicle_id=record.id,
            capacity_kwh=record.capacity_kwh,
            max_charge_kw=record.max_charge_kw,
            max_discharge_kw=record.max_discharge_kw,
            chemistry=Chemistry.parse(record.chemistry),
            soc_min=record.soc_min,
            soc_max=record.soc_max,
            round_trip_efficiency=record.round_trip_efficiency,
            driving_reserve_soc=record.driving_reserve_soc,
            backup_reserve_soc=record.backup_reserve_soc,
            degradation_c_kwh=record.degradation_c_kwh,
        )
    except ValueError as exc:
        raise InvalidRequest(f"vehicle {record.id!r}: {exc}") from exc


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
