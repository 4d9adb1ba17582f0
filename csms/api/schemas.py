"""REST request/response schemas (pydantic v2): `XCreate` in, `XRead` out, `XUpdate` to change.

Field names are snake_case in JSON; OCPP payloads passed through (charging profiles, command
bodies and answers) keep the OCPP camelCase of the OCA schemas.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    field_validator,
)

from csms.domain.models import Page
from csms.domain.passwords import PASSWORD_MAX, PASSWORD_MIN, password_length_ok

T = TypeVar("T")
ReadT = TypeVar("ReadT", bound=BaseModel)

BootPolicyName = Literal["Accepted", "Pending", "Rejected"]
IdTokenStatusName = Literal["Accepted", "Blocked", "Expired", "Invalid", "Unknown"]
StationIdField = Field(min_length=1, max_length=48, pattern=r"^[A-Za-z0-9._:\-]+$")


# OCPP 2.0.1 integers are 32-bit signed (Part 2, primitive datatypes): bigger ones would only
# fail at the station or in the database.
OCPP_INT_MAX = 2**31 - 1


class ReadModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class StrictModel(BaseModel):
    """Base of every request body: each field takes exactly its documented JSON type (no
    number for a date, no boolean or string for a number, no float for an integer, no
    NaN/Infinity), and unknown fields are refused. FastAPI validates the decoded JSON as
    Python objects, where pydantic's strict mode would refuse the ISO strings JSON carries
    for dates: those fields use `JsonDatetime`/`JsonAwareDatetime` below."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _no_subnormal_numbers(cls, value: Any) -> Any:
        # 5e-324 is a finite float, but dividing by it overflows (capacity_kwh: 5e-324 made
        # the planner's SoC arithmetic infinite). No quantity of this API is that small.
        stack = [value]
        while stack:
            item = stack.pop()
            if isinstance(item, float) and item != 0.0 and abs(item) < sys.float_info.min:
                raise ValueError(f"{item!r} is too small to compute with (subnormal); use 0")
            if isinstance(item, list | tuple):
                stack.extend(item)
        return value


def _date_time_text(value: Any) -> Any:
    # Lax datetime parsing would read 0 or 1e9 as seconds since 1970.
    if isinstance(value, str | datetime):
        return value
    raise ValueError("must be an ISO 8601 date-time string, e.g. 2024-08-05T18:00:00+10:00")


# A date-time in a strict body: an ISO 8601 string, parsed (not coerced from numbers).
JsonDatetime = Annotated[datetime, Strict(False), BeforeValidator(_date_time_text)]
JsonAwareDatetime = Annotated[AwareDatetime, Strict(False), BeforeValidator(_date_time_text)]
# A JSON array of exactly two numbers (strict mode alone wants a Python tuple).
JsonNumberPair = Annotated[tuple[float, float], Strict(False)]


class PageRead(BaseModel, Generic[T]):
    items: list[T]
    total: int = Field(description="number of items over all pages")
    offset: int
    limit: int


def page_read(read: type[ReadT], page: Page[Any]) -> PageRead[ReadT]:
    """A repository page as an API page, each item read into `read`."""
    return PageRead[read](  # type: ignore[valid-type]
        items=[read.model_validate(item) for item in page.items],
        total=page.total,
        offset=page.offset,
        limit=page.limit,
    )


def window_read(
    read: type[ReadT], items: Sequence[Any], offset: int, limit: int
) -> PageRead[ReadT]:
    """One page cut from a whole list (for lists the repository does not page itself)."""
    return page_read(read, Page(list(items[offset : offset + limit]), len(items), offset, limit))


class FieldErrorRead(BaseModel):
    model_config = ConfigDict(extra="forbid")

    field: str = Field(description="dotted path of the field, `(body)` for the whole body")
    message: str


class ProblemRead(BaseModel):
    """Body of every error answer (401, 403, 404, 409, 422, 5xx)."""

    model_config = ConfigDict(extra="forbid")

    detail: str = Field(description="what is wrong, for a person")
    code: str | None = Field(None, description="OCPP CALLERROR code (502 answers)")
    errors: list[FieldErrorRead] | None = Field(None, description="invalid fields (422)")
    error_details: Any = Field(None, description="the CALLERROR's errorDetails (502 answers)")
    required_scope: Literal["read", "operate", "admin"] | None = Field(
        None, description="the API token scope the operation needs (403 answers)"
    )


# Stations --------------------------------------------------------------------------------------


def _check_password(value: str | None) -> str | None:
    if value is not None and not password_length_ok(value):
        raise ValueError(
            f"must be {PASSWORD_MIN} to {PASSWORD_MAX} characters (OCPP BasicAuthPassword)"
        )
    return value


OcppVersionName = Literal["ocpp2.1", "ocpp2.0.1"]
_OCPP_VERSIONS_HELP = (
    "OCPP versions this station may use, in preference order (websocket subprotocol names); "
    "absent: the global setting CSMS_OCPP_VERSIONS. Applies from its next connection."
)


class StationCreate(StrictModel):
    id: str = StationIdField
    password: str | None = Field(None, description="Basic-auth password, 16-40 characters")
    security_profile: int = Field(1, ge=1, le=3)
    boot_policy: BootPolicyName = "Accepted"
    ocpp_versions: list[OcppVersionName] | None = Field(
        None, min_length=1, max_length=2, description=_OCPP_VERSIONS_HELP
    )

    _password = field_validator("password")(_check_password)


class StationUpdate(StrictModel):
    password: str | None = None
    security_profile: int | None = Field(None, ge=1, le=3)
    boot_policy: BootPolicyName | None = None
    ocpp_versions: list[OcppVersionName] | None = Field(
        None, max_length=2, description=_OCPP_VERSIONS_HELP + " `[]`: back to the global setting."
    )

    _password = field_validator("password")(_check_password)


class StationRead(ReadModel):
    id: str
    security_profile: int
    boot_policy: str
    registration_status: str
    has_password: bool
    vendor_name: str | None = None
    model: str | None = None
    serial_number: str | None = None
    firmware_version: str | None = None
    last_boot_at: datetime | None = None
    last_heartbeat_at: datetime | None = None
    created_at: datetime | None = None
    ocpp_version: str | None = Field(
        None, description="OCPP version negotiated on its current or last connection"
    )
    ocpp_versions: list[str] | None = Field(
        None, description="its own accepted versions in preference order (null: global)"
    )
    connected: bool = False
    node: str | None = None

    @field_validator("ocpp_versions", mode="before")
    @classmethod
    def _version_names(cls, value: Any) -> Any:
        return [str(getattr(v, "value", v)) for v in value] if value is not None else None

    @field_validator("ocpp_version", mode="before")
    @classmethod
    def _version_name(cls, value: Any) -> Any:
        return getattr(value, "value", value)


class PasswordRotationCreate(StrictModel):
    password: str | None = Field(
        None, description="new password (16-40 characters); generated when absent"
    )

    _password = field_validator("password")(_check_password)


class PasswordRotationRead(BaseModel):
    station_id: str
    status: str = Field(description="the station's SetVariables attributeStatus")
    applied: bool = Field(description="true when the CSMS now keeps the new password")
    password: str | None = Field(None, description="the new password, only when applied")


class SecurityProfileUpgradeCreate(StrictModel):
    security_profile: int = Field(ge=2, le=3)
    configuration_slot: int = Field(
        1, ge=0, le=OCPP_INT_MAX, description="SetNetworkProfile configurationSlot"
    )
    connection_data: dict[str, Any] | None = Field(
        None,
        description="NetworkConnectionProfile (OCPP camelCase) to send with SetNetworkProfile "
        "first (A05); its securityProfile is set to the new profile. Without it the CSMS only "
        "changes what it accepts (the station was reconfigured another way).",
    )


class SecurityProfileUpgradeRead(BaseModel):
    station_id: str
    security_profile: int
    status: str
    applied: bool


# EVSEs, transactions --------------------------------------------------------------------------


class ConnectorRead(ReadModel):
    connector_id: int
    status: str
    updated_at: datetime | None = None


class EvseRead(ReadModel):
    evse_id: int
    connectors: list[ConnectorRead]


class TransactionRead(ReadModel):
    station_id: str
    transaction_id: str
    state: str
    evse_id: int | None = None
    connector_id: int | None = None
    id_token: str | None = None
    id_token_type: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    stopped_reason: str | None = None
    last_seq_no: int | None = None
    charging_state: str | None = None
    total_cost: float | None = None
    offline_seen: bool = False
    started_unseen: bool = False
    energy_wh: float | None = None
    updated_at: datetime | None = None


class MeterValueRead(ReadModel):
    timestamp: datetime
    value: float
    measurand: str
    evse_id: int | None = None
    transaction_id: str | None = None
    phase: str | None = None
    location: str | None = None
    context: str | None = None
    unit: str | None = None


class TransactionEventRead(ReadModel):
    seq_no: int
    event_type: str
    trigger_reason: str
    timestamp: datetime
    offline: bool = False
    payload: dict[str, Any]


class TransactionDetailRead(BaseModel):
    transaction: TransactionRead
    events: list[TransactionEventRead]
    meter_values: list[MeterValueRead]


# Id tokens, API tokens ------------------------------------------------------------------------


class IdTokenCreate(StrictModel):
    id_token: str = Field(min_length=1, max_length=36)
    type: str = Field(
        "ISO14443",
        description="IdTokenEnumType: Central, eMAID, ISO14443, ISO15693, KeyCode, Local, "
        "MacAddress, NoAuthorization",
    )
    status: IdTokenStatusName = "Accepted"
    expires_at: JsonDatetime | None = Field(None, description="ISO 8601 with a timezone")
    group_id_token: str | None = Field(None, max_length=36)


class IdTokenUpdate(StrictModel):
    status: IdTokenStatusName


class IdTokenRead(ReadModel):
    id_token: str
    type: str
    status: str
    expires_at: datetime | None = None
    group_id_token: str | None = None
    created_at: datetime | None = None


ScopeName = Literal["read", "operate", "admin"]


class ApiTokenCreate(StrictModel):
    name: str = Field(min_length=1, max_length=100)
    scope: ScopeName = Field(
        "read",
        description="read (GET), operate (+ commands, V2G plans/dispatch, prices) or admin "
        "(+ stations, tokens, tariffs, vehicles, credentials); least privilege by default",
    )


class ApiTokenRead(ReadModel):
    id: int
    name: str
    scope: ScopeName
    created_at: datetime
    revoked_at: datetime | None = None


class ApiTokenCreatedRead(BaseModel):
    token: ApiTokenRead
    plaintext: str = Field(description="shown once; only its hash is stored")


# Device model, profiles, logs, events, tariffs -------------------------------------------------


class DeviceVariableRead(ReadModel):
    component: str
    variable: str
    attribute_type: str
    value: str | None = None
    component_instance: str | None = None
    evse_id: int | None = None
    connector_id: int | None = None
    variable_instance: str | None = None
    mutability: str | None = None
    characteristics: dict[str, Any] | None = None
    updated_at: datetime | None = None


class ChargingProfileCreate(StrictModel):
    """A SetChargingProfile for one EVSE (0 = the whole station); profile in OCPP camelCase."""

    evse_id: int = Field(ge=0, le=OCPP_INT_MAX)
    charging_profile: dict[str, Any]


class ChargingProfileRead(ReadModel):
    evse_id: int
    profile_id: int
    purpose: str
    stack_level: int
    kind: str
    profile: dict[str, Any]
    transaction_id: str | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    source: str
    updated_at: datetime | None = None


class ChargingProfileResultRead(BaseModel):
    status: str
    status_info: dict[str, Any] | None = None
    stored: bool


class MessageLogRead(ReadModel):
    id: int | None = None
    direction: str
    kind: str
    message_id: str
    action: str | None = None
    payload: Any
    created_at: datetime


class EventRead(ReadModel):
    id: int | None = None
    kind: str
    payload: dict[str, Any]
    received_at: datetime
    timestamp: datetime | None = None


class TariffUpdate(StrictModel):
    currency: str = Field(min_length=3, max_length=3, description="ISO 4217, e.g. AUD")
    # Bounded so that running costs stay finite numbers (1e6 per kWh is no real tariff).
    price_per_kwh: float = Field(0.0, ge=0, le=1_000_000)
    price_per_hour: float = Field(0.0, ge=0, le=1_000_000)


class TariffRead(ReadModel):
    station_id: str
    currency: str
    price_per_kwh: float
    price_per_hour: float


# Typed commands -------------------------------------------------------------------------------


class ResetCreate(StrictModel):
    type: Literal["Immediate", "OnIdle"] = "OnIdle"
    evse_id: int | None = Field(None, ge=0, le=OCPP_INT_MAX)


class RequestStartCreate(StrictModel):
    id_token: str = Field(min_length=1, max_length=36)
    id_token_type: str = "Central"
    evse_id: int | None = Field(None, ge=1, le=OCPP_INT_MAX)
    remote_start_id: int = Field(1, ge=0, le=OCPP_INT_MAX)
    charging_profile: dict[str, Any] | None = Field(
        None, description="optional TxProfile in OCPP camelCase"
    )


class RequestStopCreate(StrictModel):
    transaction_id: str = Field(min_length=1, max_length=36)


class VariableRef(StrictModel):
    component: str
    variable: str
    component_instance: str | None = None
    variable_instance: str | None = None
    evse_id: int | None = Field(None, ge=0, le=OCPP_INT_MAX)
    connector_id: int | None = Field(None, ge=0, le=OCPP_INT_MAX)
    attribute_type: Literal["Actual", "Target", "MinSet", "MaxSet"] = "Actual"


class VariableGetCreate(StrictModel):
    variables: list[VariableRef] = Field(min_length=1)


class VariableSetItem(VariableRef):
    value: str = Field(max_length=1000)


class VariableSetCreate(StrictModel):
    variables: list[VariableSetItem] = Field(min_length=1)
