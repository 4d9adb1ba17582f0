"""site_envelopes.ramp_time_s: a CSIP-AUS DERControl's rampTms in seconds (issue 18)

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 01:45:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("site_envelopes") as batch:
        batch.add_column(sa.Column("ramp_time_s", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("site_envelopes") as batch:
        batch.drop_column("ramp_time_s")
