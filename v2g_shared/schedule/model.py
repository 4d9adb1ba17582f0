"""Charging profiles as frozen dataclasses, and their OCPP 2.0.1 JSON form.

Pure: no I/O, no clock. Datetimes are timezone-aware UTC everywhere; parsing accepts any ISO 8601
offset (or none, read as UTC) and normalises to UTC; serialising writes millisecond precision
with a trailing `Z` (e.g. `2026-01-01T10:00:00.000Z`).

The evseId of a SetChargingProfileRequest is not part of the OCPP ChargingProfile object, so an
installed profile is an `InstalledProfile(evse_id, profile)`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


class ChargingProfilePurpose(enum.StrEnum):
    CHARGING_STATION_EXTERNAL_CONSTRAINTS = "ChargingStationExternalConstraints"
    CHARGING_STATION_MAX_PROFILE = "ChargingStationMaxProfile"
    TX_DEFAULT_PROFILE = "TxDefaultProfile"
    TX_PROFILE = "TxProfile"


class ChargingProfileKind(enum.StrEnum):
    ABSOLUTE = "Absolute"
    RECURRING = "Recurring"
    RELATIVE = "Relative"


class RecurrencyKind(enum.StrEnum):
    DAILY = "Daily"
    WEEKLY = "Weekly"


class ChargingRateUnit(enum.StrEnum):
    W = "W"
    A = "A"


@dataclass(frozen=True, slots=True)
class ChargingSchedulePeriod:
    start_period: int  # seconds from the start of the schedule
    limit: float  # in the schedule's unit; negative = discharge when that convention is enabled
    number_phases: int | None = None
    phase_to_use: int | None = None


@dataclass(frozen=True, slots=True)
class ChargingSchedule:
    id: int
    charging_rate_unit: ChargingRateUnit
    periods: tuple[ChargingSchedulePeriod, ...]
    start_schedule: datetime | None = None
    duration: int | None = None  # seconds; None = the last period lasts until the profile ends
    min_charging_rate: float | None = None
    # Kept verbatim (camelCase JSON): the composite schedule does not use tariffs.
    sales_tariff: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ChargingProfile:
    id: int
    stack_level: int
    purpose: ChargingProfilePurpose
    kind: ChargingProfileKind
    schedules: tuple[ChargingSchedule, ...]
    recurrency_kind: RecurrencyKind | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    transaction_id: str | None = None

    @property
    def schedule(self) -> ChargingSchedule:
        """The schedule the composite uses: the first one (2.0.1 allows up to 3 only as
        alternatives offered to an ISO 15118 vehicle)."""
        return self.schedules[0]


@dataclass(frozen=True, slots=True)
class InstalledProfile:
    """A profile as installed on a station: the evseId from SetChargingProfileRequest + profile."""

    evse_id: int
    profile: ChargingProfile


class ProfileFormatError(ValueError):
    """The JSON does not describe a charging profile (missing field, bad enum or date)."""


def parse_datetime(text: str) -> datetime:
    """Parse an OCPP date-time (ISO 8601) to an aware UTC datetime."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except (ValueError, AttributeError) as exc:
        raise ProfileFormatError(f"bad date-time {text!r}") from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def format_datetime(value: datetime) -> str:
    """UTC, millisecond precision, trailing Z."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _enum(cls: type[enum.StrEnum], value: Any, field: str) -> Any:
    try:
        return cls(value)
    except ValueError as exc:
        raise ProfileFormatError(f"bad {field} {value!r}") from exc


def _optional_datetime(payload: Mapping[str, Any], key: str) -> datetime | None:
    value = payload.get(key)
    return None if value is None else parse_datetime(value)


def _period_from_ocpp(payload: Mapping[str, Any]) -> ChargingSchedulePeriod:
    return ChargingSchedulePeriod(
        start_period=int(payload["startPeriod"]),
        limit=float(payload["limit"]),
        number_phases=payload.get("numberPhases"),
        phase_to_use=payload.get("phaseToUse"),
    )


def _schedule_from_ocpp(payload: Mapping[str, Any]) -> ChargingSchedule:
    periods = payload["chargingSchedulePeriod"]
    if not periods:
        raise ProfileFormatError("chargingSchedulePeriod is empty")
    return ChargingSchedule(
        id=int(payload["id"]),
        charging_rate_unit=_enum(ChargingRateUnit, payload["chargingRateUnit"], "chargingRateUnit"),
        periods=tuple(_period_from_ocpp(p) for p in periods),
        start_schedule=_optional_datetime(payload, "startSchedule"),
        duration=payload.get("duration"),
        min_charging_rate=payload.get("minChargingRate"),
        sales_tariff=payload.get("salesTariff"),
    )


def profile_from_ocpp(payload: Mapping[str, Any]) -> ChargingProfile:
    """A ChargingProfileType JSON object (camelCase) to a ChargingProfile.

    Raises ProfileFormatError on missing fields, unknown enum values or bad dates.
    """
    try:
        schedules = payload["chargingSchedule"]
        if isinstance(schedules, Mapping):  # tolerate 1.6-style single object
            schedules = [schedules]
        if not schedules:
            raise ProfileFormatError("chargingSchedule is empty")
        recurrency = payload.get("recurrencyKind")
        transaction_id = payload.get("transactionId")
        return ChargingProfile(
            id=int(payload["id"]),
            stack_level=int(payload["stackLevel"]),
            purpose=_enum(
                ChargingProfilePurpose, payload["chargingProfilePurpose"], "chargingProfilePurpose"
            ),
            kind=_enum(ChargingProfileKind, payload["chargingProfileKind"], "chargingProfileKind"),
            schedules=tuple(_schedule_from_ocpp(s) for s in schedules),
            recurrency_kind=None
            if recurrency is None
            else _enum(RecurrencyKind, recurrency, "recurrencyKind"),
            valid_from=_optional_datetime(payload, "validFrom"),
            valid_to=_optional_datetime(payload, "validTo"),
            transaction_id=None if transaction_id is None else str(transaction_id),
        )
    except KeyError as exc:
        raise ProfileFormatError(f"missing field {exc.args[0]}") from exc
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ProfileFormatError):
            raise
        raise ProfileFormatError(str(exc)) from exc


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _period_to_ocpp(period: ChargingSchedulePeriod) -> dict[str, Any]:
    out: dict[str, Any] = {"startPeriod": period.start_period, "limit": _number(period.limit)}
    if period.number_phases is not None:
        out["numberPhases"] = period.number_phases
    if period.phase_to_use is not None:
        out["phaseToUse"] = period.phase_to_use
    return out


def schedule_to_ocpp(schedule: ChargingSchedule) -> dict[str, Any]:
    out: dict[str, Any] = {"id": schedule.id}
    if schedule.start_schedule is not None:
        out["startSchedule"] = format_datetime(schedule.start_schedule)
    if schedule.duration is not None:
        out["duration"] = schedule.duration
    out["chargingRateUnit"] = schedule.charging_rate_unit.value
    out["chargingSchedulePeriod"] = [_period_to_ocpp(p) for p in schedule.periods]
    if schedule.min_charging_rate is not None:
        out["minChargingRate"] = _number(schedule.min_charging_rate)
    if schedule.sales_tariff is not None:
        out["salesTariff"] = dict(schedule.sales_tariff)
    return out


def profile_to_ocpp(profile: ChargingProfile) -> dict[str, Any]:
    """A ChargingProfile to ChargingProfileType JSON (camelCase, optional fields omitted)."""
    out: dict[str, Any] = {
        "id": profile.id,
        "stackLevel": profile.stack_level,
        "chargingProfilePurpose": profile.purpose.value,
        "chargingProfileKind": profile.kind.value,
    }
    if profile.recurrency_kind is not None:
        out["recurrencyKind"] = profile.recurrency_kind.value
    if profile.valid_from is not None:
        out["validFrom"] = format_datetime(profile.valid_from)
    if profile.valid_to is not None:
        out["validTo"] = format_datetime(profile.valid_to)
    if profile.transaction_id is not None:
        out["transactionId"] = profile.transaction_id
    out["chargingSchedule"] = [schedule_to_ocpp(s) for s in profile.schedules]
    return out
