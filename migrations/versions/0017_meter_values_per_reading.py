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
Downgrade unpacks every row back into one row per sampled value with 0005's indexes. Both are
one INSERT ... SELECT in the database (string aggregation on PostgreSQL, a window on SQLite),
not rows through the driver: large tables took minutes per million rows that way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

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


# A sampled value as meter_packing packs it, built in SQL: [measurand, value, phase, location,
# context, unit] without its trailing nulls, no spaces (so measurand_token finds it). The
# dialects differ in how a string is quoted and a float written; each writes a float exactly
# (orjson reads back the same double) and an integral one the way orjson does (7000.0).
_SQL = {
    "postgresql": {
        "quote": "to_json({})::text",
        # extra_float_digits > 0 (set by the upgrade): the shortest text that reads back exactly.
        "number": "CASE WHEN value = 0 THEN CASE WHEN value::text = '-0' THEN '-0.0' ELSE '0.0'"
        " END WHEN value = trunc(value) AND abs(value) <= 1e15"
        " THEN trunc(value)::bigint::text || '.0' ELSE value::text END",
    },
    "sqlite": {
        "quote": "json_quote({})",
        # SQLite's shorter forms do not always read back exactly (its printf and its number
        # parser round with a long double); 17 digits within +-1e16 and 18 beyond do.
        "number": "CASE WHEN value = CAST(value AS INTEGER) AND abs(value) <= 1e15"
        " THEN printf('%.1f', value) WHEN abs(value) < 1e16 THEN printf('%!.17g', value)"
        " ELSE printf('%!.18g', value) END",
    },
}


def _sample_sql(dialect: str) -> str:
    quote = _SQL[dialect]["quote"].format
    sql = "'[' || " + quote("measurand") + " || ',' || " + _SQL[dialect]["number"]
    optional = ("phase", "location", "context", "unit")
    for i, name in enumerate(optional):
        rest = ", ".join(optional[i:])
        present = f"COALESCE({rest}) IS NULL" if i < 3 else f"{name} IS NULL"
        sql += f" || CASE WHEN {present} THEN '' ELSE ',' || COALESCE({quote(name)}, 'null') END"
    return f"({sql} || ']')"


_GROUP = "station_id, timestamp, COALESCE(transaction_id, ''), COALESCE(evse_id, -1)"
_NEW_COLUMNS = "station_id, evse_id, transaction_id, timestamp, sample_count, sampled_values"
_OLD_COLUMNS = (
    "station_id, evse_id, transaction_id, timestamp, measurand, value, phase, location, context,"
    " unit"
)


def _pack_sql(dialect: str) -> str:
    """One INSERT ... SELECT: the old samples grouped per (station, timestamp, transaction,
    EVSE), each group's samples in id order, its head (transaction, EVSE) that of its first
    sample; rows written (ids given) in the order of (station, timestamp, first sample id),
    as the row-by-row upgrade wrote them."""
    sample = _sample_sql(dialect)
    if dialect == "postgresql":
        return (
            f"INSERT INTO meter_values ({_NEW_COLUMNS}) "
            "SELECT station_id, (array_agg(evse_id ORDER BY id))[1],"
            " (array_agg(transaction_id ORDER BY id))[1], timestamp, count(*),"
            f" '[' || string_agg({sample}, ',' ORDER BY id) || ']' "
            f"FROM meter_values_previous GROUP BY {_GROUP} "
            "ORDER BY station_id, timestamp, min(id)"
        )
    # SQLite (3.40) has no ORDER BY inside an aggregate: a window over each group gives the
    # order, and the group's first row carries the head.
    return (
        f"INSERT INTO meter_values ({_NEW_COLUMNS}) "
        "SELECT station_id, evse_id, transaction_id, timestamp, n, '[' || packed || ']' FROM ("
        " SELECT id, station_id, evse_id, transaction_id, timestamp,"
        "  row_number() OVER w AS position, count(*) OVER g AS n,"
        f"  group_concat({sample}, ',') OVER g AS packed"
        " FROM meter_values_previous"
        f" WINDOW w AS (PARTITION BY {_GROUP} ORDER BY id),"
        "  g AS (w ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)"
        ") WHERE position = 1 ORDER BY station_id, timestamp, id"
    )


def _unpack_sql(dialect: str) -> str:
    """One INSERT ... SELECT: every packed sampled value back as a row, in the order of
    (row id, position in the row)."""
    if dialect == "postgresql":
        fields = ", ".join(f"s ->> {i}" for i in (2, 3, 4, 5))
        return (
            f"INSERT INTO meter_values ({_OLD_COLUMNS}) "
            "SELECT r.station_id, r.evse_id, r.transaction_id, r.timestamp, s ->> 0,"
            f" (s ->> 1)::double precision, {fields} "
            "FROM meter_values_previous AS r"
            " CROSS JOIN LATERAL json_array_elements(r.sampled_values::json)"
            " WITH ORDINALITY AS e(s, n) "
            "ORDER BY r.id, e.n"
        )
    fields = ", ".join(f"json_extract(e.value, '$[{i}]')" for i in range(6))
    return (
        f"INSERT INTO meter_values ({_OLD_COLUMNS}) "
        f"SELECT r.station_id, r.evse_id, r.transaction_id, r.timestamp, {fields} "
        "FROM meter_values_previous AS r, json_each(r.sampled_values) AS e "
        "ORDER BY r.id, e.key"
    )


def upgrade() -> None:
    bind = op.get_bind()
    _set_aside(
        ["uq_meter_values_sample", "ix_meter_values_station_tx", "ix_meter_values_station_time"]
    )
    _create(_per_reading_columns())
    if bind.dialect.name == "postgresql":
        # float8 as text: shortest exact form (PostgreSQL 12+) whatever the session set
        op.execute("SELECT set_config('extra_float_digits', '1', true)")
    op.execute(_pack_sql(bind.dialect.name))
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


def downgrade() -> None:
    bind = op.get_bind()
    _set_aside(["uq_meter_values_reading", "ix_meter_values_station_tx"])
    _create(_per_sample_columns())
    op.execute(_unpack_sql(bind.dialect.name))
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
