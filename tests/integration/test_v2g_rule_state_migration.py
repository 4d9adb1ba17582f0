"""Migration 0004 (v2g_rule_states, the V2G rule state the nodes share) up and down on SQLite,
and on PostgreSQL when CSMS_TEST_POSTGRES_URL is set: the table matches the code's definition,
the data of earlier revisions is kept both ways."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import make_url

from csms.persistence import migrate
from csms.persistence import v2g_tables as v2g
from tests.integration.test_csms_migrations import (
    _changes,
    core_changes_after_0004,
    full_schema_diff,
    schema_diff,
    table_names,
)
from tests.support.csms_db import fresh_postgres_database, postgres_url_or_skip, run_sql

RULES = v2g.v2g_rule_states.name


async def _up_and_down(url: str) -> None:
    await migrate.upgrade_async(url, "0003")
    assert RULES not in await table_names(url)
    now = datetime.now(UTC)
    await run_sql(
        url,
        "INSERT INTO v2g_prices (interval_start, interval_s, import_c_kwh, export_c_kwh, "
        "source, updated_at) VALUES (:now, 300, 10.0, 5.0, 'api', :now)",
        now=now,
    )
    await migrate.upgrade_async(url, "0004")
    assert RULES in await table_names(url)
    assert await full_schema_diff(url, {RULES}) == []
    # Only what later revisions change differs from the code's tables.
    assert _changes(await schema_diff(url)) == core_changes_after_0004(
        make_url(url).get_backend_name()
    )
    assert await run_sql(url, f"SELECT name FROM {RULES}") == []  # starts empty
    state = {"leaf-1": {"state": "arming", "since": 1.5, "until": 0.0, "last_t": 2.5}}
    await run_sql(
        url,
        f"INSERT INTO {RULES} (name, state, updated_at) VALUES ('under_frequency', :s, :now)",
        s=json.dumps(state),
        now=now,
    )
    stored = await run_sql(url, f"SELECT state FROM {RULES}")
    assert [json.loads(s) if isinstance(s, str) else s for (s,) in stored] == [state]
    await migrate.downgrade_async(url, "0003")
    assert RULES not in await table_names(url)
    assert await run_sql(url, "SELECT source FROM v2g_prices") == [("api",)]
    await migrate.upgrade_async(url)
    assert await full_schema_diff(url) == []


async def test_0004_up_and_down_sqlite(tmp_path: Path) -> None:
    await _up_and_down(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")


async def test_0004_up_and_down_postgres() -> None:
    base = postgres_url_or_skip()
    async with fresh_postgres_database(base) as url:
        await _up_and_down(url)
