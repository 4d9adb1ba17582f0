"""Charging profiles the CSMS set on stations (as the stations accepted them)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from csms.domain.models import ChargingProfileRecord
from csms.persistence import tables as t
from csms.persistence.repositories.mapper import TableMapper
from csms.persistence.repositories.statements import upsert

CHARGING_PROFILES = TableMapper(
    t.charging_profiles, ChargingProfileRecord, supplied=("updated_at",)
)


async def upsert_charging_profile(
    conn: AsyncConnection, record: ChargingProfileRecord, now: datetime
) -> None:
    await upsert(
        conn,
        t.charging_profiles,
        CHARGING_PROFILES.values(record, updated_at=now),
        ("station_id", "profile_id"),
    )


async def list_charging_profiles(
    conn: AsyncConnection, station_id: str, evse_id: int | None = None
) -> list[ChargingProfileRecord]:
    q = t.charging_profiles.select().where(t.charging_profiles.c.station_id == station_id)
    if evse_id is not None:
        q = q.where(t.charging_profiles.c.evse_id == evse_id)
    q = q.order_by(t.charging_profiles.c.evse_id, t.charging_profiles.c.profile_id)
    return CHARGING_PROFILES.records((await conn.execute(q)).all())


async def delete_charging_profiles(
    conn: AsyncConnection,
    station_id: str,
    *,
    profile_id: int | None = None,
    evse_id: int | None = None,
    purpose: str | None = None,
    stack_level: int | None = None,
) -> int:
    """ClearChargingProfile semantics: by id, or by every given criterion (K10)."""
    q = t.charging_profiles.delete().where(t.charging_profiles.c.station_id == station_id)
    if profile_id is not None:
        q = q.where(t.charging_profiles.c.profile_id == profile_id)
    else:
        if evse_id is not None:
            q = q.where(t.charging_profiles.c.evse_id == evse_id)
        if purpose is not None:
            q = q.where(t.charging_profiles.c.purpose == purpose)
        if stack_level is not None:
            q = q.where(t.charging_profiles.c.stack_level == stack_level)
    result = await conn.execute(q)
    return int(result.rowcount or 0)
