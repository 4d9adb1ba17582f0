"""v2g_vehicles.v2g_enabled: V2G export switched on or off (the Home Assistant switch)

Revision ID: 0012
Revises: 0008
Create Date: 2026-12-06 03:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Vehicles registered before the switch existed keep exporting as they did.
    with op.batch_alter_table("v2g_vehicles") as batch:
        batch.add_column(
            sa.Column("v2g_enabled", sa.Boolean(), nullable=False, server_default=sa.true())
        )


def downgrade() -> None:
    with op.batch_alter_table("v2g_vehicles") as batch:
        batch.drop_column("v2g_enabled")
