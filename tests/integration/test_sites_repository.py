"""Sites, their stations and their envelopes, stored alike on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from csms.domain.envelopes import OperatingEnvelope
from csms.domain.sites import Site
from csms.persistence import tables as t
from csms.persistence.database import Database
from csms.persistence.repositories import sites as repo
from tests.support.v2g_nodes import DATABASE_KINDS, one_database

T0 = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)


@pytest.fixture(params=DATABASE_KINDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    async with one_database(request.param, tmp_path) as database:
        yield database


async def _add_stations(db: Database, *ids: str) -> None:
    async def op(conn: sa.ext.asyncio.AsyncConnection) -> None:
        await conn.execute(
            sa.insert(t.stations), [{"id": i, "created_at": T0, "updated_at": T0} for i in ids]
        )

    await db.write(op)


def _envelope(site_id: str, source: str, start_h: int, **limits: float) -> OperatingEnvelope:
    return OperatingEnvelope(
        site_id=site_id,
        source=source,
        control_id=f"c{start_h}",
        is_default=False,
        start=T0 + timedelta(hours=start_h),
        end=T0 + timedelta(hours=start_h + 1),
        received_at=T0,
        **limits,
    )


async def test_a_site_keeps_its_fields_and_stations(db: Database) -> None:
    await _add_stations(db, "cs-1", "cs-2", "cs-3")
    site = Site(
        id="home-1",
        name="Home 1",
        nmi="20019857328",
        lfdi="ab" * 20,
        sfdi=123456789012 // 10,
        registration_pin=12345,
        csip_enabled=True,
        station_ids=("cs-1", "cs-2"),
    )
    await db.write(lambda conn: repo.insert_site(conn, site, T0))
    async with db.read() as conn:
        assert await repo.get_site(conn, "home-1") == site
        assert await repo.site_of_station(conn, "cs-2") == "home-1"
        assert await repo.site_of_station(conn, "cs-3") is None
    moved = Site(id="home-1", name="Home one", station_ids=("cs-3",))
    assert await db.write(lambda conn: repo.update_site(conn, moved, T0))
    async with db.read() as conn:
        assert await repo.get_site(conn, "home-1") == moved
        assert [s.id for s in await repo.list_sites(conn, csip_only=True)] == []


async def test_a_station_belongs_to_one_site_only(db: Database) -> None:
    await _add_stations(db, "cs-1")
    await db.write(lambda c: repo.insert_site(c, Site("a", "A", station_ids=("cs-1",)), T0))
    with pytest.raises(repo.StationInAnotherSite, match="'cs-1' already belongs to site 'a'"):
        await db.write(lambda c: repo.insert_site(c, Site("b", "B", station_ids=("cs-1",)), T0))
    async with db.read() as conn:
        assert [s.id for s in await repo.list_sites(conn)] == ["a"]


async def test_envelopes_are_replaced_per_source_and_go_with_their_site(db: Database) -> None:
    await db.write(lambda c: repo.insert_site(c, Site("home", "Home"), T0))
    csip = [_envelope("home", "csip-aus", h, export_limit_w=1500.0 * h) for h in (2, 1)]
    operator = [_envelope("home", "operator", 0, import_limit_w=7000.0, energize=True)]
    await db.write(lambda c: repo.replace_envelopes(c, "home", "csip-aus", csip))
    await db.write(lambda c: repo.replace_envelopes(c, "home", "operator", operator))
    async with db.read() as conn:
        assert await repo.site_envelopes(conn, "home") == [operator[0], csip[1], csip[0]]
    await db.write(lambda c: repo.replace_envelopes(c, "home", "csip-aus", csip[:1]))
    async with db.read() as conn:
        assert await repo.site_envelopes(conn, "home", source="csip-aus") == csip[:1]
    with pytest.raises(ValueError, match="this site and source"):
        await db.write(lambda c: repo.replace_envelopes(c, "home", "operator", csip))
    assert await db.write(lambda c: repo.delete_site(c, "home"))
    async with db.read() as conn:
        assert await repo.site_envelopes(conn, "home") == []
        assert await repo.get_site(conn, "home") is None


async def test_stored_envelopes_are_bounded_per_source(db: Database) -> None:
    await db.write(lambda c: repo.insert_site(c, Site("home", "Home"), T0))
    many = [_envelope("home", "csip-aus", h) for h in range(repo.MAX_ENVELOPES_PER_SOURCE + 20)]
    await db.write(lambda c: repo.replace_envelopes(c, "home", "csip-aus", many[::-1]))
    async with db.read() as conn:
        kept = await repo.site_envelopes(conn, "home")
    assert kept == many[: repo.MAX_ENVELOPES_PER_SOURCE]
