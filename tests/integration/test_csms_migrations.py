"""Alembic history on SQLite: every revision up and back down, and the result matches the
table definitions the code uses."""

from __future__ import annotations

import asyncio
from pathlib import Path

import sqlalchemy as sa
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import create_async_engine

import csms.persistence.csip_tables  # registers the CSIP-AUS client's tables (0015)
import csms.persistence.csip_telemetry_tables  # and the telemetry ones (0016)
import csms.persistence.site_meter_tables  # the sites' household meters (0018)
import csms.persistence.v2g_tables  # noqa: F401  (registers the V2G tables on `metadata`)
from csms.persistence import migrate
from csms.persistence.tables import CORE_TABLES, metadata
from tests.support.schema import compare_with, table_names, table_of


def _revisions(url: str) -> list[str]:
    script = ScriptDirectory.from_config(migrate.alembic_config(url))
    return [r.revision for r in reversed(list(script.walk_revisions()))]


def _core_only(obj: object, name: str | None, type_: str, *_: object) -> bool:
    table = table_of(obj, name, type_)
    return table is None or table in CORE_TABLES


# Expression indexes (uq_meter_values_reading, 0017) cannot be reflected from SQLite:
# SQLAlchemy and Alembic warn and leave them out of the comparison there; PostgreSQL compares
# them. `sqlite_expression_indexes` checks them on SQLite instead.
EXPRESSION_INDEXES = {"uq_meter_values_reading"}


async def sqlite_expression_indexes(url: str) -> dict[str, str]:
    """Name -> CREATE INDEX text of the expression indexes in a SQLite database."""
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.text("SELECT name, sql FROM sqlite_master"))).all()
    await engine.dispose()
    return {name: sql for name, sql in rows if name in EXPRESSION_INDEXES}


async def schema_diff(url: str) -> list[object]:
    """Differences between the migrated schema and the core table definitions."""
    core = sa.MetaData(naming_convention=metadata.naming_convention)
    for name in CORE_TABLES:
        metadata.tables[name].to_metadata(core)
    return await compare_with(url, core, _core_only)


async def full_schema_diff(url: str, tables: set[str] | None = None) -> list[object]:
    """Differences between the migrated schema and every table definition the code uses
    (core and V2G; only `tables` when given)."""

    def wanted(obj: object, name: str | None, type_: str, *_: object) -> bool:
        table = table_of(obj, name, type_)
        return tables is None or table is None or table in tables

    return await compare_with(url, metadata, wanted)


# Core columns that later revisions add (0003: the fast password check; 0005: the seqNo
# span and count of a transaction; 0006: token scopes; 0007: OCPP version per station; 0017:
# meter values packed per MeterValue).
ADDED_BY_0003 = {("stations", "password_check")}
ADDED_TO_CORE_LATER = {
    *ADDED_BY_0003,
    ("transactions", "first_seq_no"),
    ("transactions", "seq_count"),
    ("api_tokens", "scope"),
    ("stations", "ocpp_version"),
    ("stations", "ocpp_versions"),
    ("meter_values", "sample_count"),
    ("meter_values", "sampled_values"),
}

# Other core changes of later revisions, as (change, table, name) (0005: seqNos in BIGINT,
# the seen list dropped, the EVSE index and the meter sample key).
CHANGED_IN_CORE_LATER = {
    ("modify_type", "transactions", "last_seq_no"),
    ("modify_type", "transaction_events", "seq_no"),
    ("remove_column", "transactions", "seen_seq_nos"),
    ("add_index", "transactions", "ix_transactions_station_evse"),
    # 0017: one row per MeterValue, the sampled values packed in one column
    *(
        ("remove_column", "meter_values", name)
        for name in ("measurand", "phase", "location", "context", "value", "unit")
    ),
    ("remove_index", "meter_values", "ix_meter_values_station_time"),
    ("remove_index", "meter_values", "ix_meter_values_station_tx"),
    ("add_index", "meter_values", "ix_meter_values_station_tx"),
    ("add_index", "meter_values", "uq_meter_values_reading"),
}


def core_changes_after_0004(dialect: str) -> set[tuple[str, str, str]]:
    """What the revisions after 0004 change in the core, as `_changes` shows it on this
    dialect (a database at 0003 or 0004 differs from the code's tables by exactly this)."""
    return {
        *(("add_column", table, name) for table, name in ADDED_TO_CORE_LATER - ADDED_BY_0003),
        *(
            c
            for c in CHANGED_IN_CORE_LATER
            if dialect != "sqlite" or c[2] not in EXPRESSION_INDEXES
        ),
    }


def _changes(diff: list[object]) -> set[tuple[str, str, str]]:
    """Each difference as (change, table, name)."""
    out = set()
    for entry in diff:
        for change in entry if isinstance(entry, list) else [entry]:
            assert isinstance(change, tuple), change
            if change[0] in ("add_index", "remove_index"):
                out.add((change[0], change[1].table.name, change[1].name))
            elif change[0] == "modify_type":
                out.add((change[0], change[2], change[3]))
            else:
                out.add((change[0], change[2], change[3].name))
    return out


def _added_columns(diff: list[object]) -> set[tuple[str, str]]:
    """The columns added later; every other difference must be one later revisions make
    (expression indexes only where they can be compared)."""
    changes = _changes(diff)
    other = {c for c in changes if c[0] != "add_column"}
    assert other - CHANGED_IN_CORE_LATER == set()
    assert CHANGED_IN_CORE_LATER - other <= {
        c for c in CHANGED_IN_CORE_LATER if c[2] in EXPRESSION_INDEXES
    }
    return {(table, name) for change, table, name in changes if change == "add_column"}


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
    assert set(asyncio.run(sqlite_expression_indexes(url))) == EXPRESSION_INDEXES
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
