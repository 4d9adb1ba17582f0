"""The TransactionEvent batch's two reads, on SQLite and PostgreSQL: the stored transactions
and tariffs of its (station, transaction) keys, and which of its (station, transaction,
seqNo) keys are stored. Each key is found by one index probe (a join on the keys), not by
IN lists per column whose every combination is probed: a batch of 500 keys was 250,000
probes. The answers equal a per-key lookup, with keys that share stations, transaction ids
and seqNos across each other (the cases where a per-column IN matches pairs never asked)."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.dialects import sqlite

from csms.domain.models import (
    BootPolicy,
    SecurityProfile,
    Tariff,
    Transaction,
    TransactionEvent,
    TransactionState,
)
from csms.persistence import repositories as repo
from csms.persistence.database import Database
from csms.persistence.repositories import transactions as tx_repo
from tests.support.v2g_nodes import DATABASE_KINDS, node_databases, one_database

T0 = datetime(2026, 12, 7, 8, 0, 0, 123456, tzinfo=UTC)
STATIONS = [f"CS-{n:02d}" for n in range(12)]
# Transaction ids reused across stations: ("CS-01", "tx-3") exists, ("CS-02", "tx-3") may not.
TX_IDS = [f"tx-{n}" for n in range(8)]


@pytest.fixture(params=DATABASE_KINDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    async with one_database(request.param, tmp_path) as database:
        yield database


async def _seed(db: Database, rng: random.Random) -> set[tuple[str, str, int]]:
    """Stations (every third with a tariff), a random half of station x transaction id stored
    as transactions, each with a few random seqNos stored as events; the stored event keys."""
    events: set[tuple[str, str, int]] = set()
    async with db.engine.begin() as conn:
        for n, station in enumerate(STATIONS):
            await repo.insert_station(
                conn, station, None, SecurityProfile(1), BootPolicy.ACCEPTED, T0
            )
            if n % 3 == 0:
                await repo.upsert_tariff(conn, Tariff(station, "EUR", 0.1 * n, 0.5), T0)
        for station in STATIONS:
            for tx_id in TX_IDS:
                if rng.random() < 0.5:
                    continue
                seq_nos = rng.sample(range(20), 4)
                await repo.save_transaction(
                    conn,
                    Transaction(
                        station,
                        tx_id,
                        TransactionState.ACTIVE,
                        evse_id=1,
                        first_seq_no=min(seq_nos),
                        last_seq_no=max(seq_nos),
                        seq_count=4,
                    ),
                    T0,
                )
                for seq_no in seq_nos:
                    event = TransactionEvent(
                        station, tx_id, seq_no, "Updated", "MeterValuePeriodic", T0
                    )
                    await repo.insert_transaction_events(conn, [(event, T0 + timedelta(seconds=1))])
                    events.add((station, tx_id, seq_no))
    return events


async def test_batch_reads_equal_a_lookup_per_key(db: Database) -> None:
    rng = random.Random(17)
    stored_events = await _seed(db, rng)
    all_pairs = [(s, tx) for s in STATIONS for tx in TX_IDS]
    for size in (1, 2, 7, 40, len(all_pairs)):
        pairs = [*rng.sample(all_pairs, size), ("no-such-station", "tx-1")]
        async with db.read() as conn:
            transactions, tariffs = await repo.transactions_and_tariffs(conn, pairs)
            expected_tx: dict[tuple[str, str], Transaction] = {}
            expected_tariffs: dict[str, Tariff] = {}
            for station, tx_id in pairs:
                found, tariff = await repo.get_transaction_and_tariff(conn, station, tx_id)
                if found is not None:
                    expected_tx[(station, tx_id)] = found
                if tariff is not None:
                    expected_tariffs[station] = tariff
        assert transactions == expected_tx
        assert tariffs == expected_tariffs
        if size >= 7:  # the sample holds stored transactions and missing ones
            assert 0 < len(expected_tx) < len(pairs)

        triples = [(s, tx, rng.randrange(20)) for s, tx in pairs] + rng.sample(
            sorted(stored_events), min(size, len(stored_events))
        )
        async with db.read() as conn:
            stored = await repo.stored_seq_nos(conn, triples)
        assert stored == set(triples) & stored_events
        assert stored  # the stored sample at least


async def test_active_transactions_on_evses_equal_a_lookup_per_evse(db: Database) -> None:
    """The batch's third read: the Active transactions on the EVSEs where its transactions
    start, with EVSE ids and stations shared across pairs (the cases where IN lists per
    column match pairs never asked) and transactions in every state."""
    rng = random.Random(11)
    async with db.engine.begin() as conn:
        for station in STATIONS:
            await repo.insert_station(
                conn, station, None, SecurityProfile(1), BootPolicy.ACCEPTED, T0
            )
            for tx_id in TX_IDS:
                state = rng.choice(list(TransactionState))
                await repo.save_transaction(
                    conn, Transaction(station, tx_id, state, evse_id=rng.randint(1, 3)), T0
                )
    all_evses = [(s, e) for s in STATIONS for e in (1, 2, 3, 4)]
    for size in (1, 3, 10, len(all_evses)):
        evses = rng.sample(all_evses, size)
        async with db.read() as conn:
            found = await repo.active_transactions_on_evses(conn, evses)
            expected = [
                tx
                for station in STATIONS
                for tx in (await repo.list_transactions(conn, 0, 1000, station_id=station)).items
                if (tx.station_id, tx.evse_id) in evses and tx.state is TransactionState.ACTIVE
            ]
        key = lambda tx: (tx.station_id, tx.transaction_id)  # noqa: E731
        assert sorted(found, key=key) == sorted(expected, key=key)
        if size >= 10:
            assert expected  # the sample holds Active transactions


async def test_one_read_for_the_keys_and_the_running_transactions_on_evses(
    db: Database,
) -> None:
    """The batch's first read carries both: the keys' transactions and tariffs, and the Active
    transactions on the EVSEs where transactions start, each as its own read finds them."""
    rng = random.Random(5)
    await _seed(db, rng)
    all_pairs = [(s, tx) for s in STATIONS for tx in TX_IDS]
    all_evses = [(s, e) for s in STATIONS for e in (1, 2)]
    for size in (0, 1, 5, 30):
        pairs = rng.sample(all_pairs, size)
        evses = rng.sample(all_evses, min(size, len(all_evses)))
        async with db.read() as conn:
            transactions, tariffs, running = await repo.transactions_tariffs_and_running(
                conn, pairs, evses
            )
            assert (transactions, tariffs) == await repo.transactions_and_tariffs(conn, pairs)
            alone = await repo.active_transactions_on_evses(conn, evses)
        key = lambda tx: (tx.station_id, tx.transaction_id)  # noqa: E731
        assert sorted(running, key=key) == sorted(alone, key=key)
        assert all(tariff is not None for tariff in tariffs.values())
        if size >= 5:
            assert running and transactions  # the seed's transactions are Active on EVSE 1


async def test_batch_reads_with_no_keys(db: Database) -> None:
    async with db.read() as conn:
        assert await repo.transactions_and_tariffs(conn, []) == ({}, {})
        assert await repo.stored_seq_nos(conn, []) == set()
        assert await repo.active_transactions_on_evses(conn, []) == []
        assert await repo.transactions_tariffs_and_running(conn, [], []) == ({}, {}, [])


@pytest.mark.parametrize(
    "query",
    [tx_repo._BATCH_READ, tx_repo._STORED_EVENTS, tx_repo._ACTIVE_ON_EVSES],
    ids=["tx", "seq", "evse"],
)
async def test_sqlite_plan_probes_the_index_once_per_key(tmp_path: Path, query: dict) -> None:
    """The keys are the outer loop and each is one SEARCH of an index: no SCAN of a table, no
    IN list per column (the batch read: in both parts of its UNION ALL)."""
    async with node_databases(f"sqlite+aiosqlite:///{tmp_path / 'p.db'}", 1) as dbs:
        sql = str(query["sqlite"].compile(dialect=sqlite.dialect()))
        async with dbs[0].read() as conn:
            keys = sql.count("json_each(?)")
            plan = [
                row[3]
                for row in await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, ("[]",) * keys)
            ]
    steps = [step for step in plan if step.startswith(("SCAN ", "SEARCH "))]
    scans = [step for step in steps if step.startswith("SCAN ")]
    assert len(scans) == keys and all("VIRTUAL TABLE" in step for step in scans), plan
    assert len(steps) > keys  # and the SEARCHes
    assert " IN " not in sql.upper()


@pytest.mark.postgres
@pytest.mark.parametrize(
    "query",
    [tx_repo._BATCH_READ, tx_repo._STORED_EVENTS, tx_repo._ACTIVE_ON_EVSES],
    ids=["tx", "seq", "evse"],
)
async def test_postgres_plan_probes_the_index_per_key_even_when_planned_on_empty_tables(
    tmp_path: Path, query: dict
) -> None:
    """A node's writer prepares these once and PostgreSQL may cache a generic plan made while
    the tables were empty: with a plain join that plan hashed the whole table at every
    execution as it grew (2.2 ms a call at 30,000 transactions, 38 % of the database server's
    CPU in the 10,000-station mix). Each key's rows are a LATERAL subquery, so any plan is a
    nested loop of index probes: planned generic on empty tables, then run on full ones."""
    async with one_database("postgresql", tmp_path) as db, db.engine.connect() as conn:
        sql = str(query["postgresql"].compile(dialect=db.engine.dialect))
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None
        await raw.execute("SET plan_cache_mode = force_generic_plan")
        await raw.execute(f"PREPARE batch_read AS {sql}")
        params = sql.count("$")
        nulls = ", ".join(["NULL"] * params)
        await raw.fetch(f"EXECUTE batch_read({nulls})")  # the generic plan, on empty tables
        for station in range(2000):  # tables far larger than the keys, after the plan
            await raw.execute(
                "INSERT INTO stations (id, security_profile, boot_policy, registration_status,"
                " created_at, updated_at) VALUES ($1, 1, 'Accepted', 'Accepted', now(), now())",
                f"S{station}",
            )
        await raw.execute(
            "INSERT INTO transactions (station_id, transaction_id, state, evse_id, seq_count,"
            " offline_seen, started_unseen, updated_at) SELECT 'S' || (g % 2000), 'tx' || g,"
            " 'Active', 1, 0, false, false, now() FROM generate_series(1, 20000) g"
        )
        await raw.execute(
            "INSERT INTO transaction_events (station_id, transaction_id, seq_no, event_type,"
            " trigger_reason, timestamp, offline, payload, received_at) SELECT 'S' || (g % 2000),"
            " 'tx' || g, 0, 'Started', 'Authorized', now(), false, '{}', now()"
            " FROM generate_series(1, 20000) g"
        )
        # EXPLAIN of the prepared statement shows the plan cached before the tables grew (no
        # ANALYZE here: it would invalidate it; autovacuum is off on this machine kind).
        plan = "\n".join(r[0] for r in await raw.fetch(f"EXPLAIN EXECUTE batch_read({nulls})"))
    assert "Seq Scan" not in plan and "Hash" not in plan, plan
    assert "Index" in plan and "Nested Loop" in plan, plan
