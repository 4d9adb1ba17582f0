"""csip_mirror_points, csip_subscriptions: the CSIP-AUS client's MirrorUsagePoints and its
subscriptions with their notification tokens (hashed) (issue 18)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 22:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "csip_mirror_points",
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=8), nullable=False),
        sa.Column("mrid", sa.String(length=32), nullable=False),
        sa.Column("href", sa.String(length=256), nullable=True),
        sa.Column("post_rate_s", sa.Integer(), nullable=True),
        sa.Column("last_period_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
            ondelete="CASCADE",
            name=op.f("fk_csip_mirror_points_site_id_sites"),
        ),
        sa.PrimaryKeyConstraint("site_id", "role", name=op.f("pk_csip_mirror_points")),
    )
    op.create_table(
        "csip_subscriptions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("resource_href", sa.String(length=256), nullable=False),
        sa.Column("list_href", sa.String(length=256), nullable=False),
        sa.Column("subscription_href", sa.String(length=256), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_notified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("notifications", sa.Integer(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
            ondelete="CASCADE",
            name=op.f("fk_csip_subscriptions_site_id_sites"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_csip_subscriptions")),
        sa.UniqueConstraint("token_sha256", name=op.f("uq_csip_subscriptions_token_sha256")),
        sa.UniqueConstraint("site_id", "resource_href", name=op.f("uq_csip_subscriptions_site_id")),
    )


def downgrade() -> None:
    op.drop_table("csip_subscriptions")
    op.drop_table("csip_mirror_points")
