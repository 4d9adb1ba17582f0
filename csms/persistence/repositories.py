"""Repository functions: each takes an AsyncConnection and returns domain objects.

Reads run on `Database.read()` connections; writes are composed by services into one op and
run through `Database.write()` (the group commit), so one station message = one op.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.domain.models import (
    ApiScope,
    ApiToken,
    BootInfo,
    BootPolicy,
    CertificateRecord,
    ChargingProfileRecord,
    Connector,
    DeviceVariable,
    Direction,
    EventRecord,
    Evse,
    IdToken,
    IdTokenStatus,
    MessageLogEntry,
    MeterSample,
    Page,
    RegistrationStatus,
    SecurityProfile,
    Station,
    StoredPassword,
    Tariff,
    Transaction,
    TransactionEvent,
    TransactionState,
)
from csms.persistence import tables as t
from csms.persistence.database import RowWrite


def _insert(conn: AsyncConnection, table: sa.Table) -> Any:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


@functools.lru_cache(maxsize=256)
def _upsert_statement(
    dialect: str, table_name: str, keys: tuple[str, ...], columns: tuple[str, ...]
) -> Any:
    """INSERT .. ON CONFLICT (keys) DO UPDATE, built once and executed with parameters
    (building it per call costs more CPU than running it)."""
    table = t.metadata.tables[table_name]
    insert = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    update = {k: insert.excluded[k] for k in columns if k not in keys}
    return insert.on_conflict_do_update(index_elements=list(keys), set_=update)


async def _upsert(
    conn: AsyncConnection, table: sa.Table, values: dict[str, Any], keys: Sequence[str]
) -> None:
    stmt = _upsert_statement(conn.dialect.name, table.name, tuple(keys), tuple(values))
    await conn.execute(stmt, values)


async def _page(
    conn: AsyncConnection, query: sa.Select[Any], count: sa.Select[Any], offset: int, limit: int
) -> tuple[list[sa.Row[Any]], int]:
    total = (await conn.execute(count)).scalar_one()
    rows = (await conn.execute(query.offset(offset).limit(limit))).all()
    return list(rows), int(total)


# ---- stations ---------------------------------------------------------------------------------


def _station(row: sa.Row[Any]) -> Station:
    m = row._mapping
    return Station(
        id=m["id"],
        security_profile=SecurityProfile(m["security_profile"]),
        boot_policy=BootPolicy(m["boot_policy"]),
        registration_status=RegistrationStatus(m["registration_status"]),
        has_password=m["password_hash"] is not None,
        vendor_name=m["vendor_name"],
        model=m["model"],
        serial_number=m["serial_number"],
        firmware_version=m["firmware_version"],
        last_boot_at=m["last_boot_at"],
        last_heartbeat_at=m["last_heartbeat_at"],
        created_at=m["created_at"],
    )


async def insert_station(
    conn: AsyncConnection,
    station_id: str,
    password: StoredPassword | None,
    security_profile: SecurityProfile,
    boot_policy: BootPolicy,
    now: datetime,
) -> None:
    await conn.execute(
        t.stations.insert().values(
            id=station_id,
            password_hash=password.hash if password else None,
            password_check=password.check if password else None,
            security_profile=int(security_profile),
            boot_policy=boot_policy.value,
            registration_status=RegistrationStatus.UNKNOWN.value,
            created_at=now,
            updated_at=now,
        )
    )


# Built once: building a select per call costs more CPU than running it (connect storms).
_STATION_BY_ID = t.stations.select().where(t.stations.c.id == sa.bindparam("b_station_id"))


async def get_station(conn: AsyncConnection, station_id: str) -> Station | None:
    row = (await conn.execute(_STATION_BY_ID, {"b_station_id": station_id})).first()
    return _station(row) if row else None


_STATIONS_BY_IDS = t.stations.select().where(
    t.stations.c.id.in_(sa.bindparam("b_station_ids", expanding=True))
)


def _stored_password(row: sa.Row[Any]) -> StoredPassword | None:
    mapping = row._mapping
    if mapping["password_hash"] is None:
        return None
    return StoredPassword(mapping["password_hash"], mapping["password_check"])


async def get_stations_for_admission(
    conn: AsyncConnection, station_ids: Sequence[str]
) -> dict[str, tuple[Station, StoredPassword | None]]:
    """`get_station_for_admission` for many stations in one read (a connect storm)."""
    rows = await conn.execute(_STATIONS_BY_IDS, {"b_station_ids": list(station_ids)})
    return {row._mapping["id"]: (_station(row), _stored_password(row)) for row in rows}


async def get_station_for_admission(
    conn: AsyncConnection, station_id: str
) -> tuple[Station, StoredPassword | None] | None:
    """The station and its stored password in one read (the websocket handshake)."""
    row = (await conn.execute(_STATION_BY_ID, {"b_station_id": station_id})).first()
    return (_station(row), _stored_password(row)) if row else None


async def get_station_auth(
    conn: AsyncConnection, station_id: str
) -> tuple[SecurityProfile, StoredPassword | None] | None:
    """Security profile and stored password."""
    row = (await conn.execute(_STATION_BY_ID, {"b_station_id": station_id})).first()
    if row is None:
        return None
    return SecurityProfile(row._mapping["security_profile"]), _stored_password(row)


async def set_password_check(
    conn: AsyncConnection, station_id: str, password_hash: str, check: str
) -> bool:
    """Store a check made after an argon2 verification, unless the hash changed meanwhile."""
    result = await conn.execute(
        t.stations.update()
        .where(t.stations.c.id == station_id, t.stations.c.password_hash == password_hash)
        .values(password_check=check)
    )
    return bool(result.rowcount)


async def list_stations(conn: AsyncConnection, offset: int, limit: int) -> Page[Station]:
    rows, total = await _page(
        conn,
        t.stations.select().order_by(t.stations.c.id),
        sa.select(sa.func.count()).select_from(t.stations),
        offset,
        limit,
    )
    return Page([_station(r) for r in rows], total, offset, limit)


async def update_station(conn: AsyncConnection, station_id: str, **values: Any) -> bool:
    result = await conn.execute(
        t.stations.update().where(t.stations.c.id == station_id).values(**values)
    )
    return bool(result.rowcount)


async def delete_station(conn: AsyncConnection, station_id: str) -> bool:
    # Rows keyed by station without a foreign key go explicitly (history tables stay lean).
    for table in (
        t.transaction_events,
        t.meter_values,
        t.message_log,
        t.device_variables,
        t.charging_profiles,
        t.events,
        t.certificates,
        t.connectors,
    ):
        await conn.execute(table.delete().where(table.c.station_id == station_id))
    result = await conn.execute(t.stations.delete().where(t.stations.c.id == station_id))
    return bool(result.rowcount)


async def record_boot(
    conn: AsyncConnection,
    station_id: str,
    info: BootInfo,
    status: RegistrationStatus,
    now: datetime,
) -> None:
    await conn.execute(
        t.stations.update()
        .where(t.stations.c.id == station_id)
        .values(
            vendor_name=info.vendor_name,
            model=info.model,
            serial_number=info.serial_number,
            firmware_version=info.firmware_version,
            registration_status=status.value,
            last_boot_at=now,
            last_heartbeat_at=now,
            updated_at=now,
        )
    )


_BOOT = (
    t.stations.update()
    .where(t.stations.c.id == sa.bindparam("b_station_id"))
    .values(
        vendor_name=sa.bindparam("b_vendor_name"),
        model=sa.bindparam("b_model"),
        serial_number=sa.bindparam("b_serial_number"),
        firmware_version=sa.bindparam("b_firmware_version"),
        registration_status=sa.bindparam("b_registration_status"),
        last_boot_at=sa.bindparam("b_now"),
        last_heartbeat_at=sa.bindparam("b_now"),
        updated_at=sa.bindparam("b_now"),
    )
)


def boot_write(
    station_id: str, info: BootInfo, status: RegistrationStatus, now: datetime
) -> RowWrite:
    """`record_boot` as rows for `Database.write_rows` (one executemany per batch)."""
    return RowWrite(
        _BOOT,
        [
            {
                "b_station_id": station_id,
                "b_vendor_name": info.vendor_name,
                "b_model": info.model,
                "b_serial_number": info.serial_number,
                "b_firmware_version": info.firmware_version,
                "b_registration_status": status.value,
                "b_now": now,
            }
        ],
    )


async def record_heartbeat(conn: AsyncConnection, station_id: str, now: datetime) -> None:
    await conn.execute(
        t.stations.update().where(t.stations.c.id == station_id).values(last_heartbeat_at=now)
    )


_HEARTBEAT = (
    t.stations.update()
    .where(t.stations.c.id == sa.bindparam("b_station_id"))
    .values(last_heartbeat_at=sa.bindparam("b_now"))
)


def heartbeat_write(station_id: str, now: datetime) -> RowWrite:
    """`record_heartbeat` as rows for `Database.write_rows` (one executemany per batch)."""
    return RowWrite(_HEARTBEAT, [{"b_station_id": station_id, "b_now": now}])


# ---- EVSEs and connectors ---------------------------------------------------------------------


async def upsert_connector_status(
    conn: AsyncConnection,
    station_id: str,
    evse_id: int,
    connector_id: int,
    status: str,
    now: datetime,
) -> None:
    await _upsert(
        conn,
        t.evses,
        {"station_id": station_id, "evse_id": evse_id, "updated_at": now},
        ("station_id", "evse_id"),
    )
    await _upsert(
        conn,
        t.connectors,
        {
            "station_id": station_id,
            "evse_id": evse_id,
            "connector_id": connector_id,
            "status": status,
            "updated_at": now,
        },
        ("station_id", "evse_id", "connector_id"),
    )


_EVSE_COLUMNS = ("station_id", "evse_id", "updated_at")
_CONNECTOR_COLUMNS = ("station_id", "evse_id", "connector_id", "status", "updated_at")


def connector_status_writes(
    dialect: str, station_id: str, evse_id: int, connector_id: int, status: str, now: datetime
) -> tuple[RowWrite, RowWrite]:
    """`upsert_connector_status` as rows for `Database.write_rows`."""
    return (
        RowWrite(
            _upsert_statement(dialect, "evses", _EVSE_COLUMNS[:2], _EVSE_COLUMNS),
            [{"station_id": station_id, "evse_id": evse_id, "updated_at": now}],
        ),
        RowWrite(
            _upsert_statement(dialect, "connectors", _CONNECTOR_COLUMNS[:3], _CONNECTOR_COLUMNS),
            [
                {
                    "station_id": station_id,
                    "evse_id": evse_id,
                    "connector_id": connector_id,
                    "status": status,
                    "updated_at": now,
                }
            ],
        ),
    )


async def list_evses(conn: AsyncConnection, station_id: str) -> list[Evse]:
    evse_rows = (
        await conn.execute(
            sa.select(t.evses.c.evse_id)
            .where(t.evses.c.station_id == station_id)
            .order_by(t.evses.c.evse_id)
        )
    ).all()
    conn_rows = (
        await conn.execute(
            t.connectors.select()
            .where(t.connectors.c.station_id == station_id)
            .order_by(t.connectors.c.evse_id, t.connectors.c.connector_id)
        )
    ).all()
    by_evse: dict[int, list[Connector]] = {r[0]: [] for r in evse_rows}
    for r in conn_rows:
        m = r._mapping
        by_evse.setdefault(m["evse_id"], []).append(
            Connector(station_id, m["evse_id"], m["connector_id"], m["status"], m["updated_at"])
        )
    return [Evse(station_id, evse_id, tuple(cs)) for evse_id, cs in sorted(by_evse.items())]


# ---- id tokens --------------------------------------------------------------------------------


def _id_token(row: sa.Row[Any]) -> IdToken:
    m = row._mapping
    return IdToken(
        id_token=m["id_token"],
        type=m["type"],
        status=IdTokenStatus(m["status"]),
        expires_at=m["expires_at"],
        group_id_token=m["group_id_token"],
        created_at=m["created_at"],
    )


async def upsert_id_token(conn: AsyncConnection, token: IdToken, now: datetime) -> None:
    await _upsert(
        conn,
        t.id_tokens,
        {
            "id_token": token.id_token,
            "type": token.type,
            "status": token.status.value,
            "expires_at": token.expires_at,
            "group_id_token": token.group_id_token,
            "created_at": token.created_at or now,
        },
        ("id_token", "type"),
    )


async def get_id_token(conn: AsyncConnection, id_token: str, type_: str) -> IdToken | None:
    row = (
        await conn.execute(
            t.id_tokens.select().where(
                t.id_tokens.c.id_token == id_token, t.id_tokens.c.type == type_
            )
        )
    ).first()
    return _id_token(row) if row else None


async def list_id_tokens(conn: AsyncConnection, offset: int, limit: int) -> Page[IdToken]:
    rows, total = await _page(
        conn,
        t.id_tokens.select().order_by(t.id_tokens.c.id_token, t.id_tokens.c.type),
        sa.select(sa.func.count()).select_from(t.id_tokens),
        offset,
        limit,
    )
    return Page([_id_token(r) for r in rows], total, offset, limit)


async def set_id_token_status(
    conn: AsyncConnection, id_token: str, type_: str, status: IdTokenStatus
) -> bool:
    result = await conn.execute(
        t.id_tokens.update()
        .where(t.id_tokens.c.id_token == id_token, t.id_tokens.c.type == type_)
        .values(status=status.value)
    )
    return bool(result.rowcount)


async def delete_id_token(conn: AsyncConnection, id_token: str, type_: str) -> bool:
    result = await conn.execute(
        t.id_tokens.delete().where(t.id_tokens.c.id_token == id_token, t.id_tokens.c.type == type_)
    )
    return bool(result.rowcount)


# ---- API tokens -------------------------------------------------------------------------------


def _api_token(row: sa.Row[Any]) -> ApiToken:
    m = row._mapping
    return ApiToken(
        id=m["id"],
        name=m["name"],
        created_at=m["created_at"],
        revoked_at=m["revoked_at"],
        scope=ApiScope(m["scope"]),
    )


async def insert_api_token(
    conn: AsyncConnection, name: str, token_hash: str, now: datetime, scope: ApiScope
) -> ApiToken:
    result = await conn.execute(
        t.api_tokens.insert()
        .values(name=name, token_hash=token_hash, created_at=now, scope=scope.value)
        .returning(t.api_tokens.c.id)
    )
    return ApiToken(id=result.scalar_one(), name=name, created_at=now, scope=scope)


async def get_api_token_by_hash(conn: AsyncConnection, token_hash: str) -> ApiToken | None:
    row = (
        await conn.execute(t.api_tokens.select().where(t.api_tokens.c.token_hash == token_hash))
    ).first()
    return _api_token(row) if row else None


async def list_api_tokens(conn: AsyncConnection) -> list[ApiToken]:
    rows = (await conn.execute(t.api_tokens.select().order_by(t.api_tokens.c.id))).all()
    return [_api_token(r) for r in rows]


async def revoke_api_token(conn: AsyncConnection, token_id: int, now: datetime) -> bool:
    result = await conn.execute(
        t.api_tokens.update()
        .where(t.api_tokens.c.id == token_id, t.api_tokens.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return bool(result.rowcount)


async def revoke_api_tokens_named(conn: AsyncConnection, name: str, now: datetime) -> int:
    result = await conn.execute(
        t.api_tokens.update()
        .where(t.api_tokens.c.name == name, t.api_tokens.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return int(result.rowcount or 0)


# ---- tariffs ----------------------------------------------------------------------------------


async def upsert_tariff(conn: AsyncConnection, tariff: Tariff, now: datetime) -> None:
    await _upsert(
        conn,
        t.tariffs,
        {
            "station_id": tariff.station_id,
            "currency": tariff.currency,
            "price_per_kwh": tariff.price_per_kwh,
            "price_per_hour": tariff.price_per_hour,
            "updated_at": now,
        },
        ("station_id",),
    )


async def get_tariff(conn: AsyncConnection, station_id: str) -> Tariff | None:
    row = (
        await conn.execute(t.tariffs.select().where(t.tariffs.c.station_id == station_id))
    ).first()
    if row is None:
        return None
    m = row._mapping
    return Tariff(station_id, m["currency"], m["price_per_kwh"], m["price_per_hour"])


async def delete_tariff(conn: AsyncConnection, station_id: str) -> bool:
    result = await conn.execute(t.tariffs.delete().where(t.tariffs.c.station_id == station_id))
    return bool(result.rowcount)


# ---- transactions -----------------------------------------------------------------------------


def _transaction(row: sa.Row[Any]) -> Transaction:
    m = row._mapping
    return Transaction(
        station_id=m["station_id"],
        transaction_id=m["transaction_id"],
        state=TransactionState(m["state"]),
        evse_id=m["evse_id"],
        connector_id=m["connector_id"],
        id_token=m["id_token"],
        id_token_type=m["id_token_type"],
        started_at=m["started_at"],
        ended_at=m["ended_at"],
        stopped_reason=m["stopped_reason"],
        first_seq_no=m["first_seq_no"],
        last_seq_no=m["last_seq_no"],
        seq_count=m["seq_count"],
        charging_state=m["charging_state"],
        total_cost=m["total_cost"],
        offline_seen=bool(m["offline_seen"]),
        started_unseen=bool(m["started_unseen"]),
        energy_start_wh=m["energy_start_wh"],
        energy_last_wh=m["energy_last_wh"],
        updated_at=m["updated_at"],
    )


async def get_transaction(
    conn: AsyncConnection, station_id: str, transaction_id: str
) -> Transaction | None:
    row = (
        await conn.execute(
            t.transactions.select().where(
                t.transactions.c.station_id == station_id,
                t.transactions.c.transaction_id == transaction_id,
            )
        )
    ).first()
    return _transaction(row) if row else None


async def get_transaction_and_tariff(
    conn: AsyncConnection, station_id: str, transaction_id: str
) -> tuple[Transaction | None, Tariff | None]:
    """Both in one round trip (the TransactionEvent hot path needs both)."""
    tx, tariff = t.transactions, t.tariffs
    query = (
        sa.select(tx, tariff.c.currency, tariff.c.price_per_kwh, tariff.c.price_per_hour)
        .select_from(
            t.stations.outerjoin(
                tx,
                sa.and_(tx.c.station_id == t.stations.c.id, tx.c.transaction_id == transaction_id),
            ).outerjoin(tariff, tariff.c.station_id == t.stations.c.id)
        )
        .where(t.stations.c.id == station_id)
    )
    row = (await conn.execute(query)).first()
    if row is None:
        return None, None
    m = row._mapping
    found = _transaction(row) if m["transaction_id"] is not None else None
    rate = (
        Tariff(station_id, m["currency"], m["price_per_kwh"], m["price_per_hour"])
        if m["currency"] is not None
        else None
    )
    return found, rate


_TX_AND_TARIFF_BY_KEYS = (
    sa.select(
        t.stations.c.id.label("b_station"),
        t.transactions,
        t.tariffs.c.currency,
        t.tariffs.c.price_per_kwh,
        t.tariffs.c.price_per_hour,
    )
    .select_from(
        t.stations.outerjoin(
            t.transactions,
            sa.and_(
                t.transactions.c.station_id == t.stations.c.id,
                t.transactions.c.transaction_id.in_(sa.bindparam("b_transactions", expanding=True)),
            ),
        ).outerjoin(t.tariffs, t.tariffs.c.station_id == t.stations.c.id)
    )
    .where(t.stations.c.id.in_(sa.bindparam("b_stations", expanding=True)))
)


async def transactions_and_tariffs(
    conn: AsyncConnection, keys: Iterable[tuple[str, str]]
) -> tuple[dict[tuple[str, str], Transaction], dict[str, Tariff]]:
    """For TransactionEvents keyed (station, transaction), in one read whatever their number:
    the stored transactions and the stations' tariffs. (A transaction's seqNo span and count
    are written in the same database transaction as its events: see `stored_seq_nos`.)"""
    pairs = set(keys)
    params = {
        "b_stations": sorted({s for s, _ in pairs}),
        "b_transactions": sorted({tx for _, tx in pairs}),
    }
    transactions: dict[tuple[str, str], Transaction] = {}
    tariffs: dict[str, Tariff] = {}
    for row in await conn.execute(_TX_AND_TARIFF_BY_KEYS, params):
        m = row._mapping
        station_id = m["b_station"]
        if m["currency"] is not None:
            tariffs[station_id] = Tariff(
                station_id, m["currency"], m["price_per_kwh"], m["price_per_hour"]
            )
        key = (station_id, m["transaction_id"])
        if m["transaction_id"] is not None and key in pairs:  # ids x transaction ids
            transactions[key] = _transaction(row)
    return transactions, tariffs


def _transaction_values(tx: Transaction, now: datetime) -> dict[str, Any]:
    return {
        "station_id": tx.station_id,
        "transaction_id": tx.transaction_id,
        "state": tx.state.value,
        "evse_id": tx.evse_id,
        "connector_id": tx.connector_id,
        "id_token": tx.id_token,
        "id_token_type": tx.id_token_type,
        "started_at": tx.started_at,
        "ended_at": tx.ended_at,
        "stopped_reason": tx.stopped_reason,
        "first_seq_no": tx.first_seq_no,
        "last_seq_no": tx.last_seq_no,
        "seq_count": tx.seq_count,
        "charging_state": tx.charging_state,
        "total_cost": tx.total_cost,
        "offline_seen": tx.offline_seen,
        "started_unseen": tx.started_unseen,
        "energy_start_wh": tx.energy_start_wh,
        "energy_last_wh": tx.energy_last_wh,
        "updated_at": now,
    }


async def save_transaction(conn: AsyncConnection, tx: Transaction, now: datetime) -> None:
    await _upsert(
        conn, t.transactions, _transaction_values(tx, now), ("station_id", "transaction_id")
    )


async def save_transactions(
    conn: AsyncConnection, changes: Sequence[tuple[Transaction, datetime]]
) -> None:
    """`save_transaction` for many, as one executemany."""
    if not changes:
        return
    rows = [_transaction_values(tx, now) for tx, now in changes]
    statement = _upsert_statement(
        conn.dialect.name, "transactions", ("station_id", "transaction_id"), tuple(rows[0])
    )
    await conn.execute(statement, rows if len(rows) > 1 else rows[0])


async def active_transactions_on_evses(
    conn: AsyncConnection, evses: Iterable[tuple[str, int]]
) -> list[Transaction]:
    """The Active transactions on these (station, EVSE) pairs (one read)."""
    pairs = set(evses)
    if not pairs:
        return []
    c = t.transactions.c
    query = t.transactions.select().where(
        c.state == TransactionState.ACTIVE.value,
        c.station_id.in_(sorted({s for s, _ in pairs})),
        c.evse_id.in_(sorted({e for _, e in pairs})),
    )
    found = [_transaction(r) for r in (await conn.execute(query)).all()]
    return [tx for tx in found if (tx.station_id, tx.evse_id) in pairs]


async def list_transactions(
    conn: AsyncConnection,
    offset: int,
    limit: int,
    station_id: str | None = None,
    state: TransactionState | None = None,
) -> Page[Transaction]:
    conds: list[Any] = []
    if station_id is not None:
        conds.append(t.transactions.c.station_id == station_id)
    if state is not None:
        conds.append(t.transactions.c.state == state.value)
    rows, total = await _page(
        conn,
        t.transactions.select().where(*conds).order_by(t.transactions.c.id.desc()),
        sa.select(sa.func.count()).select_from(t.transactions).where(*conds),
        offset,
        limit,
    )
    return Page([_transaction(r) for r in rows], total, offset, limit)


@functools.lru_cache(maxsize=4)
def _insert_event_once(dialect: str) -> Any:
    table = t.transaction_events
    insert = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    return insert.on_conflict_do_nothing(index_elements=["station_id", "transaction_id", "seq_no"])


def _transaction_event_values(event: TransactionEvent, now: datetime) -> dict[str, Any]:
    return {
        "station_id": event.station_id,
        "transaction_id": event.transaction_id,
        "seq_no": event.seq_no,
        "event_type": event.event_type,
        "trigger_reason": event.trigger_reason,
        "timestamp": event.timestamp,
        "offline": event.offline,
        "payload": event.payload,
        "received_at": now,
    }


async def insert_transaction_event(
    conn: AsyncConnection, event: TransactionEvent, now: datetime
) -> bool:
    """Store the event once; False when this (station, transaction, seqNo) is already stored."""
    values = _transaction_event_values(event, now)
    result = await conn.execute(_insert_event_once(conn.dialect.name), values)
    return bool(result.rowcount)


async def insert_transaction_events(
    conn: AsyncConnection, events: Sequence[tuple[TransactionEvent, datetime]]
) -> None:
    """Store events (one executemany); one already stored is skipped (ON CONFLICT)."""
    if not events:
        return
    rows = [_transaction_event_values(event, now) for event, now in events]
    await conn.execute(_insert_event_once(conn.dialect.name), rows if len(rows) > 1 else rows[0])


async def stored_seq_nos(
    conn: AsyncConnection, keys: Iterable[tuple[str, str, int]]
) -> set[tuple[str, str, int]]:
    """Which of these (station, transaction, seqNo) are stored: one read through the
    uq_tx_events_seq index, whatever the transactions' sizes."""
    wanted = set(keys)
    if not wanted:
        return set()
    c = t.transaction_events.c
    query = sa.select(c.station_id, c.transaction_id, c.seq_no).where(
        c.station_id.in_(sorted({k[0] for k in wanted})),
        c.transaction_id.in_(sorted({k[1] for k in wanted})),
        c.seq_no.in_(sorted({k[2] for k in wanted})),
    )
    rows = (await conn.execute(query)).all()
    return {(r[0], r[1], r[2]) for r in rows} & wanted


async def list_transaction_events(
    conn: AsyncConnection, station_id: str, transaction_id: str
) -> list[TransactionEvent]:
    rows = (
        await conn.execute(
            t.transaction_events.select()
            .where(
                t.transaction_events.c.station_id == station_id,
                t.transaction_events.c.transaction_id == transaction_id,
            )
            .order_by(t.transaction_events.c.seq_no)
        )
    ).all()
    out = []
    for r in rows:
        m = r._mapping
        out.append(
            TransactionEvent(
                station_id=m["station_id"],
                transaction_id=m["transaction_id"],
                seq_no=m["seq_no"],
                event_type=m["event_type"],
                trigger_reason=m["trigger_reason"],
                timestamp=m["timestamp"],
                offline=bool(m["offline"]),
                payload=m["payload"],
                id=m["id"],
            )
        )
    return out


# ---- meter values -----------------------------------------------------------------------------


def _meter_rows(samples: Iterable[MeterSample]) -> list[dict[str, Any]]:
    return [
        {
            "station_id": s.station_id,
            "evse_id": s.evse_id,
            "transaction_id": s.transaction_id,
            "timestamp": s.timestamp,
            "measurand": s.measurand,
            "phase": s.phase,
            "location": s.location,
            "context": s.context,
            "value": s.value,
            "unit": s.unit,
        }
        for s in samples
    ]


@functools.lru_cache(maxsize=4)
def _insert_meter_once(dialect: str) -> Any:
    """A sample repeated (same station, transaction, EVSE, timestamp, measurand, phase,
    location, context) is stored once (issue 11 finding 8): the unique index
    uq_meter_values_sample decides; DO NOTHING without a target works on SQLite and
    PostgreSQL and meter_values has no other unique key than its generated id."""
    table = t.meter_values
    insert = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    return insert.on_conflict_do_nothing()


def meter_samples_write(dialect: str, samples: Iterable[MeterSample]) -> RowWrite:
    """`insert_meter_samples` as rows for `Database.write_rows`."""
    return RowWrite(_insert_meter_once(dialect), _meter_rows(samples))


async def insert_meter_samples(conn: AsyncConnection, samples: Iterable[MeterSample]) -> int:
    """Store samples (one executemany), each repeat of a stored one skipped; the number given."""
    rows = _meter_rows(samples)
    if rows:
        await conn.execute(_insert_meter_once(conn.dialect.name), rows)
    return len(rows)


def _sample(row: sa.Row[Any]) -> MeterSample:
    m = row._mapping
    return MeterSample(
        station_id=m["station_id"],
        timestamp=m["timestamp"],
        value=m["value"],
        measurand=m["measurand"],
        evse_id=m["evse_id"],
        transaction_id=m["transaction_id"],
        phase=m["phase"],
        location=m["location"],
        context=m["context"],
        unit=m["unit"],
        id=m["id"],
    )


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
    return [_sample(r) for r in (await conn.execute(q)).all()]


# ---- message log ------------------------------------------------------------------------------


def _log_rows(entries: Iterable[MessageLogEntry]) -> list[dict[str, Any]]:
    return [
        {
            "station_id": e.station_id,
            "direction": e.direction.value,
            "kind": e.kind,
            "action": e.action,
            "message_id": e.message_id,
            "payload": e.payload,
            "created_at": e.created_at,
        }
        for e in entries
    ]


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
    rows, total = await _page(
        conn,
        t.message_log.select().where(where).order_by(t.message_log.c.id.desc()),
        sa.select(sa.func.count()).select_from(t.message_log).where(where),
        offset,
        limit,
    )
    items = []
    for r in rows:
        m = r._mapping
        items.append(
            MessageLogEntry(
                station_id=m["station_id"],
                direction=Direction(m["direction"]),
                kind=m["kind"],
                message_id=m["message_id"],
                action=m["action"],
                payload=m["payload"],
                created_at=m["created_at"],
                id=m["id"],
            )
        )
    return Page(items, total, offset, limit)


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


# ---- device model -----------------------------------------------------------------------------


def variable_key(v: DeviceVariable) -> str:
    return "|".join(
        "" if part is None else str(part)
        for part in (
            v.component,
            v.component_instance,
            v.evse_id,
            v.connector_id,
            v.variable,
            v.variable_instance,
            v.attribute_type,
        )
    )


async def upsert_device_variables(
    conn: AsyncConnection, variables: Iterable[DeviceVariable], now: datetime
) -> int:
    n = 0
    for v in variables:
        await _upsert(
            conn,
            t.device_variables,
            {
                "station_id": v.station_id,
                "key": variable_key(v),
                "component": v.component,
                "component_instance": v.component_instance,
                "evse_id": v.evse_id,
                "connector_id": v.connector_id,
                "variable": v.variable,
                "variable_instance": v.variable_instance,
                "attribute_type": v.attribute_type,
                "value": v.value,
                "mutability": v.mutability,
                "characteristics": v.characteristics,
                "updated_at": now,
            },
            ("station_id", "key"),
        )
        n += 1
    return n


async def list_device_variables(
    conn: AsyncConnection,
    station_id: str,
    component: str | None = None,
    variable: str | None = None,
) -> list[DeviceVariable]:
    q = t.device_variables.select().where(t.device_variables.c.station_id == station_id)
    if component is not None:
        q = q.where(t.device_variables.c.component == component)
    if variable is not None:
        q = q.where(t.device_variables.c.variable == variable)
    q = q.order_by(t.device_variables.c.key)
    out = []
    for r in (await conn.execute(q)).all():
        m = r._mapping
        out.append(
            DeviceVariable(
                station_id=m["station_id"],
                component=m["component"],
                variable=m["variable"],
                attribute_type=m["attribute_type"],
                value=m["value"],
                component_instance=m["component_instance"],
                evse_id=m["evse_id"],
                connector_id=m["connector_id"],
                variable_instance=m["variable_instance"],
                mutability=m["mutability"],
                characteristics=m["characteristics"],
                updated_at=m["updated_at"],
            )
        )
    return out


# ---- charging profiles ------------------------------------------------------------------------


async def upsert_charging_profile(
    conn: AsyncConnection, record: ChargingProfileRecord, now: datetime
) -> None:
    await _upsert(
        conn,
        t.charging_profiles,
        {
            "station_id": record.station_id,
            "profile_id": record.profile_id,
            "evse_id": record.evse_id,
            "purpose": record.purpose,
            "stack_level": record.stack_level,
            "kind": record.kind,
            "transaction_id": record.transaction_id,
            "valid_from": record.valid_from,
            "valid_to": record.valid_to,
            "source": record.source,
            "profile": record.profile,
            "updated_at": now,
        },
        ("station_id", "profile_id"),
    )


def _profile(row: sa.Row[Any]) -> ChargingProfileRecord:
    m = row._mapping
    return ChargingProfileRecord(
        station_id=m["station_id"],
        evse_id=m["evse_id"],
        profile_id=m["profile_id"],
        purpose=m["purpose"],
        stack_level=m["stack_level"],
        kind=m["kind"],
        profile=m["profile"],
        transaction_id=m["transaction_id"],
        valid_from=m["valid_from"],
        valid_to=m["valid_to"],
        source=m["source"],
        updated_at=m["updated_at"],
    )


async def list_charging_profiles(
    conn: AsyncConnection, station_id: str, evse_id: int | None = None
) -> list[ChargingProfileRecord]:
    q = t.charging_profiles.select().where(t.charging_profiles.c.station_id == station_id)
    if evse_id is not None:
        q = q.where(t.charging_profiles.c.evse_id == evse_id)
    q = q.order_by(t.charging_profiles.c.evse_id, t.charging_profiles.c.profile_id)
    return [_profile(r) for r in (await conn.execute(q)).all()]


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


# ---- events -----------------------------------------------------------------------------------


_EVENT_INSERT = t.events.insert()


def event_write(event: EventRecord) -> RowWrite:
    """`insert_event` as rows for `Database.write_rows`."""
    return RowWrite(
        _EVENT_INSERT,
        [
            {
                "station_id": event.station_id,
                "kind": event.kind,
                "timestamp": event.timestamp,
                "payload": event.payload,
                "received_at": event.received_at,
            }
        ],
    )


async def insert_events(conn: AsyncConnection, events: Sequence[EventRecord]) -> None:
    """`insert_event` for many (one executemany; nothing for none)."""
    if events:
        rows = [row for e in events for row in event_write(e).rows]
        await conn.execute(_EVENT_INSERT, rows if len(rows) > 1 else rows[0])


async def insert_event(conn: AsyncConnection, event: EventRecord) -> None:
    await conn.execute(
        t.events.insert().values(
            station_id=event.station_id,
            kind=event.kind,
            timestamp=event.timestamp,
            payload=event.payload,
            received_at=event.received_at,
        )
    )


async def list_events(
    conn: AsyncConnection, station_id: str, offset: int, limit: int, kind: str | None = None
) -> Page[EventRecord]:
    conds: list[Any] = [t.events.c.station_id == station_id]
    if kind is not None:
        conds.append(t.events.c.kind == kind)
    rows, total = await _page(
        conn,
        t.events.select().where(*conds).order_by(t.events.c.id.desc()),
        sa.select(sa.func.count()).select_from(t.events).where(*conds),
        offset,
        limit,
    )
    items = []
    for r in rows:
        m = r._mapping
        items.append(
            EventRecord(
                station_id=m["station_id"],
                kind=m["kind"],
                payload=m["payload"],
                received_at=m["received_at"],
                timestamp=m["timestamp"],
                id=m["id"],
            )
        )
    return Page(items, total, offset, limit)


# ---- certificates -----------------------------------------------------------------------------


async def insert_certificate(
    conn: AsyncConnection, record: CertificateRecord, now: datetime
) -> int:
    result = await conn.execute(
        t.certificates.insert()
        .values(
            station_id=record.station_id,
            certificate_type=record.certificate_type,
            csr=record.csr,
            status=record.status,
            certificate_chain=record.certificate_chain,
            created_at=record.created_at or now,
        )
        .returning(t.certificates.c.id)
    )
    return int(result.scalar_one())


async def update_certificate(
    conn: AsyncConnection, cert_id: int, status: str, chain: str | None
) -> None:
    await conn.execute(
        t.certificates.update()
        .where(t.certificates.c.id == cert_id)
        .values(status=status, certificate_chain=chain)
    )


async def list_certificates(conn: AsyncConnection, station_id: str) -> list[CertificateRecord]:
    rows = (
        await conn.execute(
            t.certificates.select()
            .where(t.certificates.c.station_id == station_id)
            .order_by(t.certificates.c.id)
        )
    ).all()
    return [
        CertificateRecord(
            station_id=r._mapping["station_id"],
            certificate_type=r._mapping["certificate_type"],
            csr=r._mapping["csr"],
            status=r._mapping["status"],
            certificate_chain=r._mapping["certificate_chain"],
            created_at=r._mapping["created_at"],
            id=r._mapping["id"],
        )
        for r in rows
    ]
