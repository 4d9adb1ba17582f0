"""Transactions and their TransactionEvents (one aggregate: the events make the transaction).

The idempotency of TransactionEvents lives here: an event is stored once per (station,
transaction, seqNo) (ON CONFLICT DO NOTHING on uq_tx_events_seq), and a transaction's seqNo span
and count are written in the same database transaction as its events."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.domain.models import Page, Tariff, Transaction, TransactionEvent, TransactionState
from csms.persistence import tables as t
from csms.persistence.bulk import execute_many
from csms.persistence.repositories.mapper import AS_BOOL, TableMapper, stored_enum
from csms.persistence.repositories.statements import (
    DIALECTS,
    KeyTable,
    dialect_insert,
    page,
    upsert,
    upsert_statement,
)

TRANSACTIONS = TableMapper(
    t.transactions,
    Transaction,
    codecs={
        "state": stored_enum(TransactionState),
        "offline_seen": AS_BOOL,
        "started_unseen": AS_BOOL,
    },
    supplied=("updated_at",),
)
TRANSACTION_EVENTS = TableMapper(
    t.transaction_events,
    TransactionEvent,
    codecs={"offline": AS_BOOL},
    supplied=("received_at",),
    generated=("id",),
)


def _joined_tariff(station_id: str, m: Any) -> Tariff | None:
    """The tariff columns of a stations-transactions-tariffs join (which names no
    tariffs.station_id: its station_id column is the transaction's)."""
    if m["currency"] is None:
        return None
    return Tariff(station_id, m["currency"], m["price_per_kwh"], m["price_per_hour"])


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
    return TRANSACTIONS.record(row) if row else None


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
    found = TRANSACTIONS.record(row) if m["transaction_id"] is not None else None
    return found, _joined_tariff(station_id, m)


# (station, transaction) keys of a batch of TransactionEvents, joined (see KeyTable).
_TX_KEYS = KeyTable("b_keys", (("k_station", sa.String()), ("k_transaction", sa.String())))


def _tx_and_tariff_by_keys(dialect: str) -> sa.Select[Any]:
    keys = _TX_KEYS.table(dialect)
    station = keys.c.k_station
    tx, tariffs = t.transactions.c, t.tariffs.c
    joined, transactions = _TX_KEYS.probe(
        dialect,
        keys,
        t.transactions,
        sa.and_(tx.station_id == station, tx.transaction_id == keys.c.k_transaction),
        outer=True,
    )
    joined, tariff = _TX_KEYS.probe(
        dialect, joined, t.tariffs, tariffs.station_id == station, outer=True
    )
    return sa.select(
        sa.literal_column("0").label("b_part"),
        station.label("b_station"),
        *transactions.c,
        tariff.c.currency,
        tariff.c.price_per_kwh,
        tariff.c.price_per_hour,
    ).select_from(joined)


# (station, EVSE, state) keys: the EVSEs where a batch's transactions start, each with the
# state sought (Active), joined (see KeyTable). The state is a key column, not a constant in
# the SQL: with a constant, SQLite began from the state index, every Active transaction.
_EVSE_KEYS = KeyTable(
    "e_keys", (("k_station", sa.String()), ("k_evse", sa.Integer()), ("k_state", sa.String()))
)


def _active_on_evses(dialect: str) -> sa.Select[Any]:
    keys = _EVSE_KEYS.table(dialect)
    c = t.transactions.c
    joined, transactions = _EVSE_KEYS.probe(
        dialect,
        keys,
        t.transactions,
        sa.and_(
            c.station_id == keys.c.k_station,
            c.evse_id == keys.c.k_evse,
            c.state == keys.c.k_state,
        ),
        outer=False,
    )
    return sa.select(*transactions.c).select_from(joined)


# Compiled once per dialect: the IN lists per column built per call probed every station x
# EVSE combination and allocated a new statement (bind parameters, sets) each time.
_ACTIVE_ON_EVSES = {dialect: _active_on_evses(dialect) for dialect in DIALECTS}


def _batch_read(dialect: str) -> sa.CompoundSelect:
    """The keys' transactions and tariffs (part 0), then the Active transactions on the given
    EVSEs (part 1), in one statement: the TransactionEvent batch's reads in one round trip."""
    c = t.tariffs.c
    no_tariff = (
        sa.cast(sa.null(), column.type).label(column.name)
        for column in (c.currency, c.price_per_kwh, c.price_per_hour)
    )
    running = _active_on_evses(dialect)
    return sa.union_all(
        _tx_and_tariff_by_keys(dialect),
        running.with_only_columns(
            sa.literal_column("1").label("b_part"),
            running.selected_columns.station_id.label("b_station"),
            *running.selected_columns,
            *no_tariff,
        ),
    )


# Compiled once per dialect and cached by SQLAlchemy: the keys are parameters.
_BATCH_READ = {dialect: _batch_read(dialect) for dialect in DIALECTS}


async def transactions_and_tariffs(
    conn: AsyncConnection, keys: Iterable[tuple[str, str]]
) -> tuple[dict[tuple[str, str], Transaction], dict[str, Tariff]]:
    """For TransactionEvents keyed (station, transaction), in one read of one index probe
    per key: the stored transactions and the stations' tariffs. (A transaction's seqNo span
    and count are written in the same database transaction as its events: see
    `stored_seq_nos`.)"""
    transactions, tariffs, _ = await transactions_tariffs_and_running(conn, keys, ())
    return transactions, tariffs


async def transactions_tariffs_and_running(
    conn: AsyncConnection, keys: Iterable[tuple[str, str]], evses: Iterable[tuple[str, int]]
) -> tuple[dict[tuple[str, str], Transaction], dict[str, Tariff], list[Transaction]]:
    """`transactions_and_tariffs` of `keys` and `active_transactions_on_evses` of `evses`, in
    one read (one index probe per key and per EVSE)."""
    pairs = sorted(set(keys))
    active = TransactionState.ACTIVE.value
    evse_keys = sorted({(station, evse, active) for station, evse in evses})
    transactions: dict[tuple[str, str], Transaction] = {}
    tariffs: dict[str, Tariff] = {}
    running: list[Transaction] = []
    if not pairs and not evse_keys:
        return transactions, tariffs, running
    dialect = conn.dialect.name
    params = _TX_KEYS.params(dialect, pairs) | _EVSE_KEYS.params(dialect, evse_keys)
    for row in await conn.execute(_BATCH_READ[dialect], params):
        m = row._mapping
        if m["b_part"] == 1:
            running.append(TRANSACTIONS.record(row))
            continue
        station_id = m["b_station"]
        tariff = _joined_tariff(station_id, m)
        if tariff is not None:
            tariffs[station_id] = tariff
        if m["transaction_id"] is not None:
            transactions[(station_id, m["transaction_id"])] = TRANSACTIONS.record(row)
    return transactions, tariffs, running


async def save_transaction(conn: AsyncConnection, tx: Transaction, now: datetime) -> None:
    await upsert(
        conn,
        t.transactions,
        TRANSACTIONS.values(tx, updated_at=now),
        ("station_id", "transaction_id"),
    )


async def save_transactions(
    conn: AsyncConnection, changes: Sequence[tuple[Transaction, datetime]]
) -> None:
    """`save_transaction` for many, as one executemany."""
    if not changes:
        return
    rows = [TRANSACTIONS.values(tx, updated_at=now) for tx, now in changes]
    statement = upsert_statement(
        conn.dialect.name, "transactions", ("station_id", "transaction_id"), tuple(rows[0])
    )
    await execute_many(conn, statement, rows)


async def active_transactions_on_evses(
    conn: AsyncConnection, evses: Iterable[tuple[str, int]]
) -> list[Transaction]:
    """The Active transactions on these (station, EVSE) pairs: one read, one probe of
    ix_transactions_station_evse per pair."""
    active = TransactionState.ACTIVE.value
    keys = sorted({(station, evse, active) for station, evse in evses})
    if not keys:
        return []
    dialect = conn.dialect.name
    rows = await conn.execute(_ACTIVE_ON_EVSES[dialect], _EVSE_KEYS.params(dialect, keys))
    return TRANSACTIONS.records(rows.all())


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
    rows, total = await page(
        conn,
        t.transactions.select().where(*conds).order_by(t.transactions.c.id.desc()),
        sa.select(sa.func.count()).select_from(t.transactions).where(*conds),
        offset,
        limit,
    )
    return Page(TRANSACTIONS.records(rows), total, offset, limit)


@functools.lru_cache(maxsize=4)
def _insert_event_once(dialect: str) -> Any:
    insert = dialect_insert(dialect, t.transaction_events)
    return insert.on_conflict_do_nothing(index_elements=["station_id", "transaction_id", "seq_no"])


async def insert_transaction_event(
    conn: AsyncConnection, event: TransactionEvent, now: datetime
) -> bool:
    """Store the event once; False when this (station, transaction, seqNo) is already stored."""
    values = TRANSACTION_EVENTS.values(event, received_at=now)
    result = await conn.execute(_insert_event_once(conn.dialect.name), values)
    return bool(result.rowcount)


async def insert_transaction_events(
    conn: AsyncConnection, events: Sequence[tuple[TransactionEvent, datetime]]
) -> None:
    """Store events (one executemany); one already stored is skipped (ON CONFLICT)."""
    if not events:
        return
    rows = [TRANSACTION_EVENTS.values(event, received_at=now) for event, now in events]
    await execute_many(conn, _insert_event_once(conn.dialect.name), rows)


# (station, transaction, seqNo) keys of TransactionEvents that may be retries.
_EVENT_KEYS = KeyTable(
    "b_events",
    (("k_station", sa.String()), ("k_transaction", sa.String()), ("k_seq_no", sa.BigInteger())),
)


def _stored_events(dialect: str) -> sa.Select[Any]:
    keys = _EVENT_KEYS.table(dialect)
    c = t.transaction_events.c
    # An outer join: the keys stay the outer loop whatever the planner thinks of json_each.
    joined, events = _EVENT_KEYS.probe(
        dialect,
        keys,
        t.transaction_events,
        sa.and_(
            c.station_id == keys.c.k_station,
            c.transaction_id == keys.c.k_transaction,
            c.seq_no == keys.c.k_seq_no,
        ),
        outer=True,
    )
    return sa.select(events.c.station_id, events.c.transaction_id, events.c.seq_no).select_from(
        joined
    )


_STORED_EVENTS = {dialect: _stored_events(dialect) for dialect in DIALECTS}


async def stored_seq_nos(
    conn: AsyncConnection, keys: Iterable[tuple[str, str, int]]
) -> set[tuple[str, str, int]]:
    """Which of these (station, transaction, seqNo) are stored: one probe of the
    uq_tx_events_seq index per key, whatever the transactions' sizes."""
    wanted = sorted(set(keys))
    if not wanted:
        return set()
    dialect = conn.dialect.name
    rows = await conn.execute(_STORED_EVENTS[dialect], _EVENT_KEYS.params(dialect, wanted))
    return {(r[0], r[1], r[2]) for r in rows if r[0] is not None} & set(wanted)


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
    return TRANSACTION_EVENTS.records(rows)


async def totals_since(conn: AsyncConnection, since: datetime) -> tuple[int, float, float]:
    """Transactions updated since `since`: how many, their metered energy (Wh, last register
    minus first) and their running cost, summed in the database."""
    c = t.transactions.c
    energy = sa.func.coalesce(sa.func.sum(c.energy_last_wh - c.energy_start_wh), 0.0)
    cost = sa.func.coalesce(sa.func.sum(c.total_cost), 0.0)
    row = (
        await conn.execute(sa.select(sa.func.count(), energy, cost).where(c.updated_at >= since))
    ).one()
    return int(row[0]), float(row[1]), float(row[2])
