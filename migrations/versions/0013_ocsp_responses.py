"""ocsp_responses: Plug & Charge OCSP answers kept until their nextUpdate, shared by nodes

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 11:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ocsp_responses",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=True),
        sa.Column("this_update", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_update", sa.DateTime(timezone=True), nullable=True),
        sa.Column("verified", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_ocsp_responses")),
    )
    op.create_index("ix_ocsp_responses_until", "ocsp_responses", ["until"])


def downgrade() -> None:
    op.drop_index("ix_ocsp_responses_until", table_name="ocsp_responses")
    op.drop_table("ocsp_responses")
