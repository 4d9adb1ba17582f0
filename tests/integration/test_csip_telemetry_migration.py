"""Migration 0016 (csip_mirror_points, csip_subscriptions): up and down on SQLite and
PostgreSQL, and the result matches csms.persistence.csip_telemetry_tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from csms.persistence import csip_telemetry_tables, migrate
from csms.persistence.tables import metadata
from tests.support.csms_db import fresh_postgres_database, postgres_url_or_skip
from tests.support.schema import table_names, tables_diff

TABLES = ("csip_mirror_points", "csip_subscriptions")


async def _check(url: str) -> None:
    assert csip_telemetry_tables.csip_subscriptions.name in metadata.tables
    await migrate.upgrade_async(url, "0016")
    assert set(TABLES) <= await table_names(url)
    assert await tables_diff(url, TABLES, foreign_key_targets=("stations", "sites")) == []
    await migrate.downgrade_async(url, "0015")
    assert not set(TABLES) & await table_names(url)
    await migrate.upgrade_async(url)
    assert set(TABLES) <= await table_names(url)


async def test_0016_sqlite(tmp_path: Path) -> None:
    await _check(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")


@pytest.mark.postgres
async def test_0016_postgresql() -> None:
    async with fresh_postgres_database(postgres_url_or_skip()) as url:
        await _check(url)
