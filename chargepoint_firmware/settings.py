"""One typed settings object for the charge-point agent, read once at start and passed down.

Sources, highest priority first: keyword arguments, environment (`CHARGEPOINT_<FIELD>`, nested
fields with a double underscore: `CHARGEPOINT_SECURITY__BASIC_AUTH_PASSWORD`), then the TOML file
given to `load_settings` (documented sample: tests/data/agent/station.toml). Invalid values stop
the start with `ConfigError` naming the field.
"""

from __future__ import annotations

import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from v2g_shared.ocpp_versions import OcppVersion, parse_ocpp_version

# The TOML content of the `load_settings` call in progress (lowest-priority source).
_toml_data: ContextVar[dict[str, Any] | None] = ContextVar("_toml_data", default=None)


class ConfigError(ValueError):
    """Configuration that cannot run; the message names the offending field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EvseConfig(_Strict):
    """Hardware limits of one DC EVSE (one CHAdeMO connector)."""

    id: int = Field(ge=1)
    max_charge_current_a: float = Field(default=125.0, gt=0)
    max_discharge_current_a: float = Field(default=125.0, ge=0)
    max_charge_power_w: float = Field(default=50_000.0, gt=0)
    max_discharge_power_w: float = Field(default=50_000.0, ge=0)
    min_voltage_v: float = Field(default=50.0, ge=0)
    max_voltage_v: float = Field(default=500.0, gt=0)
    # Used to convert W <-> A for schedules in the other unit (K01.FR.50 on a DC EVSE).
    nominal_voltage_v: float = Field(default=380.0, gt=0)
    connector_type: str = "cCHAdeMO"

    @model_validator(mode="after")
    def _voltage_range(self) -> EvseConfig:
        if self.min_voltage_v >= self.max_voltage_v:
            raise ValueError("min_voltage_v must be below max_voltage_v")
        if not self.min_voltage_v <= self.nominal_voltage_v <= self.max_voltage_v:
            raise ValueError("nominal_voltage_v must lie within [min_voltage_v, max_voltage_v]")
        return self


class CanConfig(_Strict):
    """python-can bus: `socketcan` on a real charger, `virtual` in tests and simulation."""

    interface: str = "virtual"
    channel: str = "chademo0"
    bitrate: int = Field(default=500_000, gt=0)


class SafetySettings(_Strict):
    # Without a CSMS for this long, the offline safe limit applies.
    offline_timeout_s: float = Field(default=300.0, gt=0)
    # Charge-current cap while the CSMS is gone (discharge stops); DC amps.
    offline_safe_limit_a: float = Field(default=0.0, ge=0)
    backup_reserve_soc_pct: float = Field(default=20.0, ge=0, le=100)
    driving_reserve_soc_pct: float = Field(default=30.0, ge=0, le=100)
    ramp_rate_a_per_s: float = Field(default=20.0, gt=0)


class SecuritySettings(_Strict):
    """OCPP security profile: 0 = none (development only), 1 = Basic auth over ws,
    2 = TLS + Basic auth, 3 = TLS with a client certificate."""

    profile: int = Field(default=0, ge=0, le=3)
    basic_auth_password: str | None = Field(default=None, min_length=16, max_length=40)
    client_cert_file: Path | None = None
    client_key_file: Path | None = None
    ca_file: Path | None = None


class StationSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CHARGEPOINT_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    station_id: str = Field(min_length=1, max_length=48, pattern=r"^[A-Za-z0-9._\-:]+$")
    csms_url: str  # ws(s)://host:port/path ; the station id is appended
    vendor_name: str = "OpenV2G"
    model: str = "CHAdeMO-V2X"
    serial_number: str | None = None
    firmware_version: str = "0.1.0"

    security: SecuritySettings = Field(default_factory=lambda: SecuritySettings())
    evses: list[EvseConfig] = Field(
        default_factory=lambda: [EvseConfig.model_validate({"id": 1})], min_length=1
    )
    can: CanConfig = Field(default_factory=lambda: CanConfig())
    safety: SafetySettings = Field(default_factory=lambda: SafetySettings())
    state_dir: Path = Path("./chargepoint-state")
    # "chademo": the CHAdeMO controller on the CAN bus above; "simulated": a CHAdeMO controller
    # with a simulated vehicle on a python-can virtual bus (no hardware needed).
    hardware: Literal["chademo", "simulated"] = "chademo"
    # hardware = "chademo": "module:function" returning the board's EvsePorts for one EVSE
    # (function(evse: EvseConfig) -> chargepoint_firmware.hardware.ports.EvsePorts).
    ports_factory: str | None = None

    # Connection behaviour
    reconnect_min_s: float = Field(default=1.0, gt=0)
    reconnect_max_s: float = Field(default=60.0, gt=0)
    # After a Reset, wait a random min..max seconds before reconnecting, so a CSMS is not hit
    # again within milliseconds of the close (issue 12 finding 2).
    reset_reconnect_min_s: float = Field(default=1.0, ge=0, le=60)
    reset_reconnect_max_s: float = Field(default=3.0, ge=0, le=60)
    # Before closing for a Reset, wait up to this many seconds for the queued messages (the last
    # TransactionEvent Ended) to be answered (issue 12 finding 2).
    reset_drain_s: float = Field(default=5.0, ge=0, le=60)
    # Reconnect back-off cap while the CSMS refuses the credentials (HTTP 401/403): doubling from
    # 30 s, jittered, up to this (issue 12 finding 3).
    auth_failure_backoff_max_s: float = Field(default=600.0, ge=1, le=3600)
    message_timeout_s: float = Field(default=30.0, gt=0)
    ping_interval_s: float = Field(default=30.0, gt=0)
    ping_timeout_s: float = Field(default=30.0, gt=0)
    # Used until the CSMS or the device model says otherwise.
    heartbeat_interval_s: int = Field(default=300, ge=1)
    # Delay before retrying a BootNotification when the CSMS gives interval 0.
    boot_retry_default_s: float = Field(default=30.0, gt=0)
    # Retries of a queued TransactionEvent/MeterValues answered with a CALLERROR.
    transaction_message_attempts: int = Field(default=3, ge=1)
    transaction_message_retry_interval_s: float = Field(default=10.0, ge=0)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # OCPP versions offered in the websocket handshake, most preferred first ("2.1" or
    # "ocpp2.1"; env: CHARGEPOINT_OCPP_VERSIONS=2.1,2.0.1). 2.0.1 alone by default:
    # the CSMSes deployed today speak 2.0.1, and a 2.1 CSMS still accepts ocpp2.0.1 (README).
    ocpp_versions: Annotated[list[OcppVersion], NoDecode] = Field(
        default_factory=lambda: [OcppVersion.V201], min_length=1, max_length=2
    )

    @field_validator("ocpp_versions", mode="before")
    @classmethod
    def _versions(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            parsed = [parse_ocpp_version(str(v)) for v in value]
            if len(set(parsed)) != len(parsed):
                raise ValueError("each OCPP version at most once")
            return parsed
        return value

    @field_validator("csms_url")
    @classmethod
    def _ws_url(cls, value: str) -> str:
        if not value.startswith(("ws://", "wss://")):
            raise ValueError("must start with ws:// or wss://")
        return value.rstrip("/")

    @field_validator("evses")
    @classmethod
    def _evse_ids(cls, value: list[EvseConfig]) -> list[EvseConfig]:
        ids = sorted(e.id for e in value)
        if ids != list(range(1, len(ids) + 1)):
            raise ValueError("EVSE ids must be 1..n without gaps or duplicates")
        return sorted(value, key=lambda e: e.id)

    @model_validator(mode="after")
    def _security(self) -> StationSettings:
        sec = self.security
        if sec.profile in (1, 2) and not sec.basic_auth_password:
            raise ValueError("security.basic_auth_password is required for profiles 1 and 2")
        if sec.profile in (2, 3) and not self.csms_url.startswith("wss://"):
            raise ValueError("csms_url must be wss:// for security profiles 2 and 3")
        if sec.profile == 1 and not self.csms_url.startswith("ws://"):
            raise ValueError("csms_url must be ws:// for security profile 1")
        if sec.profile == 3 and not (sec.client_cert_file and sec.client_key_file):
            raise ValueError("security.client_cert_file and client_key_file needed for profile 3")
        if self.reconnect_min_s > self.reconnect_max_s:
            raise ValueError("reconnect_min_s must not exceed reconnect_max_s")
        return self

    @property
    def station_url(self) -> str:
        return f"{self.csms_url}/{self.station_id}"

    def evse(self, evse_id: int) -> EvseConfig:
        return self.evses[evse_id - 1]

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = _toml_data.get()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml is not None:
            sources.append(InitSettingsSource(settings_cls, init_kwargs=toml))
        return tuple(sources)


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "(settings)"
        lines.append(f"{field}: {item['msg']}")
    return "invalid configuration: " + "; ".join(lines)


def load_settings(path: str | Path | None = None, **overrides: Any) -> StationSettings:
    """Read TOML `path` (optional) + environment + `overrides`; raise ConfigError if invalid."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read configuration file {path}: {exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"configuration file {path} is not valid TOML: {exc}") from exc
    token = _toml_data.set(data)
    try:
        return StationSettings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    finally:
        _toml_data.reset(token)


# Settings whose values are secrets: never printed (check-config) or logged.
SECRET_FIELDS = frozenset({"basic_auth_password"})


def redact(value: Any) -> Any:
    """`value` (a model_dump) with every secret replaced by `***` and its length (issue 12 #3)."""
    if isinstance(value, dict):
        return {
            key: (
                f"*** ({len(str(item))} chars)"
                if key in SECRET_FIELDS and item is not None
                else redact(item)
            )
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value
