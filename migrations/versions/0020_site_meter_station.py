"""sites.meter_station_id: the station whose evse-0 Inlet meter is the site's household meter
(issue 18)

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 05:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sites") as batch:
        batch.add_column(sa.Column("meter_station_id", sa.String(length=48), nullable=True))
        batch.create_index(op.f("ix_sites_meter_station_id"), ["meter_station_id"])


def downgrade() -> None:
    with op.batch_alter_table("sites") as batch:
        batch.drop_index(op.f("ix_sites_meter_station_id"))
        batch.drop_column("meter_station_id")
