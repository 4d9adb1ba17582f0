"""Per-station tariffs."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from csms.domain.models import Tariff
from csms.persistence import tables as t
from csms.persistence.repositories.mapper import TableMapper
from csms.persistence.repositories.statements import upsert

TARIFFS = TableMapper(t.tariffs, Tariff, supplied=("updated_at",))


async def upsert_tariff(conn: AsyncConnection, tariff: Tariff, now: datetime) -> None:
    await upsert(conn, t.tariffs, TARIFFS.values(tariff, updated_at=now), ("station_id",))


async def get_tariff(conn: AsyncConnection, station_id: str) -> Tariff | None:
    row = (
        await conn.execute(t.tariffs.select().where(t.tariffs.c.station_id == station_id))
    ).first()
    return TARIFFS.record(row) if row else None


async def delete_tariff(conn: AsyncConnection, station_id: str) -> bool:
    result = await conn.execute(t.tariffs.delete().where(t.tariffs.c.station_id == station_id))
    return bool(result.rowcount)
