"""Correctness of the batched group commit (`Database.write_rows`), on SQLite and PostgreSQL.

Rows sharing a statement within a batch run as ONE executemany; that must not change what is
stored, must keep a failing row's error to its own caller, must keep order where an opaque op
follows rows, and a station's message must be committed before the CSMS answers it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from csms.domain.models import EventRecord, MeterSample, RegistrationStatus
from csms.ocpp_server.blocks import all_handlers
from csms.ocpp_server.session import Session
from csms.persistence import repositories as repo
from csms.persistence import tables as t
from csms.services.container import Services, build_services
from tests.support.csms_db import fresh_postgres_database, postgres_url_or_skip
from tests.support.csms_harness import FAST_HASHER, PASSWORD, csms_settings, running_services

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@contextlib.asynccontextmanager
async def _postgres_services(tmp_path: Path) -> AsyncIterator[Services]:
    async with fresh_postgres_database(postgres_url_or_skip()) as url:
        services = build_services(
            csms_settings(tmp_path, database_url=url), password_hasher=FAST_HASHER
        )
        await services.start(migrate=True)
        try:
            yield services
        finally:
            await services.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def services(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Services]:
    if request.param == "sqlite":
        async with running_services(tmp_path) as running:
            yield running
    else:
        async with _postgres_services(tmp_path) as running:
            yield running


class _StatementCounter:
    """Counts DBAPI executions (execute or executemany) whose SQL starts with `prefix`."""

    def __init__(self, services: Services, prefix: str) -> None:
        self.prefix = prefix.lower()
        self.executions = 0
        self.rows = 0
        self._engine = services.db.engine.sync_engine
        event.listen(self._engine, "before_cursor_execute", self._seen)

    def _seen(
        self, conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        if statement.lstrip().lower().startswith(self.prefix):
            self.executions += 1
            self.rows += len(params) if many else 1

    def close(self) -> None:
        event.remove(self._engine, "before_cursor_execute", self._seen)


async def _add_stations(services: Services, n: int) -> list[str]:
    ids = [f"CS{i:03d}" for i in range(n)]
    for station_id in ids:
        await services.stations.create(station_id, password=PASSWORD)
    return ids


async def _heartbeats(services: Services) -> dict[str, datetime | None]:
    async with services.db.read() as conn:
        rows = await conn.execute(sa.select(t.stations.c.id, t.stations.c.last_heartbeat_at))
        return {r[0]: r[1] for r in rows}


async def test_rows_sharing_a_statement_run_as_one_executemany(services: Services) -> None:
    ids = await _add_stations(services, 120)
    counter = _StatementCounter(services, "UPDATE stations")
    try:
        await asyncio.gather(
            *(
                services.db.write_rows(repo.heartbeat_write(sid, T0 + timedelta(seconds=i)))
                for i, sid in enumerate(ids)
            )
        )
    finally:
        counter.close()
    assert counter.rows == 120
    assert counter.executions < 120 / 4  # many rows per statement, not one statement per row
    stored = await _heartbeats(services)
    assert all(stored[sid] == T0 + timedelta(seconds=i) for i, sid in enumerate(ids))


async def test_a_failing_row_fails_only_its_caller(services: Services) -> None:
    ids = await _add_stations(services, 3)
    dialect = services.db.dialect
    results = await asyncio.gather(
        services.db.write_rows(
            *repo.connector_status_writes(dialect, ids[0], 1, 1, "Available", T0)
        ),
        # Unknown station: the EVSE row breaks its foreign key, so this message's rows fail.
        services.db.write_rows(
            *repo.connector_status_writes(dialect, "NOPE", 1, 1, "Available", T0)
        ),
        services.db.write_rows(
            *repo.connector_status_writes(dialect, ids[1], 1, 1, "Occupied", T0)
        ),
        services.db.write_rows(repo.heartbeat_write(ids[2], T0)),
        return_exceptions=True,
    )
    assert isinstance(results[1], Exception)
    assert [r for i, r in enumerate(results) if i != 1] == [None, None, None]
    async with services.db.read() as conn:
        connectors = (
            await conn.execute(sa.select(t.connectors.c.station_id, t.connectors.c.status))
        ).all()
        evses = (await conn.execute(sa.select(t.evses.c.station_id))).scalars().all()
    assert sorted((r[0], r[1]) for r in connectors) == [
        (ids[0], "Available"),
        (ids[1], "Occupied"),
    ]
    assert sorted(evses) == [ids[0], ids[1]]  # nothing of the failed message was kept
    assert (await _heartbeats(services))[ids[2]] == T0


async def test_an_op_after_rows_in_one_batch_sees_them(services: Services) -> None:
    (station_id,) = await _add_stations(services, 1)

    async def count_events(conn: AsyncConnection) -> int:
        query = sa.select(sa.func.count()).select_from(t.events)
        return int((await conn.execute(query)).scalar_one())

    events = [EventRecord(station_id, "Test", {"n": i}, received_at=T0) for i in range(5)]
    *_, seen = await asyncio.gather(
        *(services.db.write_rows(repo.event_write(e)) for e in events),
        services.db.write(count_events),
    )
    assert seen == 5


async def test_multi_row_writes_keep_every_row(services: Services) -> None:
    (station_id,) = await _add_stations(services, 1)
    samples = [
        [
            MeterSample(
                station_id,
                T0 + timedelta(seconds=k),
                float(10 * k + j),
                "Power.Active.Import",
                phase=phase,  # distinct samples (a repeated one is stored once)
            )
            for j, phase in enumerate(("L1", "L2", "L3"))
        ]
        for k in range(20)
    ]
    meter = services.transaction_events
    await asyncio.gather(*(meter.meter_values(s) for s in samples))
    await meter.meter_values([])  # nothing is fine
    async with services.db.read() as conn:
        stored = await repo.list_meter_samples(conn, station_id)
    assert sorted(s.value for s in stored) == sorted(s.value for group in samples for s in group)


class _RecordingTransport:
    """Answers are checked against the database at the moment they are sent."""

    def __init__(self, on_send: Any) -> None:
        self.on_send = on_send
        self.sent: list[str] = []

    async def recv(self) -> str:  # pragma: no cover - the test drives handle_frame directly
        raise ConnectionError

    async def send(self, message: str) -> None:
        self.sent.append(message)
        await self.on_send()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        return None


async def test_heartbeat_is_committed_before_it_is_answered(
    services: Services, tmp_path: Path
) -> None:
    station_ids = await _add_stations(services, 20)
    # Another engine (in effect another process) must already see the heartbeat.
    observer = create_async_engine(services.db.url)
    seen_at_send: dict[str, datetime | None] = {}

    def session_for(station_id: str) -> Session:
        async def check() -> None:
            async with observer.connect() as conn:
                seen_at_send[station_id] = (
                    await conn.execute(
                        sa.select(t.stations.c.last_heartbeat_at).where(
                            t.stations.c.id == station_id
                        )
                    )
                ).scalar_one()

        return Session(
            station_id,
            _RecordingTransport(check),
            services,
            all_handlers(),
            registration=RegistrationStatus.ACCEPTED,
        )

    sessions = [session_for(sid) for sid in station_ids]
    try:
        await asyncio.gather(
            *(s.handle_frame(f'[2,"hb-{s.station_id}","Heartbeat",{{}}]') for s in sessions)
        )
    finally:
        await observer.dispose()
    for s in sessions:
        assert len(s.transport.sent) == 1 and s.transport.sent[0].startswith("[3,")  # type: ignore[attr-defined]
    assert set(seen_at_send) == set(station_ids)
    assert all(value is not None for value in seen_at_send.values())


def _tx_frame(message_id: str, tx_id: str, seq_no: int, event_type: str, wh: float) -> str:
    payload = {
        "eventType": event_type,
        "timestamp": "2026-01-01T00:00:00.000Z",
        "triggerReason": "MeterValuePeriodic" if event_type == "Updated" else "Authorized",
        "seqNo": seq_no,
        "transactionInfo": {"transactionId": tx_id},
        "evse": {"id": 1, "connectorId": 1},
        "meterValue": [
            {
                # One sample time per seqNo (a repeated sample is stored once).
                "timestamp": f"2026-01-01T00:00:{seq_no:02d}.000Z",
                "sampledValue": [
                    {"value": wh, "measurand": "Energy.Active.Import.Register"},
                    {"value": 7000.0, "measurand": "Power.Active.Import"},
                ],
            }
        ],
    }
    return orjson.dumps([2, message_id, "TransactionEvent", payload]).decode()


def _station_session(services: Services, station_id: str) -> Session:
    async def nothing() -> None:
        return None

    return Session(
        station_id,
        _RecordingTransport(nothing),
        services,
        all_handlers(),
        registration=RegistrationStatus.ACCEPTED,
    )


async def test_e02_transaction_events_of_many_stations_batch_and_store_each(
    services: Services,
) -> None:
    station_ids = await _add_stations(services, 30)
    sessions = [_station_session(services, sid) for sid in station_ids]
    counter = _StatementCounter(services, "INSERT INTO transaction_events")
    try:
        for seq_no, event_type in ((0, "Started"), (1, "Updated"), (2, "Updated")):
            await asyncio.gather(
                *(
                    s.handle_frame(
                        _tx_frame(
                            f"m{seq_no}", f"T-{s.station_id}", seq_no, event_type, 100.0 * seq_no
                        )
                    )
                    for s in sessions
                )
            )
    finally:
        counter.close()
    assert counter.rows == 90
    assert counter.executions < 90 / 4
    async with services.db.read() as conn:
        for s in sessions:
            tx = await repo.get_transaction(conn, s.station_id, f"T-{s.station_id}")
            assert tx is not None and tx.last_seq_no == 2 and tx.energy_last_wh == 200.0
            events = await repo.list_transaction_events(conn, s.station_id, f"T-{s.station_id}")
            assert [e.seq_no for e in events] == [0, 1, 2]
            samples = await repo.list_meter_samples(conn, s.station_id, f"T-{s.station_id}")
            assert len(samples) == 6
    for s in sessions:
        assert all(m.startswith("[3,") for m in s.transport.sent)  # type: ignore[attr-defined]


async def test_e02_events_of_one_transaction_in_one_batch_apply_in_order_and_once(
    services: Services,
) -> None:
    (station_id,) = await _add_stations(services, 1)
    session = _station_session(services, station_id)
    await session.handle_frame(_tx_frame("a", "T1", 0, "Started", 0.0))
    # One batch: seqNo 1, 2, a retry of 1, and a retry of the stored 0.
    await asyncio.gather(
        session.handle_frame(_tx_frame("b", "T1", 1, "Updated", 100.0)),
        session.handle_frame(_tx_frame("c", "T1", 2, "Updated", 250.0)),
        session.handle_frame(_tx_frame("d", "T1", 1, "Updated", 100.0)),
        session.handle_frame(_tx_frame("e", "T1", 0, "Started", 0.0)),
    )
    sent = [orjson.loads(m) for m in session.transport.sent]  # type: ignore[attr-defined]
    assert [m[0] for m in sent] == [3] * 5  # every retry is answered again
    async with services.db.read() as conn:
        tx = await repo.get_transaction(conn, station_id, "T1")
        events = await repo.list_transaction_events(conn, station_id, "T1")
        samples = await repo.list_meter_samples(conn, station_id, "T1")
    assert tx is not None and tx.last_seq_no == 2 and tx.energy_last_wh == 250.0
    assert tx.energy_start_wh == 0.0
    assert [e.seq_no for e in events] == [0, 1, 2]
    assert len(samples) == 6  # the retries stored no samples


@pytest.fixture
async def postgres_services(tmp_path: Path) -> AsyncIterator[Services]:
    async with _postgres_services(tmp_path) as running:
        yield running


async def test_writer_recovers_when_its_kept_connection_breaks(
    postgres_services: Services,
) -> None:
    # PostgreSQL only: a SQLite connection cannot be cut from outside.
    services = postgres_services
    (station_id,) = await _add_stations(services, 1)
    await services.db.write_rows(repo.heartbeat_write(station_id, T0))
    writer = services.db.writer
    assert writer._conn is not None  # kept between batches
    backend = (await writer._conn.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one()
    await writer._conn.commit()
    async with services.db.read() as conn:  # as if the database had restarted
        await conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
    later = T0 + timedelta(minutes=1)
    # A batch of one on the dead connection: retried on a pool connection, not refused.
    await services.db.write_rows(repo.heartbeat_write(station_id, later))
    assert (await _heartbeats(services))[station_id] == later
    await services.db.write_rows(repo.heartbeat_write(station_id, later + timedelta(minutes=1)))
    assert writer._conn is not None
