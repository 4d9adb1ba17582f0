"""Charging profiles as frozen dataclasses, and their OCPP 2.0.1 / 2.1 JSON form.

Pure: no I/O, no clock. Datetimes are timezone-aware UTC everywhere; parsing accepts any ISO 8601
offset (or none, read as UTC) and normalises to UTC; serialising writes millisecond precision
with a trailing `Z` (e.g. `2026-01-01T10:00:00.000Z`).

The evseId of a SetChargingProfileRequest is not part of the OCPP ChargingProfile object, so an
installed profile is an `InstalledProfile(evse_id, profile)`.

OCPP 2.1 fields (operationMode, setpoint, dischargeLimit, v2x curves, dynamic-profile fields, ...)
are optional attributes that default to "absent": a 2.0.1 payload parses to the same values as
before and serialises byte for byte as before; a 2.1 payload survives parse -> serialise (the
fields the composite does not interpret, e.g. price schedules, are kept verbatim). `customData`
(both versions) of a profile and of a period is kept verbatim too, so vendor data such as the
operating envelope's discharge bound (`envelope.py`) survives the agent's store and a restart.
Which fields a given OCPP version may carry is a validation question
(`validation.validate_profile`), not a parsing one: the edge has already checked the payload
against its version's JSON schema.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any


class ChargingProfilePurpose(enum.StrEnum):
    CHARGING_STATION_EXTERNAL_CONSTRAINTS = "ChargingStationExternalConstraints"
    CHARGING_STATION_MAX_PROFILE = "ChargingStationMaxProfile"
    TX_DEFAULT_PROFILE = "TxDefaultProfile"
    TX_PROFILE = "TxProfile"
    PRIORITY_CHARGING = "PriorityCharging"  # 2.1
    LOCAL_GENERATION = "LocalGeneration"  # 2.1


class ChargingProfileKind(enum.StrEnum):
    ABSOLUTE = "Absolute"
    RECURRING = "Recurring"
    RELATIVE = "Relative"
    DYNAMIC = (
        "Dynamic"  # 2.1: one period, moved by UpdateDynamicSchedule / PullDynamicScheduleUpdate
    )


class OperationMode(enum.StrEnum):
    """OCPP 2.1 OperationModeEnumType (Q): how a period drives the EVSE. Absent = ChargingOnly."""

    IDLE = "Idle"
    CHARGING_ONLY = "ChargingOnly"
    CENTRAL_SETPOINT = "CentralSetpoint"
    EXTERNAL_SETPOINT = "ExternalSetpoint"
    EXTERNAL_LIMITS = "ExternalLimits"
    CENTRAL_FREQUENCY = "CentralFrequency"
    LOCAL_FREQUENCY = "LocalFrequency"
    LOCAL_LOAD_BALANCING = "LocalLoadBalancing"


PURPOSES_2_1 = frozenset(
    {ChargingProfilePurpose.PRIORITY_CHARGING, ChargingProfilePurpose.LOCAL_GENERATION}
)


class RecurrencyKind(enum.StrEnum):
    DAILY = "Daily"
    WEEKLY = "Weekly"


class ChargingRateUnit(enum.StrEnum):
    W = "W"
    A = "A"


@dataclass(frozen=True, slots=True)
class ChargingSchedulePeriod:
    """One period. `limit` is required in 2.0.1 and optional in 2.1 (None = absent: this period
    does not limit, e.g. a setpoint period). Every 2.1 field defaults to absent (None)."""

    start_period: int  # seconds from the start of the schedule
    limit: float | None  # schedule unit; negative = discharge when that convention is enabled
    number_phases: int | None = None
    phase_to_use: int | None = None
    # OCPP 2.1 (Q, V2X). Values in the schedule's unit; dischargeLimit <= 0.
    limit_l2: float | None = None
    limit_l3: float | None = None
    discharge_limit: float | None = None
    discharge_limit_l2: float | None = None
    discharge_limit_l3: float | None = None
    setpoint: float | None = None  # signed target: > 0 charge, < 0 discharge
    setpoint_l2: float | None = None
    setpoint_l3: float | None = None
    setpoint_reactive: float | None = None
    setpoint_reactive_l2: float | None = None
    setpoint_reactive_l3: float | None = None
    preconditioning_request: bool | None = None
    evse_sleep: bool | None = None
    v2x_baseline: float | None = None
    operation_mode: OperationMode | None = None  # None = absent = ChargingOnly
    v2x_freq_watt_curve: tuple[tuple[float, float], ...] | None = None  # (Hz, W|A)
    v2x_signal_watt_curve: tuple[tuple[int, float], ...] | None = None  # (signal, W|A)
    # customData (2.0.1 and 2.1), verbatim camelCase JSON; not a 2.1-only field.
    custom_data: Mapping[str, Any] | None = None

    @property
    def mode(self) -> OperationMode:
        """The operation mode in force (absent = ChargingOnly)."""
        return self.operation_mode or OperationMode.CHARGING_ONLY

    @property
    def uses_2_1(self) -> bool:
        """Whether any 2.1-only field is present (or limit is absent)."""
        return self.limit is None or any(
            getattr(self, name) is not None for name, _key in _PERIOD_2_1_FIELDS
        )


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
    # OCPP 2.1 schedule fields, kept verbatim: price schedules (not applied) and limitAtSoC
    # (the agent applies it: chargepoint_firmware/blocks/smart_charging/soc_limit.py).
    limit_at_soc: Mapping[str, Any] | None = None
    power_tolerance: float | None = None
    signature_id: int | None = None
    digest_value: str | None = None
    use_local_time: bool | None = None
    randomized_delay: int | None = None
    absolute_price_schedule: Mapping[str, Any] | None = None
    price_level_schedule: Mapping[str, Any] | None = None


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
    # OCPP 2.1 profile fields.
    max_offline_duration: int | None = None  # s offline after which the profile stops/starts
    invalid_after_offline_duration: bool | None = None
    dyn_update_interval: int | None = None  # s between PullDynamicScheduleUpdate (0/None = none)
    dyn_update_time: datetime | None = None  # when the dynamic period was last updated
    price_schedule_signature: str | None = None
    # customData (2.0.1 and 2.1), verbatim camelCase JSON.
    custom_data: Mapping[str, Any] | None = None

    @property
    def schedule(self) -> ChargingSchedule:
        """The schedule the composite uses: the first one (up to 3 are allowed only as
        alternatives offered to an ISO 15118 vehicle)."""
        return self.schedules[0]

    @property
    def uses_2_1(self) -> bool:
        """Whether the profile carries anything OCPP 2.0.1 cannot express."""
        return (
            self.purpose in PURPOSES_2_1
            or self.kind is ChargingProfileKind.DYNAMIC
            or any(getattr(self, name) is not None for name, _key in _PROFILE_2_1_FIELDS)
            or any(
                any(getattr(s, name) is not None for name, _key in _SCHEDULE_2_1_FIELDS)
                or any(p.uses_2_1 for p in s.periods)
                for s in self.schedules
            )
        )


@dataclass(frozen=True, slots=True)
class InstalledProfile:
    """A profile as installed on a station: the evseId from SetChargingProfileRequest + profile."""

    evse_id: int
    profile: ChargingProfile


# (attribute, JSON key) of the optional plain-valued 2.1 fields, in the 2.1 schema's order.
_PERIOD_2_1_NUMBERS = (
    ("limit_l2", "limit_L2"),
    ("limit_l3", "limit_L3"),
    ("discharge_limit", "dischargeLimit"),
    ("discharge_limit_l2", "dischargeLimit_L2"),
    ("discharge_limit_l3", "dischargeLimit_L3"),
    ("setpoint", "setpoint"),
    ("setpoint_l2", "setpoint_L2"),
    ("setpoint_l3", "setpoint_L3"),
    ("setpoint_reactive", "setpointReactive"),
    ("setpoint_reactive_l2", "setpointReactive_L2"),
    ("setpoint_reactive_l3", "setpointReactive_L3"),
)
_PERIOD_2_1_FLAGS = (
    ("preconditioning_request", "preconditioningRequest"),
    ("evse_sleep", "evseSleep"),
)
_PERIOD_2_1_FIELDS = (
    *_PERIOD_2_1_NUMBERS,
    *_PERIOD_2_1_FLAGS,
    ("v2x_baseline", "v2xBaseline"),
    ("operation_mode", "operationMode"),
    ("v2x_freq_watt_curve", "v2xFreqWattCurve"),
    ("v2x_signal_watt_curve", "v2xSignalWattCurve"),
)
_SCHEDULE_2_1_FIELDS = (
    ("limit_at_soc", "limitAtSoC"),
    ("power_tolerance", "powerTolerance"),
    ("signature_id", "signatureId"),
    ("digest_value", "digestValue"),
    ("use_local_time", "useLocalTime"),
    ("randomized_delay", "randomizedDelay"),
    ("absolute_price_schedule", "absolutePriceSchedule"),
    ("price_level_schedule", "priceLevelSchedule"),
)
_PROFILE_2_1_FIELDS = (
    ("max_offline_duration", "maxOfflineDuration"),
    ("invalid_after_offline_duration", "invalidAfterOfflineDuration"),
    ("dyn_update_interval", "dynUpdateInterval"),
    ("dyn_update_time", "dynUpdateTime"),
    ("price_schedule_signature", "priceScheduleSignature"),
)
# ChargingScheduleUpdateType (UpdateDynamicSchedule, PullDynamicScheduleUpdate): the values a
# dynamic update may move.
SCHEDULE_UPDATE_FIELDS = (("limit", "limit"), *_PERIOD_2_1_NUMBERS)


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


def _optional_float(payload: Mapping[str, Any], key: str) -> float | None:
    value = payload.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProfileFormatError(f"{key} must be a number")
    return float(value)


def _optional_bool(payload: Mapping[str, Any], key: str) -> bool | None:
    value = payload.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise ProfileFormatError(f"{key} must be a boolean")


def _custom_data(payload: Mapping[str, Any]) -> Mapping[str, Any] | None:
    value = payload.get("customData")
    if value is None:
        return None
    if not isinstance(value, Mapping) or not isinstance(value.get("vendorId"), str):
        raise ProfileFormatError("customData must be an object with a vendorId")
    return value


def _curve(
    payload: Mapping[str, Any], key: str, x_key: str, x_type: type
) -> tuple[tuple[Any, float], ...] | None:
    points = payload.get(key)
    if points is None:
        return None
    if not points:
        raise ProfileFormatError(f"{key} is empty")
    return tuple((x_type(p[x_key]), float(p["power"])) for p in points)


def _period_from_ocpp(payload: Mapping[str, Any]) -> ChargingSchedulePeriod:
    mode = payload.get("operationMode")
    extra: dict[str, Any] = {
        name: _optional_float(payload, key) for name, key in _PERIOD_2_1_NUMBERS
    }
    extra.update((name, _optional_bool(payload, key)) for name, key in _PERIOD_2_1_FLAGS)
    return ChargingSchedulePeriod(
        start_period=int(payload["startPeriod"]),
        limit=_optional_float(payload, "limit"),
        number_phases=payload.get("numberPhases"),
        phase_to_use=payload.get("phaseToUse"),
        v2x_baseline=_optional_float(payload, "v2xBaseline"),
        operation_mode=None if mode is None else _enum(OperationMode, mode, "operationMode"),
        v2x_freq_watt_curve=_curve(payload, "v2xFreqWattCurve", "frequency", float),
        v2x_signal_watt_curve=_curve(payload, "v2xSignalWattCurve", "signal", int),
        custom_data=_custom_data(payload),
        **extra,
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
        limit_at_soc=payload.get("limitAtSoC"),
        power_tolerance=_optional_float(payload, "powerTolerance"),
        signature_id=payload.get("signatureId"),
        digest_value=payload.get("digestValue"),
        use_local_time=_optional_bool(payload, "useLocalTime"),
        randomized_delay=payload.get("randomizedDelay"),
        absolute_price_schedule=payload.get("absolutePriceSchedule"),
        price_level_schedule=payload.get("priceLevelSchedule"),
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
            max_offline_duration=payload.get("maxOfflineDuration"),
            invalid_after_offline_duration=_optional_bool(payload, "invalidAfterOfflineDuration"),
            dyn_update_interval=payload.get("dynUpdateInterval"),
            dyn_update_time=_optional_datetime(payload, "dynUpdateTime"),
            price_schedule_signature=payload.get("priceScheduleSignature"),
            custom_data=_custom_data(payload),
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
    out: dict[str, Any] = {"startPeriod": period.start_period}
    if period.limit is not None:
        out["limit"] = _number(period.limit)
    for name, key in _PERIOD_2_1_NUMBERS[:2]:  # limit_L2, limit_L3 follow limit
        value = getattr(period, name)
        if value is not None:
            out[key] = _number(value)
    if period.number_phases is not None:
        out["numberPhases"] = period.number_phases
    if period.phase_to_use is not None:
        out["phaseToUse"] = period.phase_to_use
    for name, key in _PERIOD_2_1_NUMBERS[2:]:
        value = getattr(period, name)
        if value is not None:
            out[key] = _number(value)
    for name, key in _PERIOD_2_1_FLAGS:
        value = getattr(period, name)
        if value is not None:
            out[key] = value
    if period.v2x_baseline is not None:
        out["v2xBaseline"] = _number(period.v2x_baseline)
    if period.operation_mode is not None:
        out["operationMode"] = period.operation_mode.value
    if period.v2x_freq_watt_curve is not None:
        out["v2xFreqWattCurve"] = [
            {"frequency": _number(hz), "power": _number(w)} for hz, w in period.v2x_freq_watt_curve
        ]
    if period.v2x_signal_watt_curve is not None:
        out["v2xSignalWattCurve"] = [
            {"signal": signal, "power": _number(w)} for signal, w in period.v2x_signal_watt_curve
        ]
    if period.custom_data is not None:
        out["customData"] = dict(period.custom_data)
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
    for name, key in _SCHEDULE_2_1_FIELDS:
        value = getattr(schedule, name)
        if value is None:
            continue
        if isinstance(value, Mapping):
            value = dict(value)
        elif isinstance(value, float):
            value = _number(value)
        out[key] = value
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
    for name, key in _PROFILE_2_1_FIELDS:
        value = getattr(profile, name)
        if value is not None:
            out[key] = format_datetime(value) if isinstance(value, datetime) else value
    if profile.custom_data is not None:
        out["customData"] = dict(profile.custom_data)
    return out


def schedule_update_from_ocpp(payload: Mapping[str, Any]) -> dict[str, float]:
    """A ChargingScheduleUpdateType (2.1) to {attribute: value} of the fields it sets."""
    out: dict[str, float] = {}
    for name, key in SCHEDULE_UPDATE_FIELDS:
        value = _optional_float(payload, key)
        if value is not None:
            out[name] = value
    return out


def apply_schedule_update(
    profile: ChargingProfile, update: Mapping[str, float], received_at: datetime
) -> ChargingProfile:
    """A Dynamic profile with its (single) period's values replaced by a schedule update and
    dynUpdateTime set to `received_at`. The fields the update names are replaced; the others
    (operation mode, curves, phases) stay. Raises ProfileFormatError for a profile that is
    not Dynamic (UpdateDynamicSchedule applies to Dynamic profiles only)."""
    if profile.kind is not ChargingProfileKind.DYNAMIC:
        raise ProfileFormatError(f"profile {profile.id} is not a Dynamic profile")
    unknown = set(update) - {name for name, _key in SCHEDULE_UPDATE_FIELDS}
    if unknown:
        raise ProfileFormatError(f"not schedule-update fields: {sorted(unknown)}")
    schedules = tuple(
        replace(s, periods=tuple(replace(p, **dict[str, Any](update)) for p in s.periods))
        for s in profile.schedules
    )
    return replace(profile, schedules=schedules, dyn_update_time=received_at)
