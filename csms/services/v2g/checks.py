"""Input checks of the V2G services: bounds, time range, horizon, vehicle records; each
raises InvalidRequest (422) naming the field."""

from __future__ import annotations

from datetime import datetime

from csms.domain.errors import InvalidRequest
from csms.domain.v2g_records import VehicleRecord
from csms.v2g import Chemistry, Vehicle
from csms.v2g import bounds as b


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


def to_vehicle(record: VehicleRecord, *, for_backup: bool = False) -> Vehicle:
    """The pure vehicle the planner sees: V2G switched off = no discharge. `for_backup`: the
    vehicle as a home backup (V2H) sees it, where the V2G switch does not apply."""
    discharge_kw = record.max_discharge_kw if record.v2g_enabled or for_backup else 0.0
    try:
        return Vehicle(
            vehicle_id=record.id,
            capacity_kwh=record.capacity_kwh,
            max_charge_kw=record.max_charge_kw,
            max_discharge_kw=discharge_kw,
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
