"""SQLAlchemy Core tables of the CSMS. The schema itself is made only by Alembic
(migrations/versions); a test checks that these definitions and the migrations agree."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UtcDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite returns naive values)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use UTC-aware datetimes")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    @staticmethod
    def driver_bind(dialect_name: str) -> Callable[[datetime | None], Any]:
        """What `process_bind_param` and then the dialect's own processor make of a value, in
        one C-level call (csms/persistence/bulk.py: the write path binds ~5 per message); a
        property test holds it equal to SQLAlchemy's pair."""

        def bind(value: datetime | None) -> Any:
            if value is None:
                return None
            if value.tzinfo is None:
                raise ValueError("naive datetime given to the database; use UTC-aware datetimes")
            if sqlite:  # SQLite's DATETIME storage format: 'YYYY-MM-DD HH:MM:SS.ffffff'
                return value.astimezone(UTC).isoformat(" ", "microseconds")[:-6]
            return value.astimezone(UTC)

        sqlite = dialect_name == "sqlite"
        return bind

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# SQLite autoincrements only INTEGER PRIMARY KEY; PostgreSQL gets BIGINT identities.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

stations = sa.Table(
    "stations",
    metadata,
    sa.Column("id", sa.String(48), primary_key=True),
    sa.Column("password_hash", sa.String(200), nullable=True),
    # Fast keyed check beside the argon2id hash (csms/services/password_check.py).
    sa.Column("password_check", sa.String(100), nullable=True),
    sa.Column("security_profile", sa.SmallInteger, nullable=False, server_default="1"),
    sa.Column("boot_policy", sa.String(16), nullable=False, server_default="Accepted"),
    sa.Column("registration_status", sa.String(16), nullable=False, server_default="Unknown"),
    sa.Column("vendor_name", sa.String(50)),
    sa.Column("model", sa.String(50)),
    sa.Column("serial_number", sa.String(25)),
    sa.Column("firmware_version", sa.String(50)),
    sa.Column("last_boot_at", UtcDateTime),
    sa.Column("last_heartbeat_at", UtcDateTime),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    # Negotiated on the last connection ("ocpp2.1"); the per-station accepted versions in
    # preference order ("ocpp2.1,ocpp2.0.1"; NULL: the global setting). Migration 0007.
    sa.Column("ocpp_version", sa.String(16)),
    sa.Column("ocpp_versions", sa.String(40)),
)

evses = sa.Table(
    "evses",
    metadata,
    sa.Column(
        "station_id",
        sa.String(48),
        sa.ForeignKey("stations.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("evse_id", sa.Integer, primary_key=True),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

connectors = sa.Table(
    "connectors",
    metadata,
    sa.Column("station_id", sa.String(48), primary_key=True),
    sa.Column("evse_id", sa.Integer, primary_key=True),
    sa.Column("connector_id", sa.Integer, primary_key=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.ForeignKeyConstraint(
        ["station_id", "evse_id"],
        ["evses.station_id", "evses.evse_id"],
        ondelete="CASCADE",
        name="fk_connectors_evse",
    ),
)

id_tokens = sa.Table(
    "id_tokens",
    metadata,
    sa.Column("id_token", sa.String(36), primary_key=True),
    sa.Column("type", sa.String(20), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("expires_at", UtcDateTime),
    sa.Column("group_id_token", sa.String(36)),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("revoked_at", UtcDateTime),
    # read | operate | admin (csms.domain.models.ApiScope); 0006 made older tokens admin.
    sa.Column("scope", sa.String(16), nullable=False),
    sa.CheckConstraint("scope IN ('read', 'operate', 'admin')", name="scope"),
)

tariffs = sa.Table(
    "tariffs",
    metadata,
    sa.Column(
        "station_id",
        sa.String(48),
        sa.ForeignKey("stations.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("price_per_kwh", sa.Float, nullable=False, server_default="0"),
    sa.Column("price_per_hour", sa.Float, nullable=False, server_default="0"),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

transactions = sa.Table(
    "transactions",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column(
        "station_id",
        sa.String(48),
        sa.ForeignKey("stations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("transaction_id", sa.String(36), nullable=False),
    sa.Column("state", sa.String(8), nullable=False),
    sa.Column("evse_id", sa.Integer),
    sa.Column("connector_id", sa.Integer),
    sa.Column("id_token", sa.String(36)),
    sa.Column("id_token_type", sa.String(20)),
    sa.Column("started_at", UtcDateTime),
    sa.Column("ended_at", UtcDateTime),
    sa.Column("stopped_reason", sa.String(32)),
    # seqNo span and count of distinct seqNos stored (0005: replaced the seen_seq_nos list,
    # rewritten whole on every event). BIGINT: any int64 a station sends fits.
    sa.Column("last_seq_no", sa.BigInteger),
    sa.Column("first_seq_no", sa.BigInteger),
    sa.Column("seq_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("charging_state", sa.String(20)),
    sa.Column("total_cost", sa.Float),
    sa.Column("offline_seen", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("started_unseen", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("energy_start_wh", sa.Float),
    sa.Column("energy_last_wh", sa.Float),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("station_id", "transaction_id", name="uq_transactions_station_tx"),
    sa.Index("ix_transactions_state", "state"),
    # The running transaction(s) on an EVSE, read once per new transaction (0005).
    sa.Index("ix_transactions_station_evse", "station_id", "evse_id", "state"),
)

transaction_events = sa.Table(
    "transaction_events",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("station_id", sa.String(48), nullable=False),
    sa.Column("transaction_id", sa.String(36), nullable=False),
    sa.Column("seq_no", sa.BigInteger, nullable=False),
    sa.Column("event_type", sa.String(8), nullable=False),
    sa.Column("trigger_reason", sa.String(32), nullable=False),
    sa.Column("timestamp", UtcDateTime, nullable=False),
    sa.Column("offline", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("received_at", UtcDateTime, nullable=False),
    # A retried TransactionEvent (same station, transaction and seqNo) is stored once.
    sa.UniqueConstraint("station_id", "transaction_id", "seq_no", name="uq_tx_events_seq"),
)

# One row per OCPP MeterValue (0017, issue 17): its sampled values packed in one text column
# (csms/persistence/meter_packing.py), `sample_count` of them, so a page of sampled values is
# cut by a running sum and a total is a SUM. Before 0017 every sampled value was a row with
# four indexes to maintain: the write path's largest database cost.
meter_values = sa.Table(
    "meter_values",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("station_id", sa.String(48), nullable=False),
    sa.Column("evse_id", sa.Integer),
    sa.Column("transaction_id", sa.String(36)),
    sa.Column("timestamp", UtcDateTime, nullable=False),
    sa.Column("sample_count", sa.Integer, nullable=False),
    sa.Column("sampled_values", sa.Text, nullable=False),
    # A transaction's meter values, in time order.
    sa.Index("ix_meter_values_station_tx", "station_id", "transaction_id", "timestamp"),
)

# A repeated MeterValue is one row (0017; the key of 0005 without the sample's own fields,
# which meter_packing.merge keeps unique inside the row). NULLs never collide in a unique
# index, so the optional columns are COALESCEd; sentinels outside what OCPP allows: '' and -1.
# Station and timestamp lead, so this index also serves a station's time range.
METER_READING_KEY = (
    meter_values.c.station_id,
    meter_values.c.timestamp,
    sa.func.coalesce(meter_values.c.transaction_id, ""),
    sa.func.coalesce(meter_values.c.evse_id, -1),
)
sa.Index("uq_meter_values_reading", *METER_READING_KEY, unique=True)

message_log = sa.Table(
    "message_log",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("station_id", sa.String(48), nullable=False),
    sa.Column("direction", sa.String(3), nullable=False),
    sa.Column("kind", sa.String(10), nullable=False),
    sa.Column("action", sa.String(50)),
    sa.Column("message_id", sa.String(36), nullable=False),
    sa.Column("payload", sa.JSON),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Index("ix_message_log_station_id", "station_id", "id"),
)

device_variables = sa.Table(
    "device_variables",
    metadata,
    sa.Column("station_id", sa.String(48), primary_key=True),
    # component/instance/evse/connector/variable/instance/attribute joined: one upsert key.
    sa.Column("key", sa.String(400), primary_key=True),
    sa.Column("component", sa.String(50), nullable=False),
    sa.Column("component_instance", sa.String(50)),
    sa.Column("evse_id", sa.Integer),
    sa.Column("connector_id", sa.Integer),
    sa.Column("variable", sa.String(50), nullable=False),
    sa.Column("variable_instance", sa.String(50)),
    sa.Column("attribute_type", sa.String(8), nullable=False),
    sa.Column("value", sa.String(2500)),
    sa.Column("mutability", sa.String(10)),
    sa.Column("characteristics", sa.JSON),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Index("ix_device_variables_lookup", "station_id", "component", "variable"),
)

charging_profiles = sa.Table(
    "charging_profiles",
    metadata,
    sa.Column("station_id", sa.String(48), primary_key=True),
    sa.Column("profile_id", sa.Integer, primary_key=True),
    sa.Column("evse_id", sa.Integer, nullable=False),
    sa.Column("purpose", sa.String(40), nullable=False),
    sa.Column("stack_level", sa.Integer, nullable=False),
    sa.Column("kind", sa.String(10), nullable=False),
    sa.Column("transaction_id", sa.String(36)),
    sa.Column("valid_from", UtcDateTime),
    sa.Column("valid_to", UtcDateTime),
    sa.Column("source", sa.String(30), nullable=False),
    sa.Column("profile", sa.JSON, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Index("ix_charging_profiles_evse", "station_id", "evse_id"),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("station_id", sa.String(48), nullable=False),
    sa.Column("kind", sa.String(50), nullable=False),
    sa.Column("timestamp", UtcDateTime),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("received_at", UtcDateTime, nullable=False),
    sa.Index("ix_events_station_kind", "station_id", "kind", "id"),
)

certificates = sa.Table(
    "certificates",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("station_id", sa.String(48), nullable=False),
    sa.Column("certificate_type", sa.String(40), nullable=False),
    sa.Column("csr", sa.Text, nullable=False),
    sa.Column("status", sa.String(12), nullable=False),
    sa.Column("certificate_chain", sa.Text),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Index("ix_certificates_station", "station_id"),
)

# The tables of revision 0001 (other modules may add theirs to `metadata` later).
CORE_TABLES = frozenset(metadata.tables)

# ---- OCPP 2.1 (migration 0007) ------------------------------------------------------------

# Periodic event streams a station opened (N: OpenPeriodicEventStream); closed_at once closed.
periodic_streams = sa.Table(
    "periodic_streams",
    metadata,
    sa.Column("station_id", sa.String(48), primary_key=True),
    sa.Column("stream_id", sa.Integer, primary_key=True),
    sa.Column("variable_monitoring_id", sa.Integer, nullable=False),
    sa.Column("interval_s", sa.Integer),
    sa.Column("values_per_message", sa.Integer),
    sa.Column("constant_data", sa.JSON, nullable=False),  # constantStreamData as sent
    sa.Column("opened_at", UtcDateTime, nullable=False),
    sa.Column("closed_at", UtcDateTime),
)

# Their values (NotifyPeriodicEventStream, a 2.1 SEND): one row per data element, timestamped
# basetime + t; the high-resolution measurements grid services need.
periodic_stream_values = sa.Table(
    "periodic_stream_values",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("station_id", sa.String(48), nullable=False),
    sa.Column("stream_id", sa.Integer, nullable=False),
    sa.Column("timestamp", UtcDateTime, nullable=False),
    sa.Column("value", sa.String(2500), nullable=False),
    sa.Column("received_at", UtcDateTime, nullable=False),
    sa.Index("ix_periodic_stream_values_stream", "station_id", "stream_id", "timestamp"),
)

# The schedule update the CSMS holds for a Dynamic charging profile (K: answered to
# PullDynamicScheduleUpdate; pushed with UpdateDynamicSchedule by the V2G services).
dynamic_schedule_updates = sa.Table(
    "dynamic_schedule_updates",
    metadata,
    sa.Column("station_id", sa.String(48), primary_key=True),
    sa.Column("charging_profile_id", sa.Integer, primary_key=True),
    sa.Column("schedule_update", sa.JSON, nullable=False),  # ChargingScheduleUpdateType
    sa.Column("updated_at", UtcDateTime, nullable=False),
)


# Plug & Charge OCSP answers, shared by restarts and nodes (0013): until when each may be reused.
ocsp_responses = sa.Table(
    "ocsp_responses",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),  # sha256 of the request's cache key
    sa.Column("until", UtcDateTime, nullable=False),
    sa.Column("status", sa.String(8), nullable=False),
    sa.Column("der", sa.LargeBinary),
    sa.Column("this_update", UtcDateTime),
    sa.Column("next_update", UtcDateTime),
    sa.Column("verified", sa.Boolean, nullable=False),
    sa.Column("reason", sa.String(500), nullable=False),
    sa.Index("ix_ocsp_responses_until", "until"),
)


# Sites (0014, issue 18): a grid connection point holding stations, with its operating
# envelopes (csms/domain/envelopes.py) from each source (CSIP-AUS, an operator).
sites = sa.Table(
    "sites",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("nmi", sa.String(11)),
    sa.Column("lfdi", sa.String(40), unique=True),
    sa.Column("sfdi", sa.BigInteger),
    sa.Column("registration_pin", sa.Integer),
    sa.Column("csip_enabled", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    # The station whose evse-0 Inlet meter is the household meter (0020); one of the site's.
    sa.Column("meter_station_id", sa.String(48), index=True),
    # The envelope state (fingerprints of envelopes and stations) whose change listeners were
    # last called (0021); swapped compare-and-set so that one node announces each change.
    sa.Column("envelopes_announced", sa.String(64)),
)

# A station belongs to at most one site.
site_stations = sa.Table(
    "site_stations",
    metadata,
    sa.Column(
        "station_id",
        sa.String(48),
        sa.ForeignKey("stations.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column(
        "site_id", sa.String(64), sa.ForeignKey("sites.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Index("ix_site_stations_site_id", "site_id"),
)

site_envelopes = sa.Table(
    "site_envelopes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "site_id", sa.String(64), sa.ForeignKey("sites.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("control_id", sa.String(64)),
    sa.Column("is_default", sa.Boolean, nullable=False),
    sa.Column("start", UtcDateTime, nullable=False),
    sa.Column("end", UtcDateTime),
    sa.Column("received_at", UtcDateTime, nullable=False),
    sa.Column("export_limit_w", sa.Float),
    sa.Column("import_limit_w", sa.Float),
    sa.Column("generation_limit_w", sa.Float),
    sa.Column("load_limit_w", sa.Float),
    sa.Column("energize", sa.Boolean),
    sa.Column("connect", sa.Boolean),
    sa.Column("ramp_rate_pct_per_s", sa.Float),
    sa.Column("ramp_time_s", sa.Float),  # a DERControl's rampTms / 100 (migration 0019)
    sa.Index("ix_site_envelopes_site_id", "site_id", "source"),
)
