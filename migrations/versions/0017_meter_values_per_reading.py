"""meter_values: one row per OCPP MeterValue, its sampled values packed in one column

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 01:40:00

Issue 17: one row per sampled value with four indexes was the write path's largest database
cost. The table becomes one row per (station, transaction, EVSE, timestamp): `sampled_values`
is a compact JSON array of [measurand, value, phase, location, context, unit] (trailing nulls
left out; csms/persistence/meter_packing.py), `sample_count` how many. Indexes:
ix_meter_values_station_tx (station_id, transaction_id, timestamp) for a transaction's values,
and the unique uq_meter_values_reading (station_id, timestamp, COALESCE(transaction_id, ''),
COALESCE(evse_id, -1)), the dedupe key that also serves a station's time range.

Upgrade groups the stored samples (0005 made each sample key unique, so no sample is lost or
doubled), in the order of their ids; a MeterValue's row takes the place of its first sample.
Downgrade unpacks every row back into one row per sampled value with 0005's indexes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 5000
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_READING_KEY = (
    "station_id",
    "timestamp",
    "COALESCE(transaction_id, '')",
    "COALESCE(evse_id, -1)",
)
# 0005's key (csms/persistence/tables.py before 0017).
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
_SAMPLE_FIELDS = ("measurand", "value", "phase", "location", "context", "unit")
_HEAD = ("station_id", "evse_id", "transaction_id", "timestamp")


def _per_sample_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("station_id", sa.String(48), nullable=False),
        sa.Column("evse_id", sa.Integer()),
        sa.Column("transaction_id", sa.String(36)),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("measurand", sa.String(50), nullable=False),
        sa.Column("phase", sa.String(8)),
        sa.Column("location", sa.String(8)),
        sa.Column("context", sa.String(24)),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("unit", sa.String(20)),
    ]


def _per_reading_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("station_id", sa.String(48), nullable=False),
        sa.Column("evse_id", sa.Integer()),
        sa.Column("transaction_id", sa.String(36)),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sample_count", sa.Integer(), nullable=False),
        sa.Column("sampled_values", sa.Text(), nullable=False),
    ]


def _set_aside(index_names: Sequence[str]) -> None:
    """Rename meter_values to meter_values_previous, its indexes dropped and (PostgreSQL) its
    primary key and id sequence renamed, so the new table takes every name."""
    for name in index_names:
        op.drop_index(name, table_name="meter_values")
    op.rename_table("meter_values", "meter_values_previous")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER INDEX pk_meter_values RENAME TO pk_meter_values_previous")
        op.execute(
            "ALTER SEQUENCE IF EXISTS meter_values_id_seq RENAME TO meter_values_previous_seq"
        )


def _create(columns: list[sa.Column[Any]]) -> sa.Table:
    """The new meter_values (its primary key named as 0001 named it)."""
    for column in columns:
        column.primary_key = False
    return op.create_table(
        "meter_values", *columns, sa.PrimaryKeyConstraint("id", name="pk_meter_values")
    )


def _chunks(rows: Iterator[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= _BATCH:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _pages(bind: sa.Connection, table: sa.Table, order: Sequence[str]) -> Iterator[Any]:
    """Every row of `table` in `order` (unique, ending with id), _BATCH at a time. PostgreSQL:
    by keyset, not a server-side cursor (that stays open until the transaction ends, and the
    table is dropped before). SQLite: one query read in steps (a timestamp's stored text need
    not be the form a bound one takes, so no keyset on it)."""
    columns = [table.c[name] for name in order]
    if bind.dialect.name == "sqlite":
        with bind.execute(
            sa.select(table).order_by(*columns).execution_options(yield_per=_BATCH)
        ) as result:
            yield from result
        return
    query = sa.select(table).order_by(*columns).limit(_BATCH)
    after: tuple[Any, ...] | None = None
    while True:
        page = query if after is None else query.where(sa.tuple_(*columns) > sa.tuple_(*after))
        rows = bind.execute(page).all()
        yield from rows
        if len(rows) < _BATCH:
            return
        after = tuple(getattr(rows[-1], name) for name in order)


def _packed(bind: sa.Connection, old: sa.Table) -> Iterator[dict[str, Any]]:
    """The old samples grouped per (station, timestamp, transaction, EVSE), in id order;
    the groups of one station and timestamp in the order of their first sample."""
    slice_key: tuple[Any, ...] | None = None
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in _pages(bind, old, ("station_id", "timestamp", "id")):
        if (r.station_id, r.timestamp) != slice_key:
            yield from groups.values()
            groups = {}
            slice_key = (r.station_id, r.timestamp)
        key = (r.transaction_id or "", -1 if r.evse_id is None else r.evse_id)
        group = groups.get(key)
        if group is None:
            group = groups[key] = {f: getattr(r, f) for f in _HEAD} | {"samples": []}
        sample = [getattr(r, f) for f in _SAMPLE_FIELDS]
        while sample[-1] is None:
            sample.pop()
        group["samples"].append(sample)
    yield from groups.values()


def upgrade() -> None:
    bind = op.get_bind()
    _set_aside(
        ["uq_meter_values_sample", "ix_meter_values_station_tx", "ix_meter_values_station_time"]
    )
    new = _create(_per_reading_columns())
    old = sa.Table("meter_values_previous", sa.MetaData(), *_per_sample_columns())
    for chunk in _chunks(_packed(bind, old)):
        bind.execute(
            new.insert(),
            [
                {f: g[f] for f in _HEAD}
                | {
                    "sample_count": len(g["samples"]),
                    "sampled_values": orjson.dumps(g["samples"]).decode(),
                }
                for g in chunk
            ],
        )
    op.drop_table("meter_values_previous")
    op.create_index(
        "ix_meter_values_station_tx",
        "meter_values",
        ["station_id", "transaction_id", "timestamp"],
        unique=False,
    )
    op.create_index(
        "uq_meter_values_reading",
        "meter_values",
        [sa.text(k) for k in _READING_KEY],
        unique=True,
    )


def _unpacked(bind: sa.Connection, old: sa.Table) -> Iterator[dict[str, Any]]:
    for r in _pages(bind, old, ("id",)):
        head = {f: getattr(r, f) for f in _HEAD}
        for sample in orjson.loads(r.sampled_values):
            padded = list(sample) + [None] * (len(_SAMPLE_FIELDS) - len(sample))
            yield head | dict(zip(_SAMPLE_FIELDS, padded, strict=True))


def downgrade() -> None:
    bind = op.get_bind()
    _set_aside(["uq_meter_values_reading", "ix_meter_values_station_tx"])
    new = _create(_per_sample_columns())
    old = sa.Table("meter_values_previous", sa.MetaData(), *_per_reading_columns())
    for chunk in _chunks(_unpacked(bind, old)):
        bind.execute(new.insert(), chunk)
    op.drop_table("meter_values_previous")
    op.create_index(
        "ix_meter_values_station_time", "meter_values", ["station_id", "timestamp"], unique=False
    )
    op.create_index(
        "ix_meter_values_station_tx", "meter_values", ["station_id", "transaction_id"], unique=False
    )
    op.create_index(
        "uq_meter_values_sample",
        "meter_values",
        [sa.text(k) for k in _SAMPLE_KEY],
        unique=True,
    )
