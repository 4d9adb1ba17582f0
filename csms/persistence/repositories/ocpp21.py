"""OCPP 2.1 data with a table of its own: periodic event streams and their values, and the
schedule updates held for Dynamic charging profiles."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.domain.models import DynamicScheduleUpdate, Page, PeriodicStream, PeriodicStreamValue
from csms.persistence import tables as t
from csms.persistence.repositories.mapper import TableMapper
from csms.persistence.repositories.statements import page, upsert

STREAMS = TableMapper(t.periodic_streams, PeriodicStream)
STREAM_VALUES = TableMapper(t.periodic_stream_values, PeriodicStreamValue, generated=("id",))
SCHEDULE_UPDATES = TableMapper(t.dynamic_schedule_updates, DynamicScheduleUpdate)


async def upsert_periodic_stream(conn: AsyncConnection, stream: PeriodicStream) -> None:
    """A stream (re)opened: a reused id replaces the old stream's description."""
    await upsert(conn, t.periodic_streams, STREAMS.values(stream), ("station_id", "stream_id"))


async def close_periodic_stream(
    conn: AsyncConnection, station_id: str, stream_id: int, now: datetime
) -> bool:
    table = t.periodic_streams
    result = await conn.execute(
        table.update()
        .where(table.c.station_id == station_id, table.c.stream_id == stream_id)
        .values(closed_at=now)
    )
    return bool(result.rowcount)


async def list_periodic_streams(conn: AsyncConnection, station_id: str) -> list[PeriodicStream]:
    table = t.periodic_streams
    rows = await conn.execute(
        table.select().where(table.c.station_id == station_id).order_by(table.c.stream_id)
    )
    return STREAMS.records(rows)


async def insert_stream_values(
    conn: AsyncConnection, values: Sequence[PeriodicStreamValue]
) -> None:
    if values:
        await conn.execute(
            t.periodic_stream_values.insert(), [STREAM_VALUES.values(v) for v in values]
        )


async def list_stream_values(
    conn: AsyncConnection,
    station_id: str,
    stream_id: int,
    offset: int,
    limit: int,
    since: datetime | None = None,
) -> Page[PeriodicStreamValue]:
    """Oldest first (a measurement series is read forwards)."""
    table = t.periodic_stream_values
    conds: list[Any] = [table.c.station_id == station_id, table.c.stream_id == stream_id]
    if since is not None:
        conds.append(table.c.timestamp >= since)
    rows, total = await page(
        conn,
        table.select().where(*conds).order_by(table.c.timestamp, table.c.id),
        sa.select(sa.func.count()).select_from(table).where(*conds),
        offset,
        limit,
    )
    return Page(STREAM_VALUES.records(rows), total, offset, limit)


async def upsert_schedule_update(conn: AsyncConnection, update: DynamicScheduleUpdate) -> None:
    await upsert(
        conn,
        t.dynamic_schedule_updates,
        SCHEDULE_UPDATES.values(update),
        ("station_id", "charging_profile_id"),
    )


async def get_schedule_update(
    conn: AsyncConnection, station_id: str, charging_profile_id: int
) -> DynamicScheduleUpdate | None:
    table = t.dynamic_schedule_updates
    row = (
        await conn.execute(
            table.select().where(
                table.c.station_id == station_id,
                table.c.charging_profile_id == charging_profile_id,
            )
        )
    ).first()
    return SCHEDULE_UPDATES.record(row) if row else None
