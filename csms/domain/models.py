"""CSMS domain objects: plain dataclasses that repositories return and services pass around.

Pure: no OCPP framing, no SQLAlchemy, no asyncio, no clock. Times are timezone-aware UTC.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from v2g_shared.ocpp_versions import OcppVersion

T = TypeVar("T")


class SecurityProfile(enum.IntEnum):
    """OCPP 2.0.1 security profiles (Part 2, A00)."""

    BASIC_AUTH = 1  # HTTP Basic over ws://
    TLS_BASIC_AUTH = 2  # HTTP Basic over wss://
    TLS_CLIENT_CERT = 3  # wss:// with a client certificate (mTLS)


class BootPolicy(enum.StrEnum):
    """What the CSMS answers to this station's BootNotification."""

    ACCEPTED = "Accepted"
    PENDING = "Pending"
    REJECTED = "Rejected"


class RegistrationStatus(enum.StrEnum):
    """The status last sent in a BootNotificationResponse (UNKNOWN: never booted)."""

    UNKNOWN = "Unknown"
    ACCEPTED = "Accepted"
    PENDING = "Pending"
    REJECTED = "Rejected"


class IdTokenStatus(enum.StrEnum):
    """AuthorizationStatusEnumType values the CSMS keeps per token."""

    ACCEPTED = "Accepted"
    BLOCKED = "Blocked"
    EXPIRED = "Expired"
    INVALID = "Invalid"
    UNKNOWN = "Unknown"


class TransactionState(enum.StrEnum):
    ACTIVE = "Active"
    ENDED = "Ended"


class Direction(enum.StrEnum):
    """Message log direction, seen from the CSMS."""

    IN = "in"  # station -> CSMS
    OUT = "out"  # CSMS -> station


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    total: int
    offset: int
    limit: int


@dataclass(frozen=True, slots=True)
class Station:
    id: str
    security_profile: SecurityProfile
    boot_policy: BootPolicy
    registration_status: RegistrationStatus
    has_password: bool
    vendor_name: str | None = None
    model: str | None = None
    serial_number: str | None = None
    firmware_version: str | None = None
    last_boot_at: datetime | None = None
    last_heartbeat_at: datetime | None = None
    created_at: datetime | None = None
    # The OCPP version negotiated on the station's last connection (None: never connected).
    ocpp_version: OcppVersion | None = None
    # The versions this station may use, in preference order (None: the global setting).
    ocpp_versions: tuple[OcppVersion, ...] | None = None


@dataclass(frozen=True, slots=True)
class StoredPassword:
    """A station's Basic-auth password as stored: the argon2id hash (canonical) and the fast
    keyed check made with it (None until the first argon2 verification on older rows)."""

    hash: str
    check: str | None = None


@dataclass(frozen=True, slots=True)
class BootInfo:
    """What a station says about itself in BootNotification.chargingStation."""

    vendor_name: str
    model: str
    serial_number: str | None = None
    firmware_version: str | None = None


@dataclass(frozen=True, slots=True)
class Connector:
    station_id: str
    evse_id: int
    connector_id: int
    status: str
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Evse:
    station_id: str
    evse_id: int
    connectors: tuple[Connector, ...] = ()


@dataclass(frozen=True, slots=True)
class IdToken:
    id_token: str
    type: str
    status: IdTokenStatus
    expires_at: datetime | None = None
    group_id_token: str | None = None
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AuthorizationResult:
    """Outcome of looking up an idToken: becomes OCPP idTokenInfo at the edge."""

    status: IdTokenStatus
    expires_at: datetime | None = None
    group_id_token: str | None = None


class ApiScope(enum.StrEnum):
    """What an API token may do; each scope includes the ones before it."""

    READ = "read"  # GET/HEAD: look, change nothing
    OPERATE = "operate"  # also: commands to stations, V2G plans/dispatch, prices
    ADMIN = "admin"  # also: stations, id/API tokens, tariffs, vehicles, credentials

    @property
    def rank(self) -> int:
        return _SCOPE_RANK[self]

    def allows(self, needed: ApiScope) -> bool:
        """Whether a token with this scope may use a route needing `needed`."""
        return self.rank >= needed.rank


_SCOPE_RANK = {ApiScope.READ: 0, ApiScope.OPERATE: 1, ApiScope.ADMIN: 2}


@dataclass(frozen=True, slots=True)
class ApiToken:
    id: int
    name: str
    created_at: datetime
    revoked_at: datetime | None = None
    # Tokens from before scopes existed became admin in migration 0006 (they could do all).
    scope: ApiScope = ApiScope.ADMIN

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


@dataclass(frozen=True, slots=True)
class ApiTokenCreated:
    """A new API token; `plaintext` is shown once and never stored."""

    token: ApiToken
    plaintext: str


@dataclass(frozen=True, slots=True)
class Tariff:
    station_id: str
    currency: str
    price_per_kwh: float = 0.0
    price_per_hour: float = 0.0


@dataclass(frozen=True, slots=True)
class Transaction:
    station_id: str
    transaction_id: str
    state: TransactionState
    evse_id: int | None = None
    connector_id: int | None = None
    id_token: str | None = None
    id_token_type: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    stopped_reason: str | None = None
    # The seqNo span and how many distinct seqNos are stored (E07 gaps = span - count): three
    # numbers instead of the seen list, so storing an event costs the same at event 8,000
    # as at event 1 (issue 11 finding 6). The events themselves are in transaction_events.
    first_seq_no: int | None = None
    last_seq_no: int | None = None
    seq_count: int = 0
    charging_state: str | None = None
    total_cost: float | None = None
    offline_seen: bool = False
    # Seen an event for it without having seen its Started event.
    started_unseen: bool = False
    energy_start_wh: float | None = None
    energy_last_wh: float | None = None
    updated_at: datetime | None = None

    @property
    def energy_wh(self) -> float | None:
        if self.energy_start_wh is None or self.energy_last_wh is None:
            return None
        return self.energy_last_wh - self.energy_start_wh


@dataclass(frozen=True, slots=True)
class MeterSample:
    """One sampledValue of a MeterValue, flattened to a row."""

    station_id: str
    timestamp: datetime
    value: float
    measurand: str = "Energy.Active.Import.Register"
    evse_id: int | None = None
    transaction_id: str | None = None
    phase: str | None = None
    location: str | None = None
    context: str | None = None
    unit: str | None = None
    id: int | None = None


@dataclass(frozen=True, slots=True)
class TransactionEvent:
    station_id: str
    transaction_id: str
    seq_no: int
    event_type: str
    trigger_reason: str
    timestamp: datetime
    offline: bool = False
    payload: dict[str, Any] = field(default_factory=dict)
    id: int | None = None


@dataclass(frozen=True, slots=True)
class TransactionDetail:
    transaction: Transaction
    events: list[TransactionEvent]
    meter_values: list[MeterSample]


@dataclass(frozen=True, slots=True)
class MessageLogEntry:
    station_id: str
    direction: Direction
    kind: str  # CALL / CALLRESULT / CALLERROR
    message_id: str
    action: str | None
    payload: Any
    created_at: datetime
    id: int | None = None


@dataclass(frozen=True, slots=True)
class DeviceVariable:
    """One attribute of one variable of the station's device model (from NotifyReport)."""

    station_id: str
    component: str
    variable: str
    attribute_type: str = "Actual"
    value: str | None = None
    component_instance: str | None = None
    evse_id: int | None = None
    connector_id: int | None = None
    variable_instance: str | None = None
    mutability: str | None = None
    characteristics: dict[str, Any] | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ChargingProfileRecord:
    """A charging profile a station accepted (or reported), per station/EVSE."""

    station_id: str
    evse_id: int
    profile_id: int
    purpose: str
    stack_level: int
    kind: str
    profile: dict[str, Any]
    transaction_id: str | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    source: str = "SetChargingProfile"
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class EventRecord:
    """A notification a station sent (NotifyEvent, SecurityEventNotification, ...)."""

    station_id: str
    kind: str  # the OCPP action name
    payload: dict[str, Any]
    received_at: datetime
    timestamp: datetime | None = None
    id: int | None = None


@dataclass(frozen=True, slots=True)
class CertificateRecord:
    station_id: str
    certificate_type: str
    csr: str
    status: str  # Pending / Signed / Rejected / Sent
    certificate_chain: str | None = None
    created_at: datetime | None = None
    id: int | None = None


# ---- OCPP 2.1 -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PeriodicStream:
    """A periodic event stream a station opened (OCPP 2.1 OpenPeriodicEventStream)."""

    station_id: str
    stream_id: int
    variable_monitoring_id: int
    interval_s: int | None
    values_per_message: int | None
    constant_data: dict[str, Any]  # constantStreamData as the station sent it
    opened_at: datetime
    closed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class PeriodicStreamValue:
    """One data element of NotifyPeriodicEventStream, at basetime + t."""

    station_id: str
    stream_id: int
    timestamp: datetime
    value: str
    received_at: datetime
    id: int | None = None


@dataclass(frozen=True, slots=True)
class DynamicScheduleUpdate:
    """What the CSMS answers to PullDynamicScheduleUpdate for one Dynamic profile."""

    station_id: str
    charging_profile_id: int
    schedule_update: dict[str, Any]  # ChargingScheduleUpdateType
    updated_at: datetime
