"""Migration 0006 (api_tokens.scope) up and down on SQLite, and on PostgreSQL when
CSMS_TEST_POSTGRES_URL is set: tokens issued before scopes become admin (they could do
everything before, so nothing an operator relies on stops working); the database refuses a
scope outside read/operate/admin."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from csms.persistence import migrate
from tests.support.csms_db import fresh_postgres_database, postgres_url_or_skip, run_sql

BEFORE = "0004"  # the lead re-points 0006 at 0005 on merge; 0005 does not touch api_tokens


async def _columns(url: str) -> set[str]:
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        names = await conn.run_sync(
            lambda c: {col["name"] for col in sa.inspect(c).get_columns("api_tokens")}
        )
    await engine.dispose()
    return names


async def _up_and_down(url: str) -> None:
    await migrate.upgrade_async(url, BEFORE)
    assert "scope" not in await _columns(url)
    now = datetime.now(UTC)
    await run_sql(
        url,
        "INSERT INTO api_tokens (name, token_hash, created_at) VALUES ('old', :hash, :now)",
        hash="a" * 64,
        now=now,
    )
    await migrate.upgrade_async(url, "0006")
    assert await run_sql(url, "SELECT name, scope FROM api_tokens") == [("old", "admin")]
    # No default any more: a new row must say what it may do; and only the three scopes.
    with pytest.raises(sa.exc.IntegrityError):
        await run_sql(
            url,
            "INSERT INTO api_tokens (name, token_hash, created_at) VALUES ('x', :h, :now)",
            h="b" * 64,
            now=now,
        )
    with pytest.raises(sa.exc.IntegrityError):
        await run_sql(
            url,
            "INSERT INTO api_tokens (name, token_hash, created_at, scope) "
            "VALUES ('x', :h, :now, 'root')",
            h="c" * 64,
            now=now,
        )
    await migrate.downgrade_async(url, BEFORE)
    assert "scope" not in await _columns(url)
    assert await run_sql(url, "SELECT name FROM api_tokens") == [("old",)]


async def test_finding10_0006_old_tokens_become_admin_sqlite(tmp_path: Path) -> None:
    await _up_and_down(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")


async def test_finding10_0006_old_tokens_become_admin_postgres() -> None:
    base = postgres_url_or_skip()
    async with fresh_postgres_database(base) as url:
        await _up_and_down(url)
