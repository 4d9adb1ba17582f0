"""Migration 0018 (site_meters): up and down on SQLite and PostgreSQL, and the result matches
csms.persistence.site_meter_tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from csms.persistence import migrate, site_meter_tables
from csms.persistence.tables import metadata
from tests.support.csms_db import fresh_postgres_database, postgres_url_or_skip
from tests.support.schema import table_names, tables_diff

TABLE = "site_meters"


async def _check(url: str) -> None:
    assert site_meter_tables.site_meters.name in metadata.tables
    await migrate.upgrade_async(url, "0018")
    assert TABLE in await table_names(url)
    assert await tables_diff(url, [TABLE], foreign_key_targets=["sites"]) == []
    await migrate.downgrade_async(url, "0016")
    assert TABLE not in await table_names(url)
    await migrate.upgrade_async(url)
    assert TABLE in await table_names(url)


async def test_0018_sqlite(tmp_path: Path) -> None:
    await _check(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")


@pytest.mark.postgres
async def test_0018_postgresql() -> None:
    async with fresh_postgres_database(postgres_url_or_skip()) as url:
        await _check(url)
