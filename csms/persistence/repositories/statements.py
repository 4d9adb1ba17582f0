"""SQL helpers the repository modules share: dialect inserts, cached upserts, pages."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.persistence import tables as t


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
