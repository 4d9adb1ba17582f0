"""transactions keep a seqNo span and count instead of the seen list; repeated meter samples
stored once; the running transaction on an EVSE found by index

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 08:40:00

Issue 11 findings 6, 7 and 8:
- transactions.seen_seq_nos (a JSON list rewritten whole on every event) becomes first_seq_no
  and seq_count beside last_seq_no; the values come from transaction_events, which is what
  the retry check reads from now on. seqNo columns become BIGINT (any int64 fits).
- meter_values: duplicates removed (the first stored row of each key stays), then a unique
  expression index over the sample key, optional columns COALESCEd (NULLs never collide).
- ix_transactions_station_evse: the Active transaction(s) on an EVSE.

Downgrade rebuilds seen_seq_nos from transaction_events; removed duplicate samples stay
removed, and a seqNo beyond int32 stored meanwhile makes the PostgreSQL downgrade fail.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The same key as csms/persistence/tables.py METER_SAMPLE_KEY.
_SAMPLE_KEY = (
    "station_id",
    "COALESCE(transaction_id, '')",
    "COALESCE(evse_id, -1)",
    "timestamp",
    "measurand",
    "COALESCE(phase, '')",
    "COALESCE(location, '')",
    "COALESCE(context, '')",
)


def upgrade() -> None:
    with op.batch_alter_table("transactions") as batch:
        batch.add_column(sa.Column("first_seq_no", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("seq_count", sa.Integer(), nullable=False, server_default="0"))
        batch.alter_column("last_seq_no", type_=sa.BigInteger(), existing_nullable=True)
        batch.create_index(
            "ix_transactions_station_evse", ["station_id", "evse_id", "state"], unique=False
        )
    op.execute(
        """
        UPDATE transactions SET
            first_seq_no = (
                SELECT MIN(e.seq_no) FROM transaction_events e
                WHERE e.station_id = transactions.station_id
                AND e.transaction_id = transactions.transaction_id),
            seq_count = (
                SELECT COUNT(*) FROM transaction_events e
                WHERE e.station_id = transactions.station_id
                AND e.transaction_id = transactions.transaction_id)
        """
    )
    with op.batch_alter_table("transactions") as batch:
        batch.drop_column("seen_seq_nos")
    with op.batch_alter_table("transaction_events") as batch:
        batch.alter_column("seq_no", type_=sa.BigInteger(), existing_nullable=False)

    key = ", ".join(_SAMPLE_KEY)
    op.execute(
        "DELETE FROM meter_values WHERE id NOT IN "
        f"(SELECT MIN(id) FROM meter_values GROUP BY {key})"
    )
    op.create_index(
        "uq_meter_values_sample",
        "meter_values",
        [sa.text(k) for k in _SAMPLE_KEY],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("uq_meter_values_sample", table_name="meter_values")
    with op.batch_alter_table("transaction_events") as batch:
        batch.alter_column("seq_no", type_=sa.Integer(), existing_nullable=False)

    with op.batch_alter_table("transactions") as batch:
        batch.add_column(sa.Column("seen_seq_nos", sa.JSON(), nullable=True))
    bind = op.get_bind()
    events = sa.table(
        "transaction_events",
        sa.column("station_id", sa.String),
        sa.column("transaction_id", sa.String),
        sa.column("seq_no", sa.Integer),
    )
    seen: dict[tuple[str, str], list[int]] = {}
    query = sa.select(events.c.station_id, events.c.transaction_id, events.c.seq_no).order_by(
        events.c.station_id, events.c.transaction_id, events.c.seq_no
    )
    for station_id, transaction_id, seq_no in bind.execute(query):
        seen.setdefault((station_id, transaction_id), []).append(seq_no)
    transactions = sa.table(
        "transactions",
        sa.column("station_id", sa.String),
        sa.column("transaction_id", sa.String),
        sa.column("seen_seq_nos", sa.JSON),
    )
    bind.execute(transactions.update().values(seen_seq_nos=[]))
    if seen:
        bind.execute(
            transactions.update()
            .where(
                transactions.c.station_id == sa.bindparam("b_station"),
                transactions.c.transaction_id == sa.bindparam("b_tx"),
            )
            .values(seen_seq_nos=sa.bindparam("b_seen", type_=sa.JSON)),
            [{"b_station": s, "b_tx": tx, "b_seen": v} for (s, tx), v in seen.items()],
        )
    with op.batch_alter_table("transactions") as batch:
        batch.alter_column("seen_seq_nos", existing_type=sa.JSON(), nullable=False)
        batch.drop_index("ix_transactions_station_evse")
        batch.drop_column("seq_count")
        batch.drop_column("first_seq_no")
        batch.alter_column("last_seq_no", type_=sa.Integer(), existing_nullable=True)
