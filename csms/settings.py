"""One typed settings object for the CSMS, read once at start and passed down.

Every field can be given as a `CSMS_<NAME>` environment variable (e.g. `CSMS_DATABASE_URL`) or
as a command-line flag of `csms serve`; flags win over the environment. Invalid values stop the
start with a message naming the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from csms.domain.ocpp_versions import format_versions, parse_versions
from csms.domain.throttle import parse_networks
from v2g_shared.ocpp_versions import OcppVersion

# TLS certificate/key settings: (what the file holds, the key type it must have; None = either).
_TLS_KEY_FILES: dict[str, tuple[Literal["cert", "key"], Literal["RSA", "ECDSA"] | None]] = {
    "tls_cert_file": ("cert", None),
    "tls_key_file": ("key", None),
    "tls_rsa_cert_file": ("cert", "RSA"),
    "tls_rsa_key_file": ("key", "RSA"),
    "tls_ecdsa_cert_file": ("cert", "ECDSA"),
    "tls_ecdsa_key_file": ("key", "ECDSA"),
}


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
    # tls_cert_file/tls_key_file: one certificate, RSA or ECDSA (PEM, leaf first, key unencrypted).
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = None
    # OCPP A00.FR.318/421 want an RSA and an ECDSA certificate at once (the four required suites
    # need both); give them here (--tls-rsa-cert-file ... / CSMS_TLS_RSA_CERT_FILE ...), with or
    # instead of tls_cert_file (at most one certificate per key type). RSA >= 2048 bits,
    # EC >= 224 bits (A00.FR.502/503); each key type is checked at start.
    tls_rsa_cert_file: Path | None = None
    tls_rsa_key_file: Path | None = None
    tls_ecdsa_cert_file: Path | None = None
    tls_ecdsa_key_file: Path | None = None
    # Lowest TLS version accepted: "1.2" (A00.FR.313) or "1.3" (TLS 1.3 only: refuses stations
    # limited to TLS 1.2, including the four A00.FR.318 suites, which are TLS 1.2 suites).
    tls_min_version: Literal["1.2", "1.3"] = "1.2"
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
    # OCPP versions accepted on the one endpoint, in preference order (websocket subprotocol
    # names or labels, comma-separated): the first one a station offers is chosen. A station's
    # own list (API/CLI `ocpp_versions`) replaces this one for it.
    ocpp_versions: str = "ocpp2.1,ocpp2.0.1"
    # Validate incoming/outgoing messages against the OCA JSON schemas.
    validate_messages: bool = True
    # Negative limit in a charging profile = discharge (project convention on OCPP 2.0.1).
    negative_limit_is_discharge: bool = True

    # Input bounds and per-station limits of the OCPP endpoint (docs: README "Security").
    # Largest websocket frame accepted (bytes); a larger one closes the connection (1009).
    # 2.0.1's big messages (NotifyReport parts, a 5.5 kB CSR) are chunked by the station's
    # BytesPerMessage, typically well under 64 KiB.
    ocpp_max_frame_bytes: int = Field(256 * 1024, ge=4096, le=16 * 1024 * 1024)
    # Deepest JSON nesting of a frame (the frame array is level 1; the deepest 2.0.1 message
    # needs 14): deeper -> FormatViolation, before anything is parsed or stored.
    ocpp_max_json_depth: int = Field(32, ge=16, le=512)
    # Frames per second per station (token bucket, burst ocpp_rate_burst; 0 = no limit).
    # Over the rate, the station's next frame is read only when a token is there: it is
    # answered later, never refused, and nothing queues on the CSMS.
    ocpp_rate_per_s: float = Field(20.0, ge=0, le=1e6)
    ocpp_rate_burst: int = Field(100, ge=1, le=1_000_000)
    # Free-form data a station may store (events: DataTransfer, Notify*, security events;
    # NotifyReport parts): at most this many bytes (serialized JSON) per message, and this
    # many per station per period (token bucket; 0 = no quota). Over -> not stored: a
    # GenericError CALLERROR (DataTransfer: status Rejected), one log line and event per burst.
    station_event_max_bytes: int = Field(64 * 1024, ge=1024, le=16 * 1024 * 1024)
    station_storage_quota_bytes: int = Field(16 * 1024 * 1024, ge=0, le=2**40)
    station_storage_quota_period_s: float = Field(3600.0, gt=0, le=30 * 86400)
    # EVSE and connector ids a station may report (StatusNotification): each new pair is a
    # stored row, so the ids are bounded (2.0.1 numbers them from 1).
    station_max_evse_id: int = Field(128, ge=1, le=2**31 - 1)
    station_max_connector_id: int = Field(16, ge=1, le=2**31 - 1)
    # Multi-part NotifyReports held in memory per connection: open reports (a new one
    # abandons the oldest), parts per report, and seconds allowed between two parts. At most
    # max_open x max_parts seqNos (~60 bytes each) per connection: ~240 kB by default.
    report_max_open: int = Field(4, ge=1, le=1000)
    report_max_parts: int = Field(1000, ge=1, le=100_000)
    report_part_timeout_s: float = Field(600.0, gt=0, le=86400)

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
    # ISO 15118 charging needs (K15-K17; README "ISO 15118: charging needs and Plug & Charge").
    # The EV's needs are planned by the optimizer (stored prices, else a default policy of a
    # flat tariff in intervals of ev_needs_interval_s, earliest first) and sent as its TxProfile.
    # Max power when the EV gives none; the plan's time bound (then one period at max power);
    # how long the answer waits for the plan (ready: Accepted, else Processing, sent later).
    v2g_ev_needs_default_power_kw: float = Field(11.0, gt=0, le=1000, allow_inf_nan=False)
    v2g_ev_needs_interval_s: float = Field(900.0, ge=60, le=86_400, allow_inf_nan=False)
    v2g_ev_needs_plan_timeout_s: float = Field(5.0, gt=0, le=60, allow_inf_nan=False)
    v2g_ev_needs_answer_budget_s: float = Field(1.0, ge=0, le=20, allow_inf_nan=False)
    # NotifyEVChargingSchedule: the EV may follow a limit change this many seconds off, and
    # exceed a limit by this fraction; a schedule outside is Rejected and the CSMS
    # renegotiates (a new SetChargingProfile), at most this many times per transaction.
    v2g_ev_schedule_time_tolerance_s: float = Field(60.0, ge=0, le=3600, allow_inf_nan=False)
    v2g_ev_schedule_limit_tolerance: float = Field(0.01, ge=0, le=1, allow_inf_nan=False)
    v2g_ev_schedule_max_renegotiations: int = Field(3, ge=0, le=100)

    # Plug & Charge (C07, M01/M02, M06). OCSP requests go only to responder hosts listed here
    # (comma-separated host names or addresses, "*" = any): the URL comes from the station, so
    # none is fetched until an operator says which (empty = OCSP off: Failed / CertChainError).
    pnc_ocsp_responder_hosts: str = ""
    pnc_ocsp_timeout_s: float = Field(5.0, gt=0, le=60, allow_inf_nan=False)
    pnc_ocsp_max_response_bytes: int = Field(64 * 1024, ge=1024, le=1024 * 1024)
    # A response is cached until its nextUpdate, at most this long (none: not cached).
    pnc_ocsp_cache_max_s: float = Field(86_400.0, ge=0, le=30 * 86_400, allow_inf_nan=False)
    pnc_ocsp_cache_entries: int = Field(10_000, ge=1, le=1_000_000)
    # PEM bundle of the V2G / Mobility Operator root and sub-CA certificates the CSMS trusts
    # (contract chains in Authorize are checked against it; OCSP signers are found in it).
    pnc_trust_anchors_file: Path | None = None
    # Certificate provider for Get15118EVCertificate (install/update of contract
    # certificates): an HTTP(S) URL receiving the request as JSON (README); none = Failed.
    pnc_certificate_provider_url: str | None = None
    pnc_certificate_provider_timeout_s: float = Field(10.0, gt=0, le=60, allow_inf_nan=False)

    # Home Assistant over MQTT discovery (mqtt://host:1883); none = no bridge.
    mqtt_url: str | None = None
    mqtt_topic_prefix: str = "openv2g"
    mqtt_discovery_prefix: str = "homeassistant"
    mqtt_state_interval_s: float = Field(30.0, gt=0)

    # CSIP-AUS (IEEE 2030.5) aggregator client (issue 18; README "CSIP-AUS"): the DNSP
    # server's DeviceCapability URL; on with csip_enabled. Mutual TLS with the aggregator's
    # certificate and key, the server checked against csip_ca_file (none: the system CAs).
    # csip_cert_header_mode sends the certificate in the ssl-client-cert header instead
    # (no TLS): refused unless the server URL is loopback (tests behind a local proxy).
    csip_enabled: bool = False
    csip_server_url: str | None = None
    csip_cert_file: Path | None = None
    csip_key_file: Path | None = None
    csip_ca_file: Path | None = None
    csip_cert_header_mode: bool = False
    # The aggregator's IANA Private Enterprise Number: the last 8 digits of derived site LFDIs.
    csip_pen: int = Field(0, ge=0, le=99_999_999)
    # Every server pollRate is kept within [min, max] s; a failed exchange is retried after
    # csip_retry_s. The poller looks at its sites every csip_tick_s; a node holds a site's
    # polling lease csip_lease_s (another node takes the site over after that).
    csip_poll_min_s: int = Field(10, ge=0, le=3600)
    csip_poll_max_s: int = Field(3600, ge=1, le=86_400)
    csip_retry_s: int = Field(30, ge=0, le=3600)
    csip_tick_s: float = Field(2.0, gt=0, le=60, allow_inf_nan=False)
    csip_lease_s: float = Field(60.0, ge=5, le=3600, allow_inf_nan=False)
    csip_timeout_s: float = Field(20.0, gt=0, le=120, allow_inf_nan=False)
    csip_max_response_bytes: int = Field(512 * 1024, ge=4096, le=16 * 1024 * 1024)
    # Controls stop this long after the last successful poll (defaults then apply); none =
    # followed as scheduled while the server cannot be reached (CSIP-AUS ALL-23).
    csip_comm_loss_timeout_s: int | None = Field(None, ge=0, le=7 * 86_400)
    # A station's rating when its device model reported none (csms.domain.station_ratings),
    # W: its envelope share and what the CSIP-AUS client reports both use it.
    station_rated_charge_w: float = Field(22_000.0, gt=0, le=1e6, allow_inf_nan=False)
    station_rated_discharge_w: float = Field(22_000.0, gt=0, le=1e6, allow_inf_nan=False)
    # The CSMS's own externally reachable base URL (http(s)://host[:port][/path]) for CSIP-AUS
    # notifications (POST <base>/csip/notify/<token>, checked when the client starts); none:
    # no subscriptions, polling only.
    csip_notify_base_url: str | None = None
    # The sites' household meters (POST /sites/{id}/meter): a reading older than
    # site_meter_max_age_s is stale (the chargers-alone rule, tightened only); the stations get
    # a new profile when the site base moves by site_meter_hysteresis_w (also the margin the
    # bounds keep), at most every site_meter_min_resend_s; checked every site_meter_check_s.
    site_meter_max_age_s: float = Field(60.0, ge=5, le=3600, allow_inf_nan=False)
    site_meter_hysteresis_w: float = Field(300.0, ge=0, le=100_000, allow_inf_nan=False)
    site_meter_min_resend_s: float = Field(15.0, ge=0, le=3600, allow_inf_nan=False)
    site_meter_check_s: float = Field(5.0, ge=0, le=3600, allow_inf_nan=False)
    site_meter_charger_sample_max_age_s: float = Field(120.0, ge=5, le=3600, allow_inf_nan=False)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # "text" (one human-readable line per record) or "json" (one JSON object per line: ts,
    # level, logger, message, and exc_info when there is one) for log collectors.
    log_format: Literal["text", "json"] = "text"

    # OCPP message log (/api/v1/stations/{id}/messages). The commands the CSMS sends and
    # their answers are always logged; with message_log_incoming the messages stations send
    # and the CSMS's answers too (written in batches off the hot path, but ~55-75 us of CPU
    # per message on SQLite: benchmarks/bench_message_log.py; off by default). Entries older
    # than message_log_retention_days or beyond message_log_max_rows_per_station (per
    # station, newest kept; 0 = no row limit) are pruned hourly.
    message_log_incoming: bool = False
    message_log_retention_days: float = Field(30.0, gt=0, le=3650, allow_inf_nan=False)
    message_log_max_rows_per_station: int = Field(10_000, ge=0, le=10_000_000)

    # /metrics: the V2G fleet gauges (csms_v2g_*) are read from the database every this many
    # seconds (0 = not collected).
    metrics_v2g_refresh_s: float = Field(15.0, ge=0, le=3600, allow_inf_nan=False)
    # Key of the fast station-password check (hex, >= 16 bytes; created if missing). Default:
    # beside the SQLite file, or ./csms.password-key. Several nodes must share one key file.
    password_key_file: Path | None = None

    # Log every OCPP frame at DEBUG (off by default: it costs throughput).
    log_ocpp_frames: bool = False

    # Failed station logins (bad password or certificate, unknown id) are throttled per
    # station id and per source address (IPv6: per /64), per node: after the free failures
    # each further one blocks the key for base x 2^k seconds up to the max; a blocked attempt
    # is answered 429 + Retry-After without checking the password. A key with no failure for
    # auth_throttle_forget_s starts over. A station that logged in from an address is not
    # blocked there by guesses at its id from elsewhere.
    auth_free_failures_per_station: int = Field(5, ge=0, le=10**9)  # huge = off
    auth_free_failures_per_address: int = Field(20, ge=0, le=10**9)
    auth_backoff_base_s: float = Field(1.0, gt=0, le=3600)
    auth_backoff_max_s: float = Field(60.0, gt=0, le=86400)
    auth_throttle_forget_s: float = Field(900.0, gt=0, le=7 * 86400)
    auth_throttle_table_size: int = Field(100_000, ge=100, le=10_000_000)  # keys per table
    # Answer to an unknown station id: 404 (OCPP-J 2.0.1 Part 4: SHOULD) or 401 (the same as
    # a wrong password, so ids cannot be enumerated). Either way it counts as a failure.
    unknown_station_status: int = 404
    # Reverse proxies in front of the OCPP port (comma-separated addresses or networks, e.g.
    # "10.0.0.5,10.1.0.0/16"): a connection from one of them is attributed to the address its
    # X-Forwarded-For header names (throttling and logs). Empty: the peer address counts and
    # X-Forwarded-For is ignored. Without it, behind a proxy every station shares one address.
    trusted_proxies: str = ""

    @field_validator("pnc_certificate_provider_url")
    @classmethod
    def _provider_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("use an http:// or https:// URL")
        return value

    @field_validator("ocpp_path")
    @classmethod
    def _strip_slashes(cls, value: str) -> str:
        return value.strip("/")

    @field_validator("ocpp_versions")
    @classmethod
    def _known_versions(cls, value: str) -> str:
        return format_versions(parse_versions(value))  # "2.1, 2.0.1" -> "ocpp2.1,ocpp2.0.1"

    @property
    def accepted_ocpp_versions(self) -> tuple[OcppVersion, ...]:
        return parse_versions(self.ocpp_versions)

    @field_validator("unknown_station_status")
    @classmethod
    def _status_404_or_401(cls, value: int) -> int:
        if value not in (404, 401):
            raise ValueError("use 404 (OCPP-J) or 401 (no id enumeration)")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_networks(cls, value: str) -> str:
        parse_networks(value)
        return value

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

    @field_validator(*_TLS_KEY_FILES, "tls_client_ca_file")
    @classmethod
    def _tls_file(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        # Read at start so a wrong file names its setting instead of failing handshakes later.
        if value is None:
            return None
        from csms.ocpp_server import tls

        pem = tls.read_pem(value)
        if info.field_name == "tls_client_ca_file":
            tls.trusted_certificates(pem)
            return value
        what, kind = _TLS_KEY_FILES[str(info.field_name)]
        key = tls.certificate_key(pem) if what == "cert" else tls.private_key(pem)
        if kind is not None and key.kind != kind:
            raise ValueError(f"{value} holds an {key.label} key, not {kind}")
        return value

    @model_validator(mode="after")
    def _tls_pairs(self) -> Settings:
        from csms.ocpp_server import tls

        kinds: dict[str, str] = {}
        for prefix in ("tls", "tls_rsa", "tls_ecdsa"):
            cert, key = getattr(self, f"{prefix}_cert_file"), getattr(self, f"{prefix}_key_file")
            if (cert is None) != (key is None):
                raise ValueError(f"{prefix}_cert_file and {prefix}_key_file go together")
            if cert is None:
                continue
            cert_key, private = (
                tls.certificate_key(cert.read_bytes()),
                tls.private_key(key.read_bytes()),
            )
            if cert_key.public_key_der != private.public_key_der:
                raise ValueError(f"{prefix}_key_file is not the key of {prefix}_cert_file")
            if cert_key.kind in kinds:
                raise ValueError(
                    f"{kinds[cert_key.kind]} and {prefix}_cert_file are both {cert_key.kind} "
                    "certificates: give one certificate per key type"
                )
            kinds[cert_key.kind] = f"{prefix}_cert_file"
        if self.tls_client_ca_file is not None and not kinds:
            raise ValueError("tls_client_ca_file needs a server certificate (tls_*_cert_file)")
        if (self.csr_ca_cert_file is None) != (self.csr_ca_key_file is None):
            raise ValueError("csr_ca_cert_file and csr_ca_key_file go together")
        if self.csip_enabled:
            if not self.csip_server_url or self.csip_cert_file is None:
                raise ValueError("csip_enabled needs csip_server_url and csip_cert_file")
            if not self.csip_cert_header_mode and self.csip_key_file is None:
                raise ValueError("csip_enabled needs csip_key_file (mutual TLS)")
        if self.csip_poll_min_s > self.csip_poll_max_s:
            raise ValueError("need csip_poll_min_s <= csip_poll_max_s")
        if not self.auth_backoff_base_s <= self.auth_backoff_max_s <= self.auth_throttle_forget_s:
            raise ValueError(
                "need auth_backoff_base_s <= auth_backoff_max_s <= auth_throttle_forget_s"
            )
        return self

    @property
    def tls_enabled(self) -> bool:
        return any(
            path is not None
            for path in (self.tls_cert_file, self.tls_rsa_cert_file, self.tls_ecdsa_cert_file)
        )
