"""SQL helpers the repository modules share: dialect inserts, cached upserts, pages."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.persistence import tables as t

# The databases the repositories build statements for.
DIALECTS = ("sqlite", "postgresql")


def dialect_insert(dialect: str, table: sa.Table) -> Any:
    """The dialect's INSERT (the one that knows ON CONFLICT)."""
    return postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)


@functools.lru_cache(maxsize=256)
def upsert_statement(
    dialect: str, table_name: str, keys: tuple[str, ...], columns: tuple[str, ...]
) -> Any:
    """INSERT .. ON CONFLICT (keys) DO UPDATE, built once and executed with parameters
    (building it per call costs more CPU than running it)."""
    insert = dialect_insert(dialect, t.metadata.tables[table_name])
    update = {k: insert.excluded[k] for k in columns if k not in keys}
    return insert.on_conflict_do_update(index_elements=list(keys), set_=update)


async def upsert(
    conn: AsyncConnection, table: sa.Table, values: dict[str, Any], keys: Sequence[str]
) -> None:
    stmt = upsert_statement(conn.dialect.name, table.name, tuple(keys), tuple(values))
    await conn.execute(stmt, values)


async def page(
    conn: AsyncConnection, query: sa.Select[Any], count: sa.Select[Any], offset: int, limit: int
) -> tuple[list[sa.Row[Any]], int]:
    total = (await conn.execute(count)).scalar_one()
    rows = (await conn.execute(query.offset(offset).limit(limit))).all()
    return list(rows), int(total)


class KeyTable:
    """A table of composite keys sent as parameters, to join on.

    A read of N (station, transaction) keys as `station IN (..) AND transaction IN (..)` probes
    the index for every combination: N x N probes (a batch of 250 TransactionEvents: 14 ms on
    SQLite instead of 1). Joined to this table it is N probes. SQLite: one JSON array of
    arrays unpacked by json_each; PostgreSQL: one array per column, unnested together. A fixed
    set of parameters, so a statement using it compiles once whatever N."""

    def __init__(self, name: str, columns: Sequence[tuple[str, sa.types.TypeEngine[Any]]]):
        self.name = name
        self.columns = tuple(columns)

    def table(self, dialect: str) -> sa.FromClause:
        if dialect == "postgresql":
            arrays = [
                sa.cast(sa.bindparam(f"{self.name}_{i}"), postgresql.ARRAY(type_))
                for i, (_, type_) in enumerate(self.columns)
            ]
            return (
                sa.func.unnest(*arrays)
                .table_valued(*(sa.column(column, type_) for column, type_ in self.columns))
                .render_derived(name=self.name)
            )
        each = sa.func.json_each(sa.bindparam(self.name)).table_valued("value")
        return sa.select(
            *(
                sa.func.json_extract(
                    each.c.value, sa.literal_column(f"'$[{i}]'"), type_=type_
                ).label(column)
                for i, (column, type_) in enumerate(self.columns)
            )
        ).subquery(self.name)

    def probe(
        self,
        dialect: str,
        joined: sa.FromClause,
        table: sa.Table,
        match: sa.ColumnElement[bool],
        *,
        outer: bool,
    ) -> tuple[sa.FromClause, sa.FromClause]:
        """`joined` (this key table, or it already joined to others) joined to the rows of
        `table` that `match` a key, and what to select those rows' columns from. One index
        probe per key whatever the tables' sizes: on PostgreSQL the rows are a LATERAL
        subquery per key (OFFSET 0 keeps the planner from flattening it back into a join), so
        every plan is a nested loop. With a plain join, a prepared statement's cached plan,
        made while `table` was small, hashed the whole table at every execution as it grew
        (the batch read: 2.2 ms a call at 30,000 transactions instead of 0.3). SQLite's planner
        keeps the keys as the outer loop (the plan tests hold it to that)."""
        if dialect == "postgresql":
            rows = sa.select(table).where(match).offset(sa.literal_column("0"))
            lateral = rows.lateral(f"{self.name}_{table.name}")
            return joined.join(lateral, sa.true(), isouter=outer), lateral
        return joined.join(table, match, isouter=outer), table

    def params(self, dialect: str, keys: Sequence[Sequence[Any]]) -> dict[str, Any]:
        """The parameters holding `keys` (tuples in the columns' order)."""
        if dialect == "postgresql":
            return {f"{self.name}_{i}": [key[i] for key in keys] for i in range(len(self.columns))}
        return {self.name: orjson.dumps([list(key) for key in keys]).decode()}
