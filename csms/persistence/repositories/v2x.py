"""OCPP 2.1 DER: a station's grid-code curves (migration 0008); station events of the 2.1
kinds (DER alarms and reports, stored by the OCPP edge)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.persistence import tables as t
from csms.persistence import v2g_tables as v
from csms.persistence.repositories.statements import upsert


async def der_curve_settings(conn: AsyncConnection, station_id: str) -> dict[str, dict[str, Any]]:
    """Curve kind -> stored setting (DerCurveSetting.as_dict()) of the station."""
    c = v.der_curve_settings.c
    rows = await conn.execute(
        sa.select(c.kind, c.setting).where(c.station_id == station_id).order_by(c.kind)
    )
    return {kind: dict(setting) for kind, setting in rows.all()}


async def save_der_curve_setting(
    conn: AsyncConnection, station_id: str, kind: str, setting: dict[str, Any], now: datetime
) -> None:
    await upsert(
        conn,
        v.der_curve_settings,
        {"station_id": station_id, "kind": kind, "setting": setting, "updated_at": now},
        ("station_id", "kind"),
    )


async def delete_der_curve_setting(conn: AsyncConnection, station_id: str, kind: str) -> bool:
    c = v.der_curve_settings.c
    result = await conn.execute(
        v.der_curve_settings.delete().where(c.station_id == station_id, c.kind == kind)
    )
    return bool(result.rowcount)


async def station_events(
    conn: AsyncConnection, station_id: str, kinds: Sequence[str], limit: int
) -> list[tuple[int, str, datetime | None, datetime, dict[str, Any]]]:
    """(id, kind, timestamp, received_at, payload) of the station's events of these kinds,
    newest first, at most `limit`."""
    c = t.events.c
    q = (
        sa.select(c.id, c.kind, c.timestamp, c.received_at, c.payload)
        .where(c.station_id == station_id, c.kind.in_(list(kinds)))
        .order_by(c.id.desc())
        .limit(limit)
    )
    return [(r[0], r[1], r[2], r[3], r[4]) for r in (await conn.execute(q)).all()]


async def stations_with_freq_watt(conn: AsyncConnection) -> dict[str, list[list[float]]]:
    """Station id -> its frequency-watt curve, for the stations whose response is enabled."""
    c = v.v2g_station_settings.c
    rows = await conn.execute(
        sa.select(c.station_id, c.freq_watt_curve).where(
            c.freq_watt_enabled.is_(True), c.freq_watt_curve.is_not(None)
        )
    )
    return {station_id: list(curve) for station_id, curve in rows.all() if curve}
