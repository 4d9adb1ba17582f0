"""Alembic history on SQLite: every revision up and back down, and the result matches the
table definitions the code uses."""

from __future__ import annotations

import asyncio
from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import create_async_engine

from csms.persistence import migrate
from csms.persistence.tables import metadata


def _revisions(url: str) -> list[str]:
    script = ScriptDirectory.from_config(migrate.alembic_config(url))
    return [r.revision for r in reversed(list(script.walk_revisions()))]


async def table_names(url: str) -> set[str]:
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
    await engine.dispose()
    return names - {"alembic_version"}


async def schema_diff(url: str) -> list[object]:
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        diff = await conn.run_sync(
            lambda c: compare_metadata(MigrationContext.configure(c), metadata)
        )
    await engine.dispose()
    return list(diff)


def test_every_revision_up_and_down_sqlite(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    revisions = _revisions(url)
    assert revisions[0] == "0001"
    for revision in revisions:
        migrate.upgrade(url, revision)
    assert asyncio.run(table_names(url)) == set(metadata.tables)
    assert asyncio.run(schema_diff(url)) == []
    for previous in [*reversed(revisions[:-1]), "base"]:
        migrate.downgrade(url, previous)
    assert asyncio.run(table_names(url)) == set()
    migrate.upgrade(url)  # and up again from nothing
    assert asyncio.run(table_names(url)) == set(metadata.tables)


async def test_upgrade_callable_inside_running_loop(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'loop.db'}"
    migrate.upgrade(url)  # blocking form, from inside the loop (runs in a thread)
    assert await table_names(url) == set(metadata.tables)
    await migrate.downgrade_async(url, "base")
    assert await table_names(url) == set()
    await migrate.upgrade_async(url)
    assert await table_names(url) == set(metadata.tables)
