"""V2G records: the vehicles, price intervals, plans, dispatches and per-station settings that
the V2G services keep (plain frozen dataclasses; the repositories return them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class VehicleRecord:
    id: str
    capacity_kwh: float
    chemistry: str
    soc_min: float
    soc_max: float
    max_charge_kw: float
    max_discharge_kw: float
    round_trip_efficiency: float
    driving_reserve_soc: float
    backup_reserve_soc: float
    degradation_c_kwh: float | None = None
    name: str | None = None
    station_id: str | None = None
    evse_id: int | None = None
    departure: datetime | None = None
    target_soc: float | None = None
    # V2G export allowed (the Home Assistant switch); off keeps max_discharge_kw for backup.
    v2g_enabled: bool = True
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class PriceRow:
    interval_start: datetime
    interval_s: int
    import_c_kwh: float
    export_c_kwh: float
    source: str = "api"


@dataclass(frozen=True, slots=True)
class PlanRecord:
    vehicle_id: str
    planned_at: datetime
    status: str
    plan: dict[str, Any]
    station_id: str | None = None
    evse_id: int | None = None
    transaction_id: str | None = None
    reason: str | None = None
    id: int | None = None


@dataclass(frozen=True, slots=True)
class DispatchRecord:
    kind: str
    started_at: datetime
    duration_s: int
    requested_kw: float
    allocated_kw: float
    accepted_kw: float
    per_vehicle: dict[str, Any]
    id: int | None = None


@dataclass(frozen=True, slots=True)
class StationV2gSettings:
    station_id: str
    freq_watt_enabled: bool = False
    freq_watt_curve: list[list[float]] | None = None
    emergency_backup: bool = False
    updated_at: datetime | None = None
