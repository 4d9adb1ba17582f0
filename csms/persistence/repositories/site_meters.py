"""The household meters of the sites (site_meters): the latest reading per site with the base
computed from it, and the bases last applied, swapped compare-and-set so that one node only
re-sends for a change."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.domain.csip_telemetry import MAIN_METER_EVSE_ID, Sample
from csms.domain.inlet_meter import ENERGY_IMPORT, INLET_MEASURANDS
from csms.domain.site_meter import BaseInterval, MeterReading
from csms.persistence import tables as t
from csms.persistence.repositories.meter_values import holding_any, unpack_rows
from csms.persistence.site_meter_tables import site_meters

MAX_METERED_SITES = 10_000  # one check round reads at most this many
MAX_MAIN_METER_ROWS = 8  # the register readings before the newest: only the previous is used


@dataclass(frozen=True)
class StoredMeter:
    reading: MeterReading
    interval: BaseInterval
    applied: tuple[float, float] | None  # (charge base, discharge base) last re-sent with
    applied_at: datetime | None


def _stored(row: sa.Row[tuple[object, ...]]) -> StoredMeter:
    reading = MeterReading(
        site_id=row.site_id,
        measured_at=row.measured_at,
        received_at=row.received_at,
        source=row.source,
        grid_import_w=float(row.grid_import_w),
        load_w=row.load_w,
        solar_w=row.solar_w,
    )
    interval = BaseInterval(
        float(row.base_low_w),
        float(row.base_high_w),
        float(row.chargers_w),
        int(row.unknown_stations),
    )
    applied = None
    if row.applied_charge_base_w is not None and row.applied_discharge_base_w is not None:
        applied = (float(row.applied_charge_base_w), float(row.applied_discharge_base_w))
    return StoredMeter(reading, interval, applied, row.applied_at)


async def latest(conn: AsyncConnection, site_id: str) -> StoredMeter | None:
    row = (
        await conn.execute(sa.select(site_meters).where(site_meters.c.site_id == site_id))
    ).first()
    return None if row is None else _stored(row)


async def metered_site_ids(conn: AsyncConnection) -> list[str]:
    rows = await conn.execute(
        sa.select(site_meters.c.site_id).order_by(site_meters.c.site_id).limit(MAX_METERED_SITES)
    )
    return [str(r[0]) for r in rows]


async def save_reading(
    conn: AsyncConnection, reading: MeterReading, interval: BaseInterval
) -> bool:
    """Keep `reading` as the site's latest unless a newer one is stored (readings may arrive
    out of order, from several nodes). True when kept."""
    m = site_meters.c
    values = {
        "source": reading.source,
        "measured_at": reading.measured_at,
        "received_at": reading.received_at,
        "grid_import_w": reading.grid_import_w,
        "load_w": reading.load_w,
        "solar_w": reading.solar_w,
        "base_low_w": interval.low_w,
        "base_high_w": interval.high_w,
        "chargers_w": interval.chargers_w,
        "unknown_stations": interval.unknown_stations,
    }
    updated = await conn.execute(
        sa.update(site_meters)
        .where(m.site_id == reading.site_id, m.measured_at <= reading.measured_at)
        .values(**values)
    )
    if updated.rowcount:
        return True
    exists = (await conn.execute(sa.select(m.site_id).where(m.site_id == reading.site_id))).first()
    if exists is not None:
        return False  # a newer reading is stored
    await conn.execute(sa.insert(site_meters).values(site_id=reading.site_id, **values))
    return True


async def claim_applied(
    conn: AsyncConnection,
    site_id: str,
    seen_at: datetime | None,
    bases: tuple[float, float],
    now: datetime,
) -> bool:
    """Record `bases` as applied if nobody else did since `seen_at` (the applied_at this node
    read): True = this node re-sends."""
    m = site_meters.c
    condition = m.applied_at.is_(None) if seen_at is None else m.applied_at == seen_at
    result = await conn.execute(
        sa.update(site_meters)
        .where(m.site_id == site_id, condition)
        .values(applied_charge_base_w=bases[0], applied_discharge_base_w=bases[1], applied_at=now)
    )
    return bool(result.rowcount)


async def delete(conn: AsyncConnection, site_id: str) -> bool:
    result = await conn.execute(sa.delete(site_meters).where(site_meters.c.site_id == site_id))
    return bool(result.rowcount)


async def main_meter_registers(
    conn: AsyncConnection, station_id: str, since: datetime, until: datetime
) -> list[Sample]:
    """The station's evse-0 samples of csms.domain.inlet_meter's measurands in rows stamped in
    [since, until] that hold an energy register, the newest MAX_MAIN_METER_ROWS rows, oldest
    first (the register reading before the newest gives the mean power)."""
    mv = t.meter_values.c
    query = (
        sa.select(mv.station_id, mv.evse_id, mv.transaction_id, mv.timestamp)
        .add_columns(mv.sampled_values, mv.id)
        .where(
            mv.station_id == station_id,
            mv.evse_id == MAIN_METER_EVSE_ID,
            mv.timestamp >= since,
            mv.timestamp <= until,
            holding_any([ENERGY_IMPORT]),
        )
        .order_by(mv.timestamp.desc(), mv.id.desc())
        .limit(MAX_MAIN_METER_ROWS)
    )
    rows = list(reversed((await conn.execute(query)).all()))
    return [
        Sample(
            station_id=s.station_id,
            timestamp=s.timestamp,
            measurand=s.measurand,
            value=s.value,
            unit=s.unit,
            phase=s.phase,
            location=s.location,
            evse_id=s.evse_id,
        )
        for s in unpack_rows(rows, frozenset(INLET_MEASURANDS))
    ]
