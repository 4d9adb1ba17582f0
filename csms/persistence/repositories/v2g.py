"""V2G repository functions: vehicles, prices, plans, dispatches, per-station settings and the
rule state the nodes share, plus the reads of the core tables the V2G services need. Each takes
an AsyncConnection (reads on `Database.read()`, writes inside `Database.write(op)`) and returns
records of `csms.domain.v2g_records`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.domain.models import TransactionState
from csms.domain.v2g_records import (
    DispatchRecord,
    PlanRecord,
    PriceRow,
    StationV2gSettings,
    VehicleRecord,
)
from csms.persistence import tables as t
from csms.persistence import v2g_tables as v
from csms.persistence.repositories.mapper import AS_BOOL, TableMapper
from csms.persistence.repositories.meter_values import holding_any, unpack_rows
from csms.persistence.repositories.statements import dialect_insert, upsert, upsert_statement
from csms.persistence.repositories.transactions import TRANSACTIONS

VEHICLES = TableMapper(v.v2g_vehicles, VehicleRecord, supplied=("created_at", "updated_at"))
PRICES = TableMapper(v.v2g_prices, PriceRow, supplied=("updated_at",))
PLANS = TableMapper(v.v2g_plans, PlanRecord, supplied=("reason", "created_at"), generated=("id",))
DISPATCHES = TableMapper(
    v.v2g_dispatches, DispatchRecord, supplied=("created_at",), generated=("id",)
)
STATION_SETTINGS = TableMapper(
    v.v2g_station_settings,
    StationV2gSettings,
    codecs={"freq_watt_enabled": AS_BOOL, "emergency_backup": AS_BOOL},
    supplied=("updated_at",),
)


# ---- vehicles ---------------------------------------------------------------------------------


async def save_vehicle(conn: AsyncConnection, record: VehicleRecord, now: datetime) -> None:
    values = VEHICLES.values(record, created_at=record.created_at or now, updated_at=now)
    await upsert(conn, v.v2g_vehicles, values, ("id",))


async def get_vehicle(conn: AsyncConnection, vehicle_id: str) -> VehicleRecord | None:
    row = (
        await conn.execute(v.v2g_vehicles.select().where(v.v2g_vehicles.c.id == vehicle_id))
    ).first()
    return VEHICLES.record(row) if row else None


async def list_vehicles(
    conn: AsyncConnection, station_id: str | None = None
) -> list[VehicleRecord]:
    q = v.v2g_vehicles.select().order_by(v.v2g_vehicles.c.id)
    if station_id is not None:
        q = q.where(v.v2g_vehicles.c.station_id == station_id)
    return VEHICLES.records((await conn.execute(q)).all())


async def delete_vehicle(conn: AsyncConnection, vehicle_id: str) -> bool:
    result = await conn.execute(v.v2g_vehicles.delete().where(v.v2g_vehicles.c.id == vehicle_id))
    return bool(result.rowcount)


# ---- prices -----------------------------------------------------------------------------------


async def save_prices(conn: AsyncConnection, rows: Sequence[PriceRow], now: datetime) -> int:
    """Insert or replace intervals by start, in one executemany."""
    values = [PRICES.values(row, updated_at=now) for row in rows]
    if values:
        stmt = upsert_statement(
            conn.dialect.name, v.v2g_prices.name, ("interval_start",), tuple(values[0])
        )
        await conn.execute(stmt, values)
    return len(values)


async def list_prices(
    conn: AsyncConnection, start: datetime | None, end: datetime | None, limit: int = 100_000
) -> list[PriceRow]:
    c = v.v2g_prices.c
    q = v.v2g_prices.select().order_by(c.interval_start).limit(limit)
    if start is not None:
        # An interval that began before `start` but still runs at `start` belongs in.
        q = q.where(c.interval_start > start - timedelta(days=1))
    if end is not None:
        q = q.where(c.interval_start < end)
    rows = PRICES.records((await conn.execute(q)).all())
    if start is not None:
        rows = [p for p in rows if p.interval_start + timedelta(seconds=p.interval_s) > start]
    return rows


async def prices_changed_at(conn: AsyncConnection) -> datetime | None:
    """When any stored price interval was last written (None = no prices): every node sees
    an upload made through any other."""
    found: datetime | None = (
        await conn.execute(sa.select(sa.func.max(v.v2g_prices.c.updated_at)))
    ).scalar()
    return found


# ---- plans ------------------------------------------------------------------------------------


async def insert_plan(conn: AsyncConnection, record: PlanRecord, now: datetime) -> int:
    result = await conn.execute(
        v.v2g_plans.insert().values(
            **PLANS.values(record, reason=(record.reason or "")[:200] or None, created_at=now)
        )
    )
    key = result.inserted_primary_key
    return int(key[0]) if key else 0


async def latest_plan(
    conn: AsyncConnection,
    *,
    station_id: str | None = None,
    vehicle_id: str | None = None,
    sent_only: bool = False,
) -> PlanRecord | None:
    c = v.v2g_plans.c
    q = v.v2g_plans.select().order_by(c.id.desc()).limit(1)
    if station_id is not None:
        q = q.where(c.station_id == station_id)
    if vehicle_id is not None:
        q = q.where(c.vehicle_id == vehicle_id)
    if sent_only:
        q = q.where(c.status == "Accepted")
    row = (await conn.execute(q)).first()
    return PLANS.record(row) if row else None


# ---- dispatches -------------------------------------------------------------------------------


async def insert_dispatch(conn: AsyncConnection, record: DispatchRecord, now: datetime) -> int:
    result = await conn.execute(
        v.v2g_dispatches.insert().values(**DISPATCHES.values(record, created_at=now))
    )
    key = result.inserted_primary_key
    return int(key[0]) if key else 0


async def list_dispatches(
    conn: AsyncConnection, start: datetime | None = None, end: datetime | None = None
) -> list[DispatchRecord]:
    c = v.v2g_dispatches.c
    q = v.v2g_dispatches.select().order_by(c.started_at, c.id)
    if start is not None:
        q = q.where(c.started_at >= start)
    if end is not None:
        q = q.where(c.started_at < end)
    return DISPATCHES.records((await conn.execute(q)).all())


# ---- per-station V2G settings -----------------------------------------------------------------


async def get_station_settings(conn: AsyncConnection, station_id: str) -> StationV2gSettings:
    c = v.v2g_station_settings.c
    row = (
        await conn.execute(v.v2g_station_settings.select().where(c.station_id == station_id))
    ).first()
    if row is None:
        return StationV2gSettings(station_id)
    return STATION_SETTINGS.record(row)


async def save_station_settings(
    conn: AsyncConnection, settings: StationV2gSettings, now: datetime
) -> None:
    await upsert(
        conn,
        v.v2g_station_settings,
        STATION_SETTINGS.values(settings, updated_at=now),
        ("station_id",),
    )


# ---- reads of the core tables the V2G services need -------------------------------------------


async def latest_measurand(
    conn: AsyncConnection,
    station_id: str,
    measurand: str,
    evse_id: int | None = None,
    transaction_id: str | None = None,
) -> tuple[datetime, float] | None:
    """The newest sampled value of `measurand` (the last of the newest row holding it)."""
    c = t.meter_values.c
    q = (
        sa.select(c.station_id, c.evse_id, c.transaction_id, c.timestamp, c.sampled_values, c.id)
        .where(c.station_id == station_id, holding_any([measurand]))
        .order_by(c.timestamp.desc(), c.id.desc())
    )
    if evse_id is not None:
        q = q.where(sa.or_(c.evse_id == evse_id, c.evse_id.is_(None)))
    if transaction_id is not None:
        q = q.where(c.transaction_id == transaction_id)
    row = (await conn.execute(q.limit(1))).first()
    if row is None:
        return None
    newest = unpack_rows([row], frozenset((measurand,)))[-1]
    return (newest.timestamp, newest.value)


async def samples_between(
    conn: AsyncConnection,
    station_id: str,
    measurands: Sequence[str],
    start: datetime | None,
    end: datetime | None,
    evse_id: int | None = None,
) -> list[tuple[datetime, str, float, str | None, str | None]]:
    """(timestamp, measurand, value, unit, transaction id) in time order, samples without a
    phase only."""
    c = t.meter_values.c
    q = (
        sa.select(c.station_id, c.evse_id, c.transaction_id, c.timestamp, c.sampled_values, c.id)
        .where(c.station_id == station_id, holding_any(measurands))
        .order_by(c.timestamp, c.id)
    )
    if start is not None:
        q = q.where(c.timestamp >= start)
    if end is not None:
        q = q.where(c.timestamp < end)
    if evse_id is not None:
        q = q.where(sa.or_(c.evse_id == evse_id, c.evse_id.is_(None)))
    return [
        (s.timestamp, s.measurand, s.value, s.unit, s.transaction_id)
        for s in unpack_rows((await conn.execute(q)).all(), frozenset(measurands))
        if not s.phase
    ]


async def soc_bounds_by_transaction(
    conn: AsyncConnection, station_id: str, transaction_ids: Sequence[str]
) -> dict[str, tuple[float, float]]:
    """Transaction id -> (first, last) SoC meter value (percent), for those that have one."""
    if not transaction_ids:
        return {}
    c = t.meter_values.c
    q = (
        sa.select(c.station_id, c.evse_id, c.transaction_id, c.timestamp, c.sampled_values, c.id)
        .where(
            c.station_id == station_id,
            c.transaction_id.in_(list(transaction_ids)),
            holding_any(["SoC"]),
        )
        .order_by(c.timestamp, c.id)
    )
    out: dict[str, tuple[float, float]] = {}
    for s in unpack_rows((await conn.execute(q)).all(), frozenset(("SoC",))):
        tx = s.transaction_id
        assert tx is not None
        first = out[tx][0] if tx in out else s.value
        out[tx] = (first, s.value)
    return out


async def latest_event(
    conn: AsyncConnection, station_id: str, kinds: Sequence[str]
) -> list[tuple[str, datetime, dict[str, Any]]]:
    """The station's events of these kinds, newest first (up to 200)."""
    c = t.events.c
    q = (
        sa.select(c.kind, c.received_at, c.payload)
        .where(c.station_id == station_id, c.kind.in_(list(kinds)))
        .order_by(c.id.desc())
        .limit(200)
    )
    return [(r[0], r[1], r[2]) for r in (await conn.execute(q)).all()]


async def active_transactions(
    conn: AsyncConnection, station_ids: Sequence[str] | set[str]
) -> dict[str, list[Any]]:
    """Station id -> its running transactions, newest first (domain Transaction objects)."""
    c = t.transactions.c
    q = (
        t.transactions.select()
        .where(c.state == TransactionState.ACTIVE.value, c.station_id.in_(sorted(station_ids)))
        .order_by(c.id.desc())
    )
    out: dict[str, list[Any]] = {}
    for tx in TRANSACTIONS.records((await conn.execute(q)).all()):
        out.setdefault(tx.station_id, []).append(tx)
    return out


async def station_transactions(
    conn: AsyncConnection, station_id: str, evse_id: int | None = None, limit: int = 500
) -> list[Any]:
    """The station's transactions, newest first (domain Transaction objects)."""
    c = t.transactions.c
    q = t.transactions.select().where(c.station_id == station_id).order_by(c.id.desc())
    if evse_id is not None:
        q = q.where(c.evse_id == evse_id)
    rows = (await conn.execute(q.limit(limit))).all()
    return TRANSACTIONS.records(rows)


# ---- rule state shared by the nodes -------------------------------------------------------------


def _insert_rule_once(dialect: str) -> Any:
    return dialect_insert(dialect, v.v2g_rule_states).on_conflict_do_nothing(
        index_elements=["name"]
    )


async def lock_rule_state(conn: AsyncConnection, name: str, now: datetime) -> dict[str, Any]:
    """Inside a write transaction: the rule's stored state ({} at first), with its row locked
    until the transaction ends (PostgreSQL: SELECT ... FOR UPDATE). The row is written first if
    missing; on SQLite that first statement is a write, so the transaction holds the database's
    write lock before it reads (no other node can change the state between read and write)."""
    await conn.execute(
        _insert_rule_once(conn.dialect.name), {"name": name, "state": {}, "updated_at": now}
    )
    c = v.v2g_rule_states.c
    state = (
        await conn.execute(sa.select(c.state).where(c.name == name).with_for_update())
    ).scalar_one()
    return dict(state)


async def save_rule_state(
    conn: AsyncConnection, name: str, state: dict[str, Any], now: datetime
) -> None:
    c = v.v2g_rule_states.c
    await conn.execute(
        v.v2g_rule_states.update().where(c.name == name).values(state=state, updated_at=now)
    )


async def get_rule_state(conn: AsyncConnection, name: str) -> dict[str, Any] | None:
    c = v.v2g_rule_states.c
    found = (await conn.execute(sa.select(c.state).where(c.name == name))).scalar()
    return None if found is None else dict(found)


async def active_transactions_at(
    conn: AsyncConnection, station_ids: Sequence[str]
) -> dict[tuple[str, int | None], str]:
    """(station id, EVSE id) -> the active transaction there, for the given stations."""
    c = t.transactions.c
    found: dict[tuple[str, int | None], str] = {}
    for start in range(0, len(station_ids), 500):  # bounded IN lists
        rows = await conn.execute(
            sa.select(c.station_id, c.evse_id, c.transaction_id).where(
                c.state == TransactionState.ACTIVE.value,
                c.station_id.in_(list(station_ids[start : start + 500])),
            )
        )
        for station_id, evse_id, transaction_id in rows:
            found[(station_id, evse_id)] = transaction_id
    return found
