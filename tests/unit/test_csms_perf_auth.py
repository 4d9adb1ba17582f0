"""Password verification under a reconnect storm: bounded argon2 work, nothing wasted."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Literal

import pytest
from argon2 import PasswordHasher
from sqlalchemy import event

from csms.domain.models import StoredPassword
from csms.services.container import Services
from tests.support.csms_harness import PASSWORD, running_services


class _SlowCountingHasher(PasswordHasher):
    """argon2 with cheap parameters, made slow on purpose, counting concurrent verifications."""

    def __init__(self, delay_s: float) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.delay_s = delay_s
        self.running = 0
        self.most_at_once = 0
        self.calls = 0
        self._lock = threading.Lock()

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        with self._lock:
            self.calls += 1
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            time.sleep(self.delay_s)
            return super().verify(hash, password)
        finally:
            with self._lock:
                self.running -= 1


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    async with running_services(tmp_path) as running:
        yield running


async def _password_hash(services: Services, station_id: str) -> StoredPassword:
    """The stored password without its fast check (a station from before migration 0003),
    so that verifying it takes the argon2 path this file is about."""
    await services.stations.create(station_id, password=PASSWORD)
    admission = await services.stations.admission(station_id)
    assert admission is not None and admission[1] is not None
    return StoredPassword(admission[1].hash, None)


async def test_a01_storm_runs_at_most_one_argon2_per_core(services: Services) -> None:
    hasher = _SlowCountingHasher(0.02)
    services.stations._hasher = hasher
    hashes = {f"CS{i}": await _password_hash(services, f"CS{i}") for i in range(12)}
    results = await asyncio.gather(
        *(services.stations.verify_password(sid, PASSWORD, h) for sid, h in hashes.items()),
        services.stations.verify_password("CS0", "wrong-password-000", hashes["CS0"]),
    )
    assert results == [True] * 12 + [False]
    assert hasher.most_at_once <= (os.cpu_count() or 1)
    # Verified credentials are cached: a second storm costs no argon2 at all.
    calls = hasher.calls
    again = await asyncio.gather(
        *(services.stations.verify_password(sid, PASSWORD, h) for sid, h in hashes.items())
    )
    assert again == [True] * 12 and hasher.calls == calls


async def test_a01_a_started_verification_is_cached_when_its_handshake_gives_up(
    services: Services,
) -> None:
    hasher = _SlowCountingHasher(0.3)
    services.stations._hasher = hasher
    password_hash = await _password_hash(services, "CS1")
    attempt = asyncio.ensure_future(
        services.stations.verify_password("CS1", PASSWORD, password_hash)
    )
    await asyncio.sleep(0.05)  # the verification is running in its thread
    attempt.cancel()  # the handshake timed out
    with pytest.raises(asyncio.CancelledError):
        await attempt
    await asyncio.sleep(0.4)
    calls = hasher.calls
    assert await services.stations.verify_password("CS1", PASSWORD, password_hash)
    assert hasher.calls == calls == 1  # the retry found it verified
    # A wrong password is never cached.
    assert not await services.stations.verify_password("CS1", "x" * 20, password_hash)


async def test_a01_concurrent_admissions_are_read_together(services: Services) -> None:
    for i in range(40):
        await services.stations.create(f"CS{i}", password=PASSWORD)
    reads: list[str] = []

    def seen(conn: object, cursor: object, statement: str, *args: object) -> None:
        if "FROM stations" in statement:
            reads.append(statement)

    engine = services.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        ids = [f"CS{i}" for i in range(40)] + ["NOPE", "CS3"]
        found = await asyncio.gather(*(services.stations.admission(sid) for sid in ids))
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert [f[0].id if f else None for f in found] == [*ids[:40], None, "CS3"]
    assert all(f[1] and f[1].hash.startswith("$argon2") for f in found if f)
    assert all(f[1] and f[1].check and f[1].check.startswith("hs1$") for f in found if f)
    assert len(reads) <= 3  # one read for the lot (plus the one that was already running)
    # A station changed after a read is seen by the next one: nothing is cached.
    await services.stations.delete("CS5")
    assert await services.stations.admission("CS5") is None
