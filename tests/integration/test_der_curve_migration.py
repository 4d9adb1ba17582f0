"""Migration 0008 (der_curve_settings) up and down on SQLite, and on
PostgreSQL when CSMS_TEST_POSTGRES_URL is set: the table matches the code's definition and
earlier data is kept both ways."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from csms.persistence import migrate
from csms.persistence import v2g_tables as v2g
from tests.integration.test_csms_migrations import full_schema_diff, table_names
from tests.support.csms_db import fresh_postgres_database, postgres_url_or_skip, run_sql

NEW = {v2g.der_curve_settings.name}


async def _up_and_down(url: str) -> None:
    await migrate.upgrade_async(url, "0007")
    assert not NEW & await table_names(url)
    now = datetime.now(UTC)
    await run_sql(
        url,
        "INSERT INTO v2g_rule_states (name, state, updated_at) VALUES ('r', '{}', :now)",
        now=now,
    )
    await migrate.upgrade_async(url, "0008")
    assert await table_names(url) >= NEW
    assert await full_schema_diff(url, NEW) == []
    setting = {"kind": "volt_watt", "points": [[253.0, 100.0], [260.0, 20.0]]}
    await run_sql(
        url,
        "INSERT INTO der_curve_settings (station_id, kind, setting, updated_at) "
        "VALUES ('cs', 'volt_watt', :s, :now)",
        s=json.dumps(setting),
        now=now,
    )
    stored = await run_sql(url, "SELECT setting FROM der_curve_settings")
    assert [json.loads(s) if isinstance(s, str) else s for (s,) in stored] == [setting]
    await migrate.downgrade_async(url, "0007")
    assert not NEW & await table_names(url)
    assert await run_sql(url, "SELECT name FROM v2g_rule_states") == [("r",)]
    await migrate.upgrade_async(url)
    assert await full_schema_diff(url) == []


async def test_0008_up_and_down_sqlite(tmp_path: Path) -> None:
    await _up_and_down(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")


async def test_0008_up_and_down_postgres() -> None:
    base = postgres_url_or_skip()
    async with fresh_postgres_database(base) as url:
        await _up_and_down(url)
