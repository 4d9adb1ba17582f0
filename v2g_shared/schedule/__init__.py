"""Smart charging, pure: charging profiles, K01 validation, the profile store and the composite
schedule at time t. Imports nothing from ocpp, websockets, sqlalchemy, can or asyncio."""

from v2g_shared.schedule.composite import (
    CompositePeriod,
    Transaction,
    composite_schedule,
    composite_to_ocpp,
    limit_at,
)
from v2g_shared.schedule.model import (
    ChargingProfile,
    ChargingProfileKind,
    ChargingProfilePurpose,
    ChargingRateUnit,
    ChargingSchedule,
    ChargingSchedulePeriod,
    InstalledProfile,
    ProfileFormatError,
    RecurrencyKind,
    format_datetime,
    parse_datetime,
    profile_from_ocpp,
    profile_to_ocpp,
)
from v2g_shared.schedule.validation import (
    ProfileStore,
    ValidationContext,
    Violation,
    validate_profile,
)

__all__ = [
    "ChargingProfile",
    "ChargingProfileKind",
    "ChargingProfilePurpose",
    "ChargingRateUnit",
    "ChargingSchedule",
    "ChargingSchedulePeriod",
    "CompositePeriod",
    "InstalledProfile",
    "ProfileFormatError",
    "ProfileStore",
    "RecurrencyKind",
    "Transaction",
    "ValidationContext",
    "Violation",
    "composite_schedule",
    "composite_to_ocpp",
    "format_datetime",
    "limit_at",
    "parse_datetime",
    "profile_from_ocpp",
    "profile_to_ocpp",
    "validate_profile",
]
