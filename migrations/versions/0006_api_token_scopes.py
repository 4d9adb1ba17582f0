"""api_tokens.scope: read | operate | admin

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 08:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Tokens issued before scopes could do everything: they stay admin so that nothing an
    # operator relies on stops working; `csms token list` shows them to narrow down.
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(
            sa.Column("scope", sa.String(length=16), nullable=False, server_default="admin")
        )
    # New tokens get their scope from the code, never from a default.
    with op.batch_alter_table("api_tokens") as batch:
        batch.alter_column("scope", server_default=None)
        batch.create_check_constraint("scope", "scope IN ('read', 'operate', 'admin')")


def downgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_constraint(op.f("ck_api_tokens_scope"), type_="check")
        batch.drop_column("scope")
