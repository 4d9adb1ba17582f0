"""OCPP 2.1 core: stations.ocpp_version (negotiated) and stations.ocpp_versions (per-station
accepted versions); periodic event stream data; dynamic schedule updates

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 03:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _at(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Both NULL for existing stations: never connected under version tracking, and the
    # global setting applies (2.0.1 stations keep connecting as before).
    with op.batch_alter_table("stations") as batch:
        batch.add_column(sa.Column("ocpp_version", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("ocpp_versions", sa.String(length=40), nullable=True))
    op.create_table(
        "periodic_streams",
        sa.Column("station_id", sa.String(length=48), nullable=False),
        sa.Column("stream_id", sa.Integer(), nullable=False),
        sa.Column("variable_monitoring_id", sa.Integer(), nullable=False),
        sa.Column("interval_s", sa.Integer(), nullable=True),
        sa.Column("values_per_message", sa.Integer(), nullable=True),
        sa.Column("constant_data", sa.JSON(), nullable=False),
        _at("opened_at"),
        _at("closed_at", nullable=True),
        sa.PrimaryKeyConstraint("station_id", "stream_id", name=op.f("pk_periodic_streams")),
    )
    op.create_table(
        "periodic_stream_values",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("station_id", sa.String(length=48), nullable=False),
        sa.Column("stream_id", sa.Integer(), nullable=False),
        _at("timestamp"),
        sa.Column("value", sa.String(length=2500), nullable=False),
        _at("received_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_periodic_stream_values")),
    )
    op.create_index(
        "ix_periodic_stream_values_stream",
        "periodic_stream_values",
        ["station_id", "stream_id", "timestamp"],
    )
    op.create_table(
        "dynamic_schedule_updates",
        sa.Column("station_id", sa.String(length=48), nullable=False),
        sa.Column("charging_profile_id", sa.Integer(), nullable=False),
        sa.Column("schedule_update", sa.JSON(), nullable=False),
        _at("updated_at"),
        sa.PrimaryKeyConstraint(
            "station_id", "charging_profile_id", name=op.f("pk_dynamic_schedule_updates")
        ),
    )


def downgrade() -> None:
    op.drop_table("dynamic_schedule_updates")
    op.drop_index("ix_periodic_stream_values_stream", table_name="periodic_stream_values")
    op.drop_table("periodic_stream_values")
    op.drop_table("periodic_streams")
    with op.batch_alter_table("stations") as batch:
        batch.drop_column("ocpp_versions")
        batch.drop_column("ocpp_version")
