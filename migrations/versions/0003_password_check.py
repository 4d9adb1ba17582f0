"""stations.password_check: the fast keyed password check beside the argon2id hash

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 02:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing stations start without one: their first argon2 verification writes it.
    with op.batch_alter_table("stations") as batch:
        batch.add_column(sa.Column("password_check", sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("stations") as batch:
        batch.drop_column("password_check")
