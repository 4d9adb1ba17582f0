"""Migration 0003 (stations.password_check) up and down on SQLite, and on PostgreSQL when
CSMS_TEST_POSTGRES_URL is set: existing stations keep their hash and start without a check."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from csms.persistence import migrate
from tests.integration.test_csms_migrations import _changes, core_changes_after_0004, schema_diff
from tests.support.csms_db import fresh_postgres_database, postgres_url_or_skip, run_sql


async def _columns(url: str) -> set[str]:
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        names = await conn.run_sync(
            lambda c: {col["name"] for col in sa.inspect(c).get_columns("stations")}
        )
    await engine.dispose()
    return names


async def _up_and_down(url: str) -> None:
    await migrate.upgrade_async(url, "0002")
    assert "password_check" not in await _columns(url)
    now = datetime.now(UTC)
    await run_sql(
        url,
        "INSERT INTO stations (id, password_hash, created_at, updated_at) "
        "VALUES ('OLD', '$argon2id$old', :now, :now)",
        now=now,
    )
    await migrate.upgrade_async(url, "0003")
    assert "password_check" in await _columns(url)
    assert await run_sql(url, "SELECT id, password_hash, password_check FROM stations") == [
        ("OLD", "$argon2id$old", None)
    ]
    # Only what later revisions change differs from the code's tables.
    assert _changes(await schema_diff(url)) == core_changes_after_0004(
        make_url(url).get_backend_name()
    )
    await migrate.downgrade_async(url, "0002")
    assert "password_check" not in await _columns(url)
    assert await run_sql(url, "SELECT id, password_hash FROM stations") == [
        ("OLD", "$argon2id$old")
    ]


async def test_0003_up_and_down_sqlite(tmp_path: Path) -> None:
    await _up_and_down(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")


async def test_0003_up_and_down_postgres() -> None:
    base = postgres_url_or_skip()
    async with fresh_postgres_database(base) as url:
        await _up_and_down(url)
