"""v2g: vehicles, prices, plans, dispatches, per-station V2G settings

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 23:55:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# Registers the V2G tables on the shared metadata, so that schema comparisons (autogenerate,
# the migration tests) see them whoever imported csms.persistence.tables first.
import csms.persistence.v2g_tables  # noqa: F401

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _at(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "v2g_vehicles",
        sa.Column("id", sa.String(length=48), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=True),
        sa.Column("capacity_kwh", sa.Float(), nullable=False),
        sa.Column("chemistry", sa.String(length=8), nullable=False),
        sa.Column("soc_min", sa.Float(), nullable=False),
        sa.Column("soc_max", sa.Float(), nullable=False),
        sa.Column("max_charge_kw", sa.Float(), nullable=False),
        sa.Column("max_discharge_kw", sa.Float(), nullable=False),
        sa.Column("round_trip_efficiency", sa.Float(), nullable=False),
        sa.Column("driving_reserve_soc", sa.Float(), nullable=False),
        sa.Column("backup_reserve_soc", sa.Float(), nullable=False),
        sa.Column("degradation_c_kwh", sa.Float(), nullable=True),
        sa.Column("station_id", sa.String(length=48), nullable=True),
        sa.Column("evse_id", sa.Integer(), nullable=True),
        _at("departure", nullable=True),
        sa.Column("target_soc", sa.Float(), nullable=True),
        _at("created_at"),
        _at("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_v2g_vehicles")),
    )
    op.create_index(
        "ix_v2g_vehicles_station", "v2g_vehicles", ["station_id", "evse_id"], unique=False
    )
    op.create_table(
        "v2g_prices",
        _at("interval_start"),
        sa.Column("interval_s", sa.Integer(), nullable=False),
        sa.Column("import_c_kwh", sa.Float(), nullable=False),
        sa.Column("export_c_kwh", sa.Float(), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        _at("updated_at"),
        sa.PrimaryKeyConstraint("interval_start", name=op.f("pk_v2g_prices")),
    )
    op.create_table(
        "v2g_plans",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("vehicle_id", sa.String(length=48), nullable=False),
        sa.Column("station_id", sa.String(length=48), nullable=True),
        sa.Column("evse_id", sa.Integer(), nullable=True),
        sa.Column("transaction_id", sa.String(length=36), nullable=True),
        _at("planned_at"),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.Column("plan", sa.JSON(), nullable=False),
        _at("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_v2g_plans")),
    )
    op.create_index("ix_v2g_plans_vehicle", "v2g_plans", ["vehicle_id", "id"], unique=False)
    op.create_index("ix_v2g_plans_station", "v2g_plans", ["station_id", "id"], unique=False)
    op.create_table(
        "v2g_dispatches",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        _at("started_at"),
        sa.Column("duration_s", sa.Integer(), nullable=False),
        sa.Column("requested_kw", sa.Float(), nullable=False),
        sa.Column("allocated_kw", sa.Float(), nullable=False),
        sa.Column("accepted_kw", sa.Float(), nullable=False),
        sa.Column("per_vehicle", sa.JSON(), nullable=False),
        _at("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_v2g_dispatches")),
    )
    op.create_index("ix_v2g_dispatches_started", "v2g_dispatches", ["started_at"], unique=False)
    op.create_table(
        "v2g_station_settings",
        sa.Column("station_id", sa.String(length=48), nullable=False),
        sa.Column("freq_watt_enabled", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("freq_watt_curve", sa.JSON(), nullable=True),
        sa.Column("emergency_backup", sa.Boolean(), server_default=sa.false(), nullable=False),
        _at("updated_at"),
        sa.PrimaryKeyConstraint("station_id", name=op.f("pk_v2g_station_settings")),
    )


def downgrade() -> None:
    op.drop_table("v2g_station_settings")
    op.drop_index("ix_v2g_dispatches_started", table_name="v2g_dispatches")
    op.drop_table("v2g_dispatches")
    op.drop_index("ix_v2g_plans_station", table_name="v2g_plans")
    op.drop_index("ix_v2g_plans_vehicle", table_name="v2g_plans")
    op.drop_table("v2g_plans")
    op.drop_table("v2g_prices")
    op.drop_index("ix_v2g_vehicles_station", table_name="v2g_vehicles")
    op.drop_table("v2g_vehicles")
