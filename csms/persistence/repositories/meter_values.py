"""Meter values (each sample stored once)."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.domain.models import MeterSample, Page
from csms.persistence import tables as t
from csms.persistence.bulk import execute_many
from csms.persistence.database import RowWrite
from csms.persistence.repositories.mapper import TableMapper
from csms.persistence.repositories.statements import dialect_insert

METER_VALUES = TableMapper(t.meter_values, MeterSample, generated=("id",))


def _meter_rows(samples: Iterable[MeterSample]) -> list[dict[str, Any]]:
    return [METER_VALUES.values(s) for s in samples]


def meter_rows_on_evse(samples: Iterable[MeterSample], evse_id: int | None) -> list[dict[str, Any]]:
    """The rows of `samples`, those without an EVSE given `evse_id` (the transaction's): a
    key set in the row, not a dataclass copy per sample (that copy was a tenth of the
    writer's CPU per TransactionEvent)."""
    rows = _meter_rows(samples)
    if evse_id is not None:
        for row in rows:
            if row["evse_id"] is None:
                row["evse_id"] = evse_id
    return rows


@functools.lru_cache(maxsize=4)
def _insert_meter_once(dialect: str) -> Any:
    """A sample repeated (same station, transaction, EVSE, timestamp, measurand, phase,
    location, context) is stored once (issue 11 finding 8): the unique index
    uq_meter_values_sample decides; DO NOTHING without a target works on SQLite and
    PostgreSQL and meter_values has no other unique key than its generated id."""
    return dialect_insert(dialect, t.meter_values).on_conflict_do_nothing()


def meter_samples_write(dialect: str, samples: Iterable[MeterSample]) -> RowWrite:
    """`insert_meter_samples` as rows for `Database.write_rows`."""
    return RowWrite(_insert_meter_once(dialect), _meter_rows(samples))


async def insert_meter_samples(conn: AsyncConnection, samples: Iterable[MeterSample]) -> int:
    """Store samples (one executemany), each repeat of a stored one skipped; the number given."""
    return await insert_meter_rows(conn, _meter_rows(samples))


async def insert_meter_rows(conn: AsyncConnection, rows: list[dict[str, Any]]) -> int:
    """`insert_meter_samples` of rows already built (`meter_rows_on_evse`)."""
    if rows:
        await execute_many(conn, _insert_meter_once(conn.dialect.name), rows)
    return len(rows)


async def list_meter_samples(
    conn: AsyncConnection,
    station_id: str,
    transaction_id: str | None = None,
    limit: int = 10_000,
) -> list[MeterSample]:
    q = t.meter_values.select().where(t.meter_values.c.station_id == station_id)
    if transaction_id is not None:
        q = q.where(t.meter_values.c.transaction_id == transaction_id)
    q = q.order_by(t.meter_values.c.timestamp, t.meter_values.c.id).limit(limit)
    return METER_VALUES.records((await conn.execute(q)).all())


async def page_meter_samples(
    conn: AsyncConnection,
    station_id: str,
    *,
    transaction_id: str | None = None,
    measurand: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    offset: int = 0,
    limit: int = 50,
) -> Page[MeterSample]:
    """One page of a station's samples, oldest first, cut in the database: per transaction
    (index station_id, transaction_id, timestamp) or per time range (index station_id,
    timestamp), optionally one measurand. The total counts the same rows."""
    mv = t.meter_values
    where = [mv.c.station_id == station_id]
    if transaction_id is not None:
        where.append(mv.c.transaction_id == transaction_id)
    if measurand is not None:
        where.append(mv.c.measurand == measurand)
    if since is not None:
        where.append(mv.c.timestamp >= since)
    if until is not None:
        where.append(mv.c.timestamp < until)
    rows = await conn.execute(
        mv.select().where(*where).order_by(mv.c.timestamp, mv.c.id).offset(offset).limit(limit)
    )
    items = METER_VALUES.records(rows.all())
    if offset == 0 and len(items) < limit:
        total = len(items)  # the whole set fits this page: no count needed
    else:
        counted = sa.select(sa.func.count()).select_from(mv).where(*where)
        total = int((await conn.execute(counted)).scalar_one())
    return Page(items, total, offset, limit)
