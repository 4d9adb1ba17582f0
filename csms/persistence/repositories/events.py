"""Station events kept as history (notifications, status reports, security events, ...)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.domain.models import EventRecord, Page
from csms.persistence import tables as t
from csms.persistence.bulk import execute_many
from csms.persistence.database import RowWrite
from csms.persistence.repositories.mapper import TableMapper
from csms.persistence.repositories.statements import page

EVENTS = TableMapper(t.events, EventRecord, generated=("id",))

_EVENT_INSERT = t.events.insert()


def event_write(event: EventRecord) -> RowWrite:
    """`insert_event` as rows for `Database.write_rows`."""
    return RowWrite(_EVENT_INSERT, [EVENTS.values(event)])


async def insert_events(conn: AsyncConnection, events: Sequence[EventRecord]) -> None:
    """`insert_event` for many (one executemany; nothing for none)."""
    if events:
        rows = [EVENTS.values(e) for e in events]
        await execute_many(conn, _EVENT_INSERT, rows)


async def insert_event(conn: AsyncConnection, event: EventRecord) -> None:
    await conn.execute(t.events.insert().values(**EVENTS.values(event)))


async def list_events(
    conn: AsyncConnection, station_id: str, offset: int, limit: int, kind: str | None = None
) -> Page[EventRecord]:
    conds: list[Any] = [t.events.c.station_id == station_id]
    if kind is not None:
        conds.append(t.events.c.kind == kind)
    rows, total = await page(
        conn,
        t.events.select().where(*conds).order_by(t.events.c.id.desc()),
        sa.select(sa.func.count()).select_from(t.events).where(*conds),
        offset,
        limit,
    )
    return Page(EVENTS.records(rows), total, offset, limit)
