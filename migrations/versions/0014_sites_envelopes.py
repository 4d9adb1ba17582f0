"""sites, site_stations, site_envelopes: grid connection points, their stations and their
operating envelopes (CSIP-AUS, issue 18)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 21:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sites",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("nmi", sa.String(length=11), nullable=True),
        sa.Column("lfdi", sa.String(length=40), nullable=True),
        sa.Column("sfdi", sa.BigInteger(), nullable=True),
        sa.Column("registration_pin", sa.Integer(), nullable=True),
        sa.Column("csip_enabled", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sites")),
        sa.UniqueConstraint("lfdi", name=op.f("uq_sites_lfdi")),
    )
    op.create_table(
        "site_stations",
        sa.Column("station_id", sa.String(length=48), nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["station_id"],
            ["stations.id"],
            ondelete="CASCADE",
            name=op.f("fk_site_stations_station_id_stations"),
        ),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
            ondelete="CASCADE",
            name=op.f("fk_site_stations_site_id_sites"),
        ),
        sa.PrimaryKeyConstraint("station_id", name=op.f("pk_site_stations")),
    )
    op.create_index("ix_site_stations_site_id", "site_stations", ["site_id"])
    op.create_table(
        "site_envelopes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("control_id", sa.String(length=64), nullable=True),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("export_limit_w", sa.Float(), nullable=True),
        sa.Column("import_limit_w", sa.Float(), nullable=True),
        sa.Column("generation_limit_w", sa.Float(), nullable=True),
        sa.Column("load_limit_w", sa.Float(), nullable=True),
        sa.Column("energize", sa.Boolean(), nullable=True),
        sa.Column("connect", sa.Boolean(), nullable=True),
        sa.Column("ramp_rate_pct_per_s", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
            ondelete="CASCADE",
            name=op.f("fk_site_envelopes_site_id_sites"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_site_envelopes")),
    )
    op.create_index("ix_site_envelopes_site_id", "site_envelopes", ["site_id", "source"])


def downgrade() -> None:
    op.drop_index("ix_site_envelopes_site_id", table_name="site_envelopes")
    op.drop_table("site_envelopes")
    op.drop_index("ix_site_stations_site_id", table_name="site_stations")
    op.drop_table("site_stations")
    op.drop_table("sites")
