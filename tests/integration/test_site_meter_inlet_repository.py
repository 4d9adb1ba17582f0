"""The site's meter station and the main meter's stored values, alike on SQLite and PostgreSQL:
`meter_station_id` kept and found by station (not once the station is gone); the telemetry
reader leaves evse-0 rows out (the main meter is not a charger); the register reader reads
only evse 0. And migration 0020 up and down."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from csms.domain import csip_telemetry as ct
from csms.domain.models import MeterSample
from csms.domain.sites import Site
from csms.persistence import migrate
from csms.persistence import tables as t
from csms.persistence.database import Database
from csms.persistence.repositories import csip_telemetry as telemetry_repo
from csms.persistence.repositories import site_meters as repo
from csms.persistence.repositories import sites as srepo
from csms.persistence.repositories.meter_values import insert_meter_samples
from tests.support.csms_db import fresh_postgres_database, postgres_url_or_skip
from tests.support.schema import tables_diff
from tests.support.v2g_nodes import DATABASE_KINDS, one_database

T0 = datetime(2026, 12, 7, 18, 0, tzinfo=UTC)


@pytest.fixture(params=DATABASE_KINDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    async with one_database(request.param, tmp_path) as database:
        yield database


async def _add_stations(db: Database, *ids: str) -> None:
    await db.write(
        lambda c: c.execute(
            sa.insert(t.stations), [{"id": i, "created_at": T0, "updated_at": T0} for i in ids]
        )
    )


def sample(measurand: str, value: float, evse_id: int, at: datetime = T0, **kw: str) -> MeterSample:
    return MeterSample("CS1", at, value, measurand, evse_id=evse_id, **kw)  # type: ignore[arg-type]


async def test_the_meter_station_is_kept_and_found(db: Database) -> None:
    await _add_stations(db, "CS1", "CS2")
    site = Site("home", "Home", station_ids=("CS1", "CS2"), meter_station_id="CS1")
    await db.write(lambda c: srepo.insert_site(c, site, T0))
    async with db.read() as conn:
        assert await srepo.get_site(conn, "home") == site
        found = await srepo.site_metered_by(conn, "CS1")
        assert found is not None and found.id == "home"
        assert await srepo.site_metered_by(conn, "CS2") is None
    # The meter station deleted: its site_stations row goes, and it meters no more.
    await db.write(
        lambda c: c.execute(sa.delete(t.site_stations).where(t.site_stations.c.station_id == "CS1"))
    )
    async with db.read() as conn:
        assert await srepo.site_metered_by(conn, "CS1") is None
        kept = await srepo.get_site(conn, "home")
        assert kept is not None and kept.meter_station_id is None


async def test_evse_0_rows_are_not_telemetry_and_registers_are_only_evse_0(db: Database) -> None:
    later = T0 + timedelta(seconds=30)
    samples = [
        sample(ct.POWER_ACTIVE_IMPORT, 4000.0, 1, transaction_id="tx-1"),
        sample(ct.POWER_ACTIVE_IMPORT, 9000.0, 0, location="Inlet"),
        sample("Energy.Active.Import.Register", 10_000.0, 0, location="Inlet"),
        sample("Energy.Active.Import.Register", 555.0, 1, at=later, transaction_id="tx-1"),
        sample("Energy.Active.Import.Register", 10_050.0, 0, at=later, location="Inlet"),
    ]
    await db.write(lambda c: insert_meter_samples(c, samples))
    async with db.read() as conn:
        recent = await telemetry_repo.recent_samples(
            conn, ["CS1"], T0 - timedelta(minutes=1), T0 + timedelta(minutes=1)
        )
        registers = await repo.main_meter_registers(conn, "CS1", T0 - timedelta(minutes=1), later)
    assert [(s.measurand, s.value, s.evse_id) for s in recent["CS1"]] == [
        (ct.POWER_ACTIVE_IMPORT, 4000.0, 1)
    ]
    der = ct.der_readings(recent, T0, T0 + timedelta(minutes=1), 300)
    assert der.watts == -4000.0  # the car, not the 9 kW of the main meter
    assert [(s.timestamp, s.measurand, s.value, s.evse_id) for s in registers] == [
        (T0, ct.POWER_ACTIVE_IMPORT, 9000.0, 0),  # in the row of a register reading
        (T0, "Energy.Active.Import.Register", 10_000.0, 0),
        (later, "Energy.Active.Import.Register", 10_050.0, 0),
    ]


async def _columns(url: str) -> set[str]:
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        names = await conn.run_sync(
            lambda c: {col["name"] for col in sa.inspect(c).get_columns("sites")}
        )
    await engine.dispose()
    return names


async def _check_migration(url: str) -> None:
    await migrate.upgrade_async(url, "0020")
    assert "meter_station_id" in await _columns(url)
    await migrate.downgrade_async(url, "0019")
    assert "meter_station_id" not in await _columns(url)
    await migrate.upgrade_async(url)
    assert "meter_station_id" in await _columns(url)
    assert await tables_diff(url, ["sites"]) == []  # at head: the table as the code defines it


async def test_0020_sqlite(tmp_path: Path) -> None:
    await _check_migration(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")


@pytest.mark.postgres
async def test_0020_postgresql() -> None:
    async with fresh_postgres_database(postgres_url_or_skip()) as url:
        await _check_migration(url)
