"""Async engine and the group-commit writer.

Durability rule: a station's message is committed before the CSMS answers it. Committing each
message on its own costs one fsync per message; instead handlers `await db.write(op)`, one task
runs every queued op of a batch in ONE transaction, commits once, and resolves each waiter's
future. If a batch fails, its ops are retried one transaction each so that one bad write fails
only its own caller.

Hot paths (Heartbeat, StatusNotification, meter values, events, the message log) write rows
for constant statements: `await db.write_rows(RowWrite(statement, [params]), ...)`. The writer
runs every such row of a batch that shares a statement as ONE executemany, so a batch costs a
few statements whatever its size: on SQLite each statement is a hop to aiosqlite's thread (the
profile showed ~3 hops per statement as the main cost per message), on PostgreSQL a round trip.
Order is kept where it matters: rows are grouped only between two opaque ops, groups run in the
order their first row came, and an opaque op sees every row queued before it.

SQLite: a batch of only rows and batched writes (every hot path) runs in ONE hop to a writer
thread, on a plain pysqlite connection of the same file: through aiosqlite each statement is
three or four hops between the event loop and aiosqlite's thread, which at a realistic load
(a batch holds one or two messages) was most of the CPU per message (a TransactionEvent:
~2.1 ms of CPU through aiosqlite, ~0.8 ms in the thread). The ops still see an awaitable
`execute` (a synchronous one underneath): their coroutine runs to its end in the thread; one
that awaits anything else fails its batch, which is then retried op by op on the async engine
like any failed batch. Opaque ops (`write`) keep running on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import stat
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import orjson
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql.base import Executable

from csms.persistence.bulk import execute_many

log = logging.getLogger(__name__)

T = TypeVar("T")
WriteOp = Callable[[AsyncConnection], Awaitable[T]]


# Checkpoint the WAL into the database file every this many pages (SQLite's default: 1,000).
# A page the write path dirties in many commits (an index leaf of a station's rows) is then
# copied into the file once per 40 MB of WAL instead of once per 4 MB: with the writer's page
# cache below, the writes per message fell ~30 % and the reads ~90 % (profile_write_path.py
# prints the file I/O per message). The WAL file stays at most ~40 MB.
WAL_AUTOCHECKPOINT_PAGES = 10_000
# The page cache of the writer thread's connection, KiB (SQLite's default: 2,000). Readers
# keep the default: each connection has its own cache, and a reader's is invalidated by every
# commit of the writer anyway.
WRITER_CACHE_KIB = 65_536


def _set_sqlite_pragmas(
    engine: Engine, sqlite_synchronous: str, *, cache_kib: int | None = None
) -> None:
    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        # WAL: readers don't block the single writer; FULL: a commit survives power loss.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={sqlite_synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
        if cache_kib is not None:
            cursor.execute(f"PRAGMA cache_size=-{cache_kib}")  # negative: KiB, not pages
        cursor.close()


def sqlite_file_of(database_url: str) -> Path | None:
    """The file of a SQLite URL; None for other databases and in-memory ones."""
    if not database_url.startswith("sqlite"):
        return None
    database = sa.engine.make_url(database_url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    if "mode=memory" in database_url:
        return None
    return Path(database)


def create_private_sqlite_file(database_url: str) -> None:
    """Create the SQLite file with mode 0600 before SQLite opens it (SQLite would create it
    0644 under the usual umask: station password hashes and the message log, readable by
    every local user). SQLite gives the -wal and -shm files the database file's mode. An
    existing file keeps its mode, with a warning if others may read it."""
    path = sqlite_file_of(database_url)
    if path is None:
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            log.warning(
                "database file %s has mode %04o: other users may read station password "
                "hashes and the message log (chmod 600 %s)",
                path,
                mode,
                path,
            )
        return
    except FileNotFoundError:  # no such directory: let SQLite report it
        return
    os.close(fd)  # an empty file is an empty SQLite database


def json_text(value: Any) -> str:
    """JSON columns' text: orjson (a TransactionEvent payload in ~1 us, ~10 us with the json
    module); what orjson refuses (an integer beyond 64 bits, a non-string key) is written
    by the json module as before. Readers parse the text, so the compact form changes no
    answer."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # orjson.JSONEncodeError
        return json.dumps(value)


def make_engine(database_url: str, *, sqlite_synchronous: str = "FULL") -> AsyncEngine:
    """Engine for sqlite+aiosqlite or postgresql+asyncpg URLs."""
    if database_url.startswith("sqlite"):
        create_private_sqlite_file(database_url)
        # A fixed pool without overflow: under a connect storm overflow connections were
        # opened and closed per read (each a new thread and PRAGMAs), most of its CPU.
        engine = create_async_engine(
            database_url,
            connect_args={"timeout": 30},
            pool_size=8,
            max_overflow=0,
            json_serializer=json_text,
        )
        _set_sqlite_pragmas(engine.sync_engine, sqlite_synchronous)
        return engine
    # No overflow for the same reason: a new PostgreSQL connection per read in a storm.
    return create_async_engine(
        database_url,
        pool_size=16,
        max_overflow=0,
        pool_pre_ping=True,
        json_serializer=json_text,
    )


class RowWrite:
    """Rows for a constant statement (a module-level object reused for every call): one
    parameter set each."""

    __slots__ = ("rows", "statement")

    def __init__(self, statement: Executable, rows: list[dict[str, Any]]) -> None:
        self.statement = statement
        self.rows = rows


RowWrites = tuple[RowWrite, ...]


class BatchedWrite:
    """A write that runs together with every other write of its class in a batch: the writer
    calls `type(w).run_batch(conn, writes)` once with all of them, in queue order, and it
    returns one result per write (e.g. one read for many TransactionEvents, then one
    executemany per table). Subclasses must not depend on rows or ops queued after them."""

    __slots__ = ()

    @classmethod
    async def run_batch(cls, conn: AsyncConnection, writes: list[Any]) -> list[Any]:
        raise NotImplementedError


Op = WriteOp[Any] | RowWrites | BatchedWrite


class _Pending:
    __slots__ = ("future", "op")

    def __init__(self, op: Op, future: asyncio.Future[Any]) -> None:
        self.op = op
        self.future = future


async def _execute_rows(conn: AsyncConnection, statement: Executable, rows: list[Any]) -> None:
    await execute_many(conn, statement, rows)


async def _run_one(conn: AsyncConnection, op: Op) -> Any:
    if isinstance(op, tuple):
        for write in op:
            if write.rows:
                await _execute_rows(conn, write.statement, write.rows)
        return None
    if isinstance(op, BatchedWrite):
        (result,) = await type(op).run_batch(conn, [op])
        return result
    return await op(conn)


async def _run_batch(conn: AsyncConnection, batch: list[_Pending]) -> list[Any]:
    """Run `batch` in `conn`'s transaction: rows sharing a statement as one executemany,
    batched writes of one class in one call; opaque ops in place, after everything queued
    before them."""
    results: list[Any] = [None] * len(batch)
    # Statement -> rows, or BatchedWrite class -> [(index, write)], in order of first use.
    groups: dict[Any, list[Any]] = {}

    async def flush() -> None:
        for key, items in groups.items():
            if isinstance(key, type) and issubclass(key, BatchedWrite):
                outcomes = await key.run_batch(conn, [write for _, write in items])
                for (index, _), outcome in zip(items, outcomes, strict=True):
                    results[index] = outcome
            else:
                await _execute_rows(conn, key, items)
        groups.clear()

    for index, pending in enumerate(batch):
        op = pending.op
        if isinstance(op, tuple):
            for write in op:
                if write.rows:
                    groups.setdefault(write.statement, []).extend(write.rows)
            continue
        if isinstance(op, BatchedWrite):
            groups.setdefault(type(op), []).append((index, op))
            continue
        if groups:
            await flush()
        results[index] = await op(conn)
    if groups:
        await flush()
    return results


def make_thread_engine(engine: AsyncEngine, *, sqlite_synchronous: str = "FULL") -> Engine | None:
    """For a SQLite file: a synchronous (pysqlite) engine on the same file for the writer
    thread, with the same PRAGMAs; its statements are seen by listeners of `engine`'s
    ConnectionEvents (e.g. before_cursor_execute) as well. None for other databases."""
    url = engine.url
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    if "mode=memory" in str(url):
        return None
    thread_engine = sa.create_engine(
        url.set(drivername="sqlite+pysqlite"),
        # Created and used in the one writer thread; closed there too.
        connect_args={"timeout": 30, "check_same_thread": False},
        pool_size=1,
        max_overflow=0,
        json_serializer=json_text,
    )
    _set_sqlite_pragmas(thread_engine, sqlite_synchronous, cache_kib=WRITER_CACHE_KIB)
    # What OptionEngine does: the parent's connection-event listeners, present and future,
    # also fire here (statement counters, tracing).
    thread_engine.dispatch = thread_engine.dispatch._join(engine.sync_engine.dispatch)
    thread_engine._has_events = True  # look for (joined) listeners at every event point
    return thread_engine


class _ThreadConnection:
    """What a write op sees of the connection when its batch runs in the writer thread: the
    awaitable API the ops use, executed synchronously on a pysqlite connection."""

    __slots__ = ("_conn",)

    def __init__(self, conn: sa.Connection) -> None:
        self._conn = conn

    @property
    def dialect(self) -> Any:
        return self._conn.dialect

    async def execute(self, statement: Any, parameters: Any = None, **kw: Any) -> Any:
        return self._conn.execute(statement, parameters, **kw)

    async def exec_driver_sql(self, statement: str, parameters: Any = None) -> Any:
        return self._conn.exec_driver_sql(statement, parameters)

    async def scalar(self, statement: Any, parameters: Any = None, **kw: Any) -> Any:
        return self._conn.scalar(statement, parameters, **kw)

    async def scalars(self, statement: Any, parameters: Any = None, **kw: Any) -> Any:
        return self._conn.scalars(statement, parameters, **kw)


class NotSynchronous(RuntimeError):
    """A write op awaited something else than its connection in the writer thread."""


def _run_to_end(coroutine: Any) -> Any:
    """Run a coroutine that never suspends (every await it makes returns at once) to its
    end, without an event loop."""
    try:
        coroutine.send(None)
    except StopIteration as stop:
        return stop.value
    coroutine.close()
    raise NotSynchronous("a write op awaited something else than its connection")


class GroupCommitWriter:
    """Runs queued write ops in batches, one transaction and one commit per batch."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        max_batch: int = 512,
        thread_engine: Engine | None = None,
    ) -> None:
        self._engine = engine
        self._max_batch = max_batch
        # SQLite: batches of rows and batched writes run in this thread (see the module doc).
        self._thread_engine = thread_engine
        self._thread_conn: sa.Connection | None = None
        self._thread: ThreadPoolExecutor | None = (
            ThreadPoolExecutor(1, thread_name_prefix="csms-sqlite-writer")
            if thread_engine is not None
            else None
        )
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._conn: AsyncConnection | None = None
        self.batches_committed = 0
        self.ops_committed = 0
        # Told (seconds, writes) after each batch: the commit-latency metric.
        self.on_commit: Callable[[float, int], None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="csms-group-commit")

    async def close(self) -> None:
        if self._task is None:
            return
        await self._queue.put(None)
        await self._task
        self._task = None
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await conn.close()
        if self._thread is not None:
            await asyncio.get_running_loop().run_in_executor(self._thread, self._thread_close)
            self._thread.shutdown()
            self._thread = None

    async def submit(self, op: WriteOp[T]) -> T:
        if self._task is None:
            raise RuntimeError("writer not started")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(op, future))
        return await future

    async def submit_batched(self, write: BatchedWrite) -> Any:
        if self._task is None:
            raise RuntimeError("writer not started")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(write, future))
        return await future

    async def submit_rows(self, writes: RowWrites) -> None:
        if self._task is None:
            raise RuntimeError("writer not started")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(writes, future))
        await future

    async def _run(self) -> None:
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            started = time.perf_counter()
            await self._commit(batch)
            if self.on_commit is not None:
                self.on_commit(time.perf_counter() - started, len(batch))

    def _thread_batch(self, batch: list[_Pending]) -> list[Any]:
        """In the writer thread: the batch in one transaction of the kept connection."""
        assert self._thread_engine is not None
        try:
            if self._thread_conn is None:
                self._thread_conn = self._thread_engine.connect()
            with self._thread_conn.begin():
                results: list[Any] = _run_to_end(
                    _run_batch(_ThreadConnection(self._thread_conn), batch)  # type: ignore[arg-type]
                )
                return results
        except Exception:
            self._thread_close()
            raise

    def _thread_close(self) -> None:
        conn, self._thread_conn = self._thread_conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.invalidate()
            with contextlib.suppress(Exception):
                conn.close()
        if self._thread_engine is not None and self._task is None:
            self._thread_engine.dispose()

    async def _commit(self, batch: list[_Pending]) -> None:
        try:
            if self._thread is not None and all(
                isinstance(p.op, tuple | BatchedWrite) for p in batch
            ):
                results = await asyncio.get_running_loop().run_in_executor(
                    self._thread, self._thread_batch, batch
                )
            else:
                # The writer keeps its connection between batches: a pool checkout, its
                # reset and (PostgreSQL) its pre-ping per batch were most of the cost of a
                # small batch.
                if self._conn is None:
                    self._conn = await self._engine.connect()
                async with self._conn.begin():
                    results = await _run_batch(self._conn, batch)
        except Exception as exc:
            # It may be broken (database restarted): the retries below and the next batch
            # start from the pool.
            await self._drop_connection()
            # One op spoilt the batch (or the kept connection was broken): run each alone,
            # on a connection from the pool, so that only its caller sees its error.
            log.debug("batch of %d failed (%s): retrying each op alone", len(batch), exc)
            for pending in batch:
                await self._commit_one(pending)
            return
        self.batches_committed += 1
        self.ops_committed += len(batch)
        for pending, result in zip(batch, results, strict=True):
            if not pending.future.done():
                pending.future.set_result(result)

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.invalidate()
            with contextlib.suppress(Exception):
                await conn.close()

    async def _commit_one(self, pending: _Pending) -> None:
        try:
            async with self._engine.begin() as conn:
                result = await _run_one(conn, pending.op)
        except Exception as exc:
            self._fail(pending, exc)
            return
        self.batches_committed += 1
        self.ops_committed += 1
        if not pending.future.done():
            pending.future.set_result(result)

    @staticmethod
    def _fail(pending: _Pending, exc: BaseException) -> None:
        if not pending.future.done():
            pending.future.set_exception(exc)


class Database:
    """Engine + writer. Reads use their own connection; writes go through the group commit."""

    def __init__(self, database_url: str, *, sqlite_synchronous: str = "FULL") -> None:
        self.url = database_url
        self.engine = make_engine(database_url, sqlite_synchronous=sqlite_synchronous)
        self.writer = GroupCommitWriter(
            self.engine,
            thread_engine=make_thread_engine(self.engine, sqlite_synchronous=sqlite_synchronous),
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def start(self) -> None:
        self.writer.start()

    async def close(self) -> None:
        await self.writer.close()
        await self.engine.dispose()

    async def write(self, op: WriteOp[T]) -> T:
        """Run `op` inside the next group commit; returns once it is durably committed."""
        return await self.writer.submit(op)

    async def write_batched(self, write: BatchedWrite) -> Any:
        """Run `write` with every other write of its class in the next group commit; returns
        its result once durably committed."""
        return await self.writer.submit_batched(write)

    async def write_rows(self, *writes: RowWrite) -> None:
        """Run `writes` (in order, atomically) inside the next group commit; returns once
        durably committed. Rows of one batch sharing a statement run as one executemany."""
        await self.writer.submit_rows(writes)

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            yield conn

    async def ping(self) -> bool:
        async with self.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
        return True
