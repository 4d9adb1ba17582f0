"""site_meters: the household meter of each site, its latest reading and the site base
(issue 18)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 01:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "site_meters",
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.Column("measured_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("grid_import_w", sa.Float(), nullable=False),
        sa.Column("load_w", sa.Float(), nullable=True),
        sa.Column("solar_w", sa.Float(), nullable=True),
        sa.Column("base_low_w", sa.Float(), nullable=False),
        sa.Column("base_high_w", sa.Float(), nullable=False),
        sa.Column("chargers_w", sa.Float(), nullable=False),
        sa.Column("unknown_stations", sa.Integer(), server_default="0", nullable=False),
        sa.Column("applied_charge_base_w", sa.Float(), nullable=True),
        sa.Column("applied_discharge_base_w", sa.Float(), nullable=True),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
            ondelete="CASCADE",
            name=op.f("fk_site_meters_site_id_sites"),
        ),
        sa.PrimaryKeyConstraint("site_id", name=op.f("pk_site_meters")),
    )


def downgrade() -> None:
    op.drop_table("site_meters")
