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

import csms.persistence.v2g_tables  # noqa: F401  (registers the V2G tables on `metadata`)
from csms.persistence import migrate
from csms.persistence.tables import CORE_TABLES, metadata


def _revisions(url: str) -> list[str]:
    script = ScriptDirectory.from_config(migrate.alembic_config(url))
    return [r.revision for r in reversed(list(script.walk_revisions()))]


async def table_names(url: str) -> set[str]:
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
    await engine.dispose()
    return names - {"alembic_version"}


def _core_only(obj: object, name: str | None, type_: str, *_: object) -> bool:
    table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
    return table is None or table in CORE_TABLES


async def schema_diff(url: str) -> list[object]:
    """Differences between the migrated schema and the core table definitions."""
    core = sa.MetaData(naming_convention=metadata.naming_convention)
    for name in CORE_TABLES:
        metadata.tables[name].to_metadata(core)
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        diff = await conn.run_sync(
            lambda c: compare_metadata(
                MigrationContext.configure(c, opts={"include_object": _core_only}), core
            )
        )
    await engine.dispose()
    return list(diff)


async def full_schema_diff(url: str, tables: set[str] | None = None) -> list[object]:
    """Differences between the migrated schema and every table definition the code uses
    (core and V2G; only `tables` when given)."""

    def wanted(obj: object, name: str | None, type_: str, *_: object) -> bool:
        table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
        return tables is None or table is None or table in tables

    engine = create_async_engine(url)
    async with engine.connect() as conn:
        diff = await conn.run_sync(
            lambda c: compare_metadata(
                MigrationContext.configure(c, opts={"include_object": wanted}), metadata
            )
        )
    await engine.dispose()
    return list(diff)


# Core columns that later revisions add (0003: the fast password check; 0006: token scopes).
ADDED_TO_CORE_LATER = {("stations", "password_check"), ("api_tokens", "scope")}


def _added_columns(diff: list[object]) -> set[tuple[str, str]]:
    added = set()
    for entry in diff:
        assert isinstance(entry, tuple) and entry[0] == "add_column", entry
        added.add((entry[2], entry[3].name))
    return added


def test_every_revision_up_and_down_sqlite(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    revisions = _revisions(url)
    assert revisions[0] == "0001"
    for revision in revisions:
        migrate.upgrade(url, revision)
        if revision == "0001":
            assert asyncio.run(table_names(url)) == CORE_TABLES
            assert _added_columns(asyncio.run(schema_diff(url))) == ADDED_TO_CORE_LATER
    assert asyncio.run(table_names(url)) >= CORE_TABLES
    assert asyncio.run(schema_diff(url)) == []  # later revisions keep the core intact
    assert asyncio.run(full_schema_diff(url)) == []  # head: every table as the code defines it
    for previous in [*reversed(revisions[:-1]), "base"]:
        migrate.downgrade(url, previous)
        if previous == "0001":
            assert asyncio.run(table_names(url)) == CORE_TABLES
    assert asyncio.run(table_names(url)) == set()
    migrate.upgrade(url)  # and up again from nothing
    assert asyncio.run(table_names(url)) >= CORE_TABLES


async def test_upgrade_callable_inside_running_loop(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'loop.db'}"
    migrate.upgrade(url, "0001")  # blocking form, from inside the loop (runs in a thread)
    assert await table_names(url) == CORE_TABLES
    await migrate.downgrade_async(url, "base")
    assert await table_names(url) == set()
    await migrate.upgrade_async(url)
    assert await table_names(url) >= CORE_TABLES
