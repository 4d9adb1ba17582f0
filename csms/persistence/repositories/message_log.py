"""The OCPP message log (every frame in and out, pruned by age)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.domain.models import Direction, MessageLogEntry, Page
from csms.persistence import tables as t
from csms.persistence.database import RowWrite
from csms.persistence.repositories.mapper import TableMapper, stored_enum
from csms.persistence.repositories.statements import page

MESSAGE_LOG = TableMapper(
    t.message_log,
    MessageLogEntry,
    codecs={"direction": stored_enum(Direction)},
    generated=("id",),
)


def _log_rows(entries: Iterable[MessageLogEntry]) -> list[dict[str, Any]]:
    return [MESSAGE_LOG.values(e) for e in entries]


_LOG_INSERT = t.message_log.insert()


def log_entries_write(entries: Iterable[MessageLogEntry]) -> RowWrite:
    """`insert_log_entries` as rows for `Database.write_rows`."""
    return RowWrite(_LOG_INSERT, _log_rows(entries))


async def insert_log_entries(conn: AsyncConnection, entries: Iterable[MessageLogEntry]) -> None:
    rows = _log_rows(entries)
    if rows:
        await conn.execute(_LOG_INSERT, rows)


async def list_log_entries(
    conn: AsyncConnection, station_id: str, offset: int, limit: int
) -> Page[MessageLogEntry]:
    where = t.message_log.c.station_id == station_id
    rows, total = await page(
        conn,
        t.message_log.select().where(where).order_by(t.message_log.c.id.desc()),
        sa.select(sa.func.count()).select_from(t.message_log).where(where),
        offset,
        limit,
    )
    return Page(MESSAGE_LOG.records(rows), total, offset, limit)


async def sent_remote_starts(
    conn: AsyncConnection, station_id: str, since: datetime, limit: int = 50
) -> list[object]:
    """Payloads of the RequestStartTransaction CALLs sent to a station since `since`, newest
    first (every CSMS-initiated CALL is logged before it is sent)."""
    m = t.message_log.c
    rows = await conn.execute(
        sa.select(m.payload)
        .where(
            m.station_id == station_id,
            m.direction == Direction.OUT.value,
            m.kind == "CALL",
            m.action == "RequestStartTransaction",
            m.created_at >= since,
        )
        .order_by(m.id.desc())
        .limit(limit)
    )
    return [row[0] for row in rows]


async def prune_log(conn: AsyncConnection, before: datetime) -> int:
    result = await conn.execute(t.message_log.delete().where(t.message_log.c.created_at < before))
    return int(result.rowcount or 0)


async def prune_log_rows(conn: AsyncConnection, keep_per_station: int) -> int:
    """Keep the newest `keep_per_station` entries of each station; the number removed."""
    m = t.message_log.c
    over = await conn.execute(
        sa.select(m.station_id).group_by(m.station_id).having(sa.func.count() > keep_per_station)
    )
    removed = 0
    for (station_id,) in over.all():
        # The id of the oldest entry kept: everything of the station below it goes.
        oldest_kept = await conn.scalar(
            sa.select(m.id)
            .where(m.station_id == station_id)
            .order_by(m.id.desc())
            .offset(keep_per_station - 1)
            .limit(1)
        )
        if oldest_kept is None:
            continue
        result = await conn.execute(
            t.message_log.delete().where(m.station_id == station_id, m.id < oldest_kept)
        )
        removed += int(result.rowcount or 0)
    return removed
