"""SQLite group commit: batches of rows and batched writes run in the writer thread (one hop per
batch instead of three or four per statement through aiosqlite); anything else, and any batch
that cannot run there, keeps the async path with the same results."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import create_async_engine

from csms.domain.models import EventRecord
from csms.persistence import repositories as repo
from csms.persistence import tables as t
from csms.persistence.database import BatchedWrite, Database, make_thread_engine
from csms.services.container import Services
from tests.support.csms_harness import PASSWORD, running_services

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    async with running_services(tmp_path) as running:
        yield running


class _Threads:
    """Names of the threads that ran statements starting with `prefix`."""

    def __init__(self, db: Database, prefix: str) -> None:
        self.prefix = prefix.lower()
        self.names: list[str] = []
        self._engine = db.engine.sync_engine
        event.listen(self._engine, "before_cursor_execute", self._seen)

    def _seen(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().lower().startswith(self.prefix):
            self.names.append(threading.current_thread().name)

    def close(self) -> None:
        event.remove(self._engine, "before_cursor_execute", self._seen)


async def _heartbeat_at(services: Services, station_id: str) -> datetime | None:
    async with services.db.read() as conn:
        value: datetime | None = (
            await conn.execute(
                sa.select(t.stations.c.last_heartbeat_at).where(t.stations.c.id == station_id)
            )
        ).scalar_one()
    return value


async def test_row_batches_run_in_the_writer_thread_and_opaque_ops_on_the_loop(
    services: Services,
) -> None:
    await services.stations.create("CS1", password=PASSWORD)
    threads = _Threads(services.db, "UPDATE stations")
    try:
        await services.db.write_rows(repo.heartbeat_write("CS1", T0))

        async def op(conn: Any) -> None:
            await repo.record_heartbeat(conn, "CS1", T0.replace(year=2027))

        await services.db.write(op)
    finally:
        threads.close()
    assert len(threads.names) == 2
    assert threads.names[0].startswith("csms-sqlite-writer")
    assert threads.names[1] == threading.current_thread().name  # the event loop's
    assert await _heartbeat_at(services, "CS1") == T0.replace(year=2027)


class _SuspendingWrite(BatchedWrite):
    """A batched write that awaits something else than its connection (cannot run to its end
    in the writer thread)."""

    __slots__ = ("station_id",)
    runs: list[str] = []

    def __init__(self, station_id: str) -> None:
        self.station_id = station_id

    @classmethod
    async def run_batch(cls, conn: Any, writes: list[Any]) -> list[Any]:
        cls.runs.append(threading.current_thread().name)
        for w in writes:
            await repo.record_heartbeat(conn, w.station_id, T0)
        await asyncio.sleep(0)  # suspends: only possible on the event loop
        return [w.station_id for w in writes]


async def test_a_batch_that_cannot_run_in_the_thread_is_redone_on_the_async_path(
    services: Services,
) -> None:
    for station_id in ("CS1", "CS2"):
        await services.stations.create(station_id, password=PASSWORD)
    _SuspendingWrite.runs.clear()
    results = await asyncio.gather(
        services.db.write_batched(_SuspendingWrite("CS1")),
        services.db.write_batched(_SuspendingWrite("CS2")),
        services.db.write_rows(repo.heartbeat_write("CS1", T0.replace(year=2030))),
    )
    assert results == ["CS1", "CS2", None]
    # First in the thread (given up, rolled back), then each op alone on the loop.
    assert _SuspendingWrite.runs[0].startswith("csms-sqlite-writer")
    loop_thread = threading.current_thread().name
    assert _SuspendingWrite.runs[1:] == [loop_thread, loop_thread]
    assert await _heartbeat_at(services, "CS2") == T0
    # The rows queued after the batched writes were applied after them, as queued.
    assert await _heartbeat_at(services, "CS1") == T0.replace(year=2030)


async def test_only_a_sqlite_file_gets_a_writer_thread(tmp_path: Path) -> None:
    memory = create_async_engine("sqlite+aiosqlite:///:memory:")
    assert make_thread_engine(memory) is None
    await memory.dispose()
    postgres = Database("postgresql+asyncpg://nobody@127.0.0.1:1/none")  # never connects
    file = Database(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    try:
        assert postgres.writer._thread is None
        assert file.writer._thread is not None
    finally:
        await postgres.close()
        await file.close()


class _InsertThenFail(BatchedWrite):
    """Inserts an event row, then fails: nothing of it may stay (the thread's connection is
    transactional, not in autocommit)."""

    __slots__ = ()

    @classmethod
    async def run_batch(cls, conn: Any, writes: list[Any]) -> list[Any]:
        await repo.insert_event(conn, EventRecord("CS1", "Probe", {}, received_at=T0))
        raise ValueError("spoilt")


async def test_a_failed_batch_in_the_thread_leaves_nothing(services: Services) -> None:
    await services.stations.create("CS1", password=PASSWORD)
    with pytest.raises(ValueError, match="spoilt"):
        await services.db.write_batched(_InsertThenFail())
    await services.db.write_rows(repo.heartbeat_write("CS1", T0))  # the writer goes on
    async with services.db.read() as conn:
        kinds = (await conn.execute(sa.select(t.events.c.kind))).scalars().all()
    assert kinds == []
    assert await _heartbeat_at(services, "CS1") == T0


class _ReadPragmas(BatchedWrite):
    """Reads, in whichever connection runs the batch, the PRAGMAs the write path relies on."""

    __slots__ = ()

    @classmethod
    async def run_batch(cls, conn: Any, writes: list[Any]) -> list[Any]:
        return [await _pragmas(conn) for _ in writes]


async def _pragmas(conn: Any) -> dict[str, Any]:
    names = ("journal_mode", "synchronous", "wal_autocheckpoint", "cache_size", "foreign_keys")
    return {name: (await conn.exec_driver_sql(f"PRAGMA {name}")).scalar_one() for name in names}


async def test_writer_connection_keeps_a_large_page_cache_and_every_connection_a_long_wal(
    services: Services,
) -> None:
    """The write path's I/O: the writer thread's connection caches 64 MiB of pages (the
    indexes it updates stay in memory), every connection checkpoints the WAL every 10,000
    pages instead of 1,000; the durability settings alike on both (the harness runs
    synchronous NORMAL for speed; `csms serve` FULL)."""
    writer = await services.db.write_batched(_ReadPragmas())
    async with services.db.read() as conn:
        reader = await _pragmas(conn)
    assert writer == {
        "journal_mode": "wal",
        "synchronous": reader["synchronous"],
        "wal_autocheckpoint": 10_000,
        "cache_size": -65_536,
        "foreign_keys": 1,
    }
    assert reader == {**writer, "cache_size": -2_000}  # SQLite's default for readers
