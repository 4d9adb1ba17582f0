"""v2g_rule_states: V2G rule state shared by every CSMS node (the under-frequency rule)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 03:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Starts empty: the first frequency sample writes the rule's row (state kept in process
    # memory before this revision is not carried over; an event in progress re-arms).
    op.create_table(
        "v2g_rule_states",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_v2g_rule_states")),
    )


def downgrade() -> None:
    op.drop_table("v2g_rule_states")
