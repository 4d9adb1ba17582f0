"""csip_sites: the CSIP-AUS aggregator client's state per site (registration, hrefs, poll
rates, control records, the polling node's lease) (issue 18)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 22:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "csip_sites",
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("registration", sa.String(length=16), nullable=False),
        sa.Column("edev_href", sa.String(length=256), nullable=True),
        sa.Column("hrefs_json", sa.Text(), nullable=False),
        sa.Column("poll_rates_json", sa.Text(), nullable=False),
        sa.Column("clock_offset_s", sa.Float(), nullable=False),
        sa.Column("last_poll_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_poll_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("last_error_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("control_records_json", sa.Text(), nullable=False),
        sa.Column("active_controls_json", sa.Text(), nullable=False),
        sa.Column("lease_node", sa.String(length=128), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
            ondelete="CASCADE",
            name=op.f("fk_csip_sites_site_id_sites"),
        ),
        sa.PrimaryKeyConstraint("site_id", name=op.f("pk_csip_sites")),
    )


def downgrade() -> None:
    op.drop_table("csip_sites")
