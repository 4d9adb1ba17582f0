"""Migration 0018 (site_meters): up and down on SQLite and PostgreSQL, and the result matches
csms.persistence.site_meter_tables."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from csms.persistence import migrate, site_meter_tables
from csms.persistence.tables import metadata
from tests.integration.test_csms_migrations import (
    _expression_index_warnings_ignored as expression_index_warnings_ignored,
)
from tests.support.csms_db import fresh_postgres_database, postgres_url_or_skip

TABLE = "site_meters"


async def _tables(url: str) -> set[str]:
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
    await engine.dispose()
    return names


async def _diff(url: str) -> list[object]:
    ours = sa.MetaData(naming_convention=metadata.naming_convention)
    for name in ("sites", TABLE):  # the foreign key's target too
        metadata.tables[name].to_metadata(ours)

    def only_ours(obj: object, name: str | None, type_: str, *_: object) -> bool:
        table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
        return table == TABLE

    engine = create_async_engine(url)
    async with engine.connect() as conn:
        with expression_index_warnings_ignored():
            diff = await conn.run_sync(
                lambda c: compare_metadata(
                    MigrationContext.configure(c, opts={"include_object": only_ours}), ours
                )
            )
    await engine.dispose()
    return list(diff)


async def _check(url: str) -> None:
    assert site_meter_tables.site_meters.name in metadata.tables
    await migrate.upgrade_async(url, "0018")
    assert TABLE in await _tables(url)
    assert await _diff(url) == []
    await migrate.downgrade_async(url, "0016")
    assert TABLE not in await _tables(url)
    await migrate.upgrade_async(url)
    assert TABLE in await _tables(url)


async def test_0018_sqlite(tmp_path: Path) -> None:
    await _check(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")


@pytest.mark.postgres
async def test_0018_postgresql() -> None:
    async with fresh_postgres_database(postgres_url_or_skip()) as url:
        await _check(url)
