"""What the V2G services take and return (plain records)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from csms.domain.errors import InvalidRequest
from csms.domain.models import Transaction
from csms.domain.v2g_records import VehicleRecord
from csms.services.v2g.checks import to_vehicle
from csms.v2g import PriceSeries, VehiclePlan, VehicleSession
from csms.v2g.economics import Economics


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
