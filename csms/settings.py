"""One typed settings object for the CSMS, read once at start and passed down.

Every field can be given as a `CSMS_<NAME>` environment variable (e.g. `CSMS_DATABASE_URL`) or
as a command-line flag of `csms serve`; flags win over the environment. Invalid values stop the
start with a message naming the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CSMS_", extra="forbid", validate_default=True)

    # Persistence: SQLite file in the working directory by default; PostgreSQL by URL
    # (postgresql+asyncpg://user@host:5432/db).
    database_url: str = "sqlite+aiosqlite:///./csms.db"

    # OCPP websocket endpoint: ws(s)://host:ocpp_port/<ocpp_path>/<stationId>
    ocpp_host: str = "0.0.0.0"
    ocpp_port: int = Field(9000, ge=0, le=65535)
    ocpp_path: str = "ocpp"  # empty allowed: ws://host:9000/<stationId>
    # TLS for security profiles 2 and 3: server certificate/key, and the CA that signs station
    # client certificates (profile 3).
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = None
    # CA used to sign station CSRs (SignCertificate -> CertificateSigned); none = not configured.
    csr_ca_cert_file: Path | None = None
    csr_ca_key_file: Path | None = None

    # REST API
    api_host: str = "0.0.0.0"
    api_port: int = Field(8000, ge=0, le=65535)

    # OCPP behaviour
    heartbeat_interval_s: int = Field(300, ge=1)
    boot_retry_interval_s: int = Field(60, ge=1)  # interval sent with Pending/Rejected
    ping_interval_s: float = Field(30.0, gt=0)  # websocket pings detect dead connections
    ping_timeout_s: float = Field(30.0, gt=0)
    command_timeout_s: float = Field(25.0, gt=0, lt=300)  # answer to an API command
    # Validate incoming/outgoing messages against the OCA JSON schemas.
    validate_messages: bool = True
    # Negative limit in a charging profile = discharge (project convention on OCPP 2.0.1).
    negative_limit_is_discharge: bool = True

    # Several nodes: broker for command routing (nats://... or redis://...); none = in-process.
    broker_url: str | None = None
    node_id: str | None = None  # defaults to host:pid at start

    # V2G services (csms/services/v2g_*): background re-planning every this many seconds
    # (0 = off), plans older than plan_max_age_s or off their SoC by soc_tolerance re-planned.
    # Every V2G number is finite and within a physical range (csms/v2g/bounds.py).
    v2g_replan_interval_s: float = Field(0.0, ge=0, le=86_400, allow_inf_nan=False)
    v2g_plan_max_age_s: float = Field(900.0, gt=0, le=86_400, allow_inf_nan=False)
    v2g_soc_tolerance: float = Field(0.03, ge=0, le=1)
    # NEM price uploads: import = (RRP/10 + margin) x (1 + GST); export = RRP/10 + offset.
    v2g_retail_margin_c_kwh: float = Field(0.0, ge=-1000, le=1000, allow_inf_nan=False)
    v2g_gst_rate: float = Field(0.10, ge=0, le=0.5)
    v2g_export_offset_c_kwh: float = Field(0.0, ge=-1000, le=1000, allow_inf_nan=False)
    # payment for delivered response
    v2g_grid_service_aud_per_kwh: float = Field(0.50, ge=0, le=1000, allow_inf_nan=False)
    # Without a departure from the API, the EV or a prediction: plug-in + dwell, to this SoC.
    v2g_default_dwell_h: float = Field(12.0, gt=0, le=744, allow_inf_nan=False)
    v2g_default_target_soc: float = Field(0.80, ge=0, le=1)
    v2g_house_load_kw: float = Field(1.0, gt=0, le=1000, allow_inf_nan=False)  # backup estimate
    # Central under-frequency rule: below threshold for hold_s -> discharge kW for duration_s
    # on vehicles above min_soc.
    v2g_frequency_rule_hold_s: float = Field(5.0, ge=0, le=3600, allow_inf_nan=False)
    v2g_frequency_rule_threshold_hz: float = Field(49.8, ge=40, le=70)
    v2g_frequency_discharge_kw: float = Field(5.0, ge=0, le=1000, allow_inf_nan=False)
    v2g_frequency_duration_s: float = Field(600.0, gt=0, le=86_400, allow_inf_nan=False)
    v2g_frequency_min_soc: float = Field(0.5, ge=0, le=1)
    # Plans look at most this many hours ahead (7 days): a departure further out given to the
    # API is refused (422 naming the limit); one from the EV is planned up to the limit.
    v2g_max_horizon_h: float = Field(168.0, gt=0, le=744, allow_inf_nan=False)

    # Home Assistant over MQTT discovery (mqtt://host:1883); none = no bridge.
    mqtt_url: str | None = None
    mqtt_topic_prefix: str = "openv2g"
    mqtt_discovery_prefix: str = "homeassistant"
    mqtt_state_interval_s: float = Field(30.0, gt=0)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Key of the fast station-password check (hex, >= 16 bytes; created if missing). Default:
    # beside the SQLite file, or ./csms.password-key. Several nodes must share one key file.
    password_key_file: Path | None = None

    # Log every OCPP frame at DEBUG (off by default: it costs throughput).
    log_ocpp_frames: bool = False

    @field_validator("ocpp_path")
    @classmethod
    def _strip_slashes(cls, value: str) -> str:
        return value.strip("/")

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError(
                "use sqlite+aiosqlite:///path/to/file.db or postgresql+asyncpg://user@host/db"
            )
        return value

    @field_validator("broker_url")
    @classmethod
    def _known_broker(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("nats://", "redis://", "rediss://", "tls://")):
            raise ValueError("use nats://host:4222 or redis://host:6379/0")
        return value

    @model_validator(mode="after")
    def _tls_pairs(self) -> Settings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together")
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("tls_client_ca_file needs tls_cert_file/tls_key_file (wss)")
        if (self.csr_ca_cert_file is None) != (self.csr_ca_key_file is None):
            raise ValueError("csr_ca_cert_file and csr_ca_key_file go together")
        return self

    @property
    def tls_enabled(self) -> bool:
        return self.tls_cert_file is not None
