"""V2G tables, on the same `metadata` as csms.persistence.tables (made by migration 0002)."""

from __future__ import annotations

import sqlalchemy as sa

from csms.persistence.tables import BigId, UtcDateTime, metadata

v2g_vehicles = sa.Table(
    "v2g_vehicles",
    metadata,
    sa.Column("id", sa.String(48), primary_key=True),
    sa.Column("name", sa.String(100)),
    sa.Column("capacity_kwh", sa.Float, nullable=False),
    sa.Column("chemistry", sa.String(8), nullable=False),
    sa.Column("soc_min", sa.Float, nullable=False),
    sa.Column("soc_max", sa.Float, nullable=False),
    sa.Column("max_charge_kw", sa.Float, nullable=False),
    sa.Column("max_discharge_kw", sa.Float, nullable=False),
    sa.Column("round_trip_efficiency", sa.Float, nullable=False),
    sa.Column("driving_reserve_soc", sa.Float, nullable=False),
    sa.Column("backup_reserve_soc", sa.Float, nullable=False),
    sa.Column("degradation_c_kwh", sa.Float),
    # Where it is plugged in (None = not linked to a station).
    sa.Column("station_id", sa.String(48)),
    sa.Column("evse_id", sa.Integer),
    # Session context given through the API (None = from NotifyEVChargingNeeds or predicted).
    sa.Column("departure", UtcDateTime),
    sa.Column("target_soc", sa.Float),
    # V2G export allowed (off: plans never discharge; V2H backup keeps max_discharge_kw).
    sa.Column("v2g_enabled", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Index("ix_v2g_vehicles_station", "station_id", "evse_id"),
)

# One row per price interval; a series is a run of rows of equal length without gaps.
v2g_prices = sa.Table(
    "v2g_prices",
    metadata,
    sa.Column("interval_start", UtcDateTime, primary_key=True),
    sa.Column("interval_s", sa.Integer, nullable=False),
    sa.Column("import_c_kwh", sa.Float, nullable=False),
    sa.Column("export_c_kwh", sa.Float, nullable=False),
    sa.Column("source", sa.String(100), nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

v2g_plans = sa.Table(
    "v2g_plans",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("vehicle_id", sa.String(48), nullable=False),
    sa.Column("station_id", sa.String(48)),
    sa.Column("evse_id", sa.Integer),
    sa.Column("transaction_id", sa.String(36)),
    sa.Column("planned_at", UtcDateTime, nullable=False),
    # what-if / Accepted / Rejected / failed: what became of sending it
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(200)),
    sa.Column("plan", sa.JSON, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Index("ix_v2g_plans_vehicle", "vehicle_id", "id"),
    sa.Index("ix_v2g_plans_station", "station_id", "id"),
)

# Fleet dispatches and frequency events: what was asked, what each station answered.
v2g_dispatches = sa.Table(
    "v2g_dispatches",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(16), nullable=False),  # dispatch / frequency
    sa.Column("started_at", UtcDateTime, nullable=False),
    sa.Column("duration_s", sa.Integer, nullable=False),
    sa.Column("requested_kw", sa.Float, nullable=False),
    sa.Column("allocated_kw", sa.Float, nullable=False),
    sa.Column("accepted_kw", sa.Float, nullable=False),
    sa.Column("per_vehicle", sa.JSON, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Index("ix_v2g_dispatches_started", "started_at"),
)

v2g_station_settings = sa.Table(
    "v2g_station_settings",
    metadata,
    sa.Column("station_id", sa.String(48), primary_key=True),
    sa.Column("freq_watt_enabled", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("freq_watt_curve", sa.JSON),
    sa.Column("emergency_backup", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

# Rule state that every CSMS node must see the same (migration 0004): one row per rule, e.g.
# "under_frequency" -> {vehicle id: EventSnapshot.as_dict()}. A node changes it by
# read-modify-write in one transaction that holds the row lock (SELECT ... FOR UPDATE).
v2g_rule_states = sa.Table(
    "v2g_rule_states",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("state", sa.JSON, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

# A station's AS/NZS 4777.2 grid-code curves (migration 0008): one row per station and curve
# kind (volt_watt, volt_var, freq_watt_over, freq_watt_under); `setting` is
# DerCurveSetting.as_dict() (points, region, nominal voltage, priority, response time).
der_curve_settings = sa.Table(
    "der_curve_settings",
    metadata,
    sa.Column("station_id", sa.String(48), primary_key=True),
    sa.Column("kind", sa.String(24), primary_key=True),
    sa.Column("setting", sa.JSON, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)
