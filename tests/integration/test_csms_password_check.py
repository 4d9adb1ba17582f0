"""Station Basic auth across CSMS restarts: the fast keyed check admits known stations without
argon2 (a cold boot storm), and falls back to argon2 whenever the check cannot decide."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher
from websockets.exceptions import InvalidStatus

from csms.persistence import repositories as repo
from csms.persistence import tables as t
from csms.services.password_check import PasswordCheck, load_or_create_key
from tests.support.csms_harness import PASSWORD, Csms, raw_connect, running_csms


class CountingHasher(PasswordHasher):
    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.calls = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        self.calls += 1
        return bool(super().verify(hash, password))


@contextlib.asynccontextmanager
async def csms_process(
    tmp_path: Path, **overrides: Any
) -> AsyncIterator[tuple[Csms, CountingHasher]]:
    """One CSMS 'process' on a database that outlives it (a restart = the next one)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'data' / 'csms.db'}"
    (tmp_path / "data").mkdir(exist_ok=True)
    async with running_csms(tmp_path, database_url=url, **overrides) as csms:
        hasher = CountingHasher()
        csms.services.stations._hasher = hasher
        yield csms, hasher


async def _accepted(csms: Csms, station_id: str, password: str) -> bool:
    try:
        ws = await raw_connect(csms, station_id, password=password)
    except InvalidStatus as exc:
        assert exc.response.status_code == 401
        return False
    await ws.close()
    return True


async def _stored_check(csms: Csms, station_id: str) -> str | None:
    async with csms.services.db.read() as conn:
        row = await conn.execute(
            sa.select(t.stations.c.password_check).where(t.stations.c.id == station_id)
        )
        value: str | None = row.scalar_one()
        return value


async def test_a00_fresh_process_admits_known_stations_without_argon2(tmp_path: Path) -> None:
    async with csms_process(tmp_path) as (csms, _):
        for i in range(5):
            await csms.add_station(f"CS{i}")
    async with csms_process(tmp_path) as (csms, hasher):  # restart: nothing cached in memory
        for i in range(5):
            assert await _accepted(csms, f"CS{i}", PASSWORD)
        # A wrong password is refused by the check alone: no argon2 to burn per guess.
        assert not await _accepted(csms, "CS0", "wrong-password-0000")
        assert not await _accepted(csms, "CS1", PASSWORD + "x")
        assert hasher.calls == 0


async def test_a00_station_without_check_gets_one_after_its_first_argon2(tmp_path: Path) -> None:
    async with csms_process(tmp_path) as (csms, hasher):
        await csms.add_station("OLD")
        # As a station registered before migration 0003.
        await csms.services.db.write(lambda c: repo.update_station(c, "OLD", password_check=None))
        assert not await _accepted(csms, "OLD", "wrong-password-0000")
        assert await _stored_check(csms, "OLD") is None  # a failed verification writes nothing
        assert await _accepted(csms, "OLD", PASSWORD)
        assert hasher.calls == 2
        check = await _stored_check(csms, "OLD")
        assert check is not None and check.startswith("hs1$")
    async with csms_process(tmp_path) as (csms, hasher):
        assert await _accepted(csms, "OLD", PASSWORD)
        assert hasher.calls == 0


async def test_a00_another_key_falls_back_to_argon2_and_rewrites_the_check(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with csms_process(tmp_path) as (csms, _):
        await csms.add_station("CS1")
        first = await _stored_check(csms, "CS1")
    rotated = tmp_path / "rotated.key"
    caplog.set_level(logging.WARNING, logger="csms.services.stations")
    async with csms_process(tmp_path, password_key_file=rotated) as (csms, hasher):
        assert not await _accepted(csms, "CS1", "wrong-password-0000")
        assert await _accepted(csms, "CS1", PASSWORD)
        assert hasher.calls == 2  # the old check cannot decide: argon2 does
        second = await _stored_check(csms, "CS1")
        new_key_id = PasswordCheck(load_or_create_key(rotated)).key_id
        assert second is not None and second != first and second.split("$")[1] == new_key_id
    assert "another key" in caplog.text
    async with csms_process(tmp_path, password_key_file=rotated) as (csms, hasher):
        assert await _accepted(csms, "CS1", PASSWORD)
        assert hasher.calls == 0


async def test_a00_hash_changed_behind_the_csms_makes_the_check_stale(tmp_path: Path) -> None:
    async with csms_process(tmp_path) as (csms, _):
        await csms.add_station("CS1")
        new_password = "changed-by-sql-0001"
        new_hash = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(new_password)
        await csms.services.db.write(
            lambda c: repo.update_station(c, "CS1", password_hash=new_hash)
        )
    async with csms_process(tmp_path) as (csms, hasher):
        assert not await _accepted(csms, "CS1", PASSWORD)  # the old password no longer works
        assert await _accepted(csms, "CS1", new_password)
        assert hasher.calls == 2


async def test_a00_password_change_through_the_service_keeps_the_fast_path(
    tmp_path: Path,
) -> None:
    async with csms_process(tmp_path) as (csms, _):
        await csms.add_station("CS1")
        await csms.services.stations.update("CS1", password="another-password-01")
    async with csms_process(tmp_path) as (csms, hasher):
        assert not await _accepted(csms, "CS1", PASSWORD)
        assert await _accepted(csms, "CS1", "another-password-01")
        assert hasher.calls == 0


async def test_a00_bad_key_file_stops_the_start_with_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.key"
    bad.write_text("0123")
    with pytest.raises(ValueError, match="16 bytes"):
        async with csms_process(tmp_path, password_key_file=bad):
            pass
