"""The sites' household meter readings, stored alike on SQLite and PostgreSQL: the latest per
site (an older one arriving late is not kept), the bases applied swapped compare-and-set (two
nodes seeing the same state: one wins), removed with the site."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from csms.domain.site_meter import BaseInterval, MeterReading, reading_from
from csms.domain.sites import Site
from csms.persistence.database import Database
from csms.persistence.repositories import site_meters as repo
from csms.persistence.repositories import sites as srepo
from tests.support.v2g_nodes import DATABASE_KINDS, one_database

T0 = datetime(2026, 12, 7, 8, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture(params=DATABASE_KINDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    async with one_database(request.param, tmp_path) as database:
        yield database


def reading(at: datetime, watts: float) -> MeterReading:
    return reading_from("home", measured_at=at, received_at=at, source="api", grid_import_w=watts)


async def test_latest_reading_cas_and_cascade(db: Database) -> None:
    await db.write(lambda c: srepo.insert_site(c, Site("home", "Home"), T0))
    interval = BaseInterval(100.0, 200.0, -50.0, 1)
    assert await db.write(lambda c: repo.save_reading(c, reading(T0, 150.0), interval))
    later = T0 + timedelta(seconds=5)
    assert await db.write(lambda c: repo.save_reading(c, reading(later, 900.0), interval))
    late = reading(T0 + timedelta(seconds=1), 5.0)
    assert not await db.write(lambda c: repo.save_reading(c, late, interval))
    async with db.read() as conn:
        stored = await repo.latest(conn, "home")
        assert await repo.metered_site_ids(conn) == ["home"]
    assert stored is not None
    assert (stored.reading.grid_import_w, stored.reading.measured_at) == (900.0, later)
    assert stored.interval == interval and stored.applied is None

    # Two nodes both saw "never applied": one claim wins.
    assert await db.write(lambda c: repo.claim_applied(c, "home", None, (1.0, 2.0), later))
    assert not await db.write(lambda c: repo.claim_applied(c, "home", None, (3.0, 4.0), later))
    async with db.read() as conn:
        stored = await repo.latest(conn, "home")
    assert stored is not None and stored.applied == (1.0, 2.0) and stored.applied_at == later
    # The next claim must name the applied_at it saw (microseconds round-trip exactly).
    again = later + timedelta(seconds=20)
    assert await db.write(lambda c: repo.claim_applied(c, "home", later, (5.0, 6.0), again))
    assert not await db.write(lambda c: repo.claim_applied(c, "home", later, (7.0, 8.0), again))

    await db.write(lambda c: srepo.delete_site(c, "home"))
    async with db.read() as conn:
        assert await repo.latest(conn, "home") is None
