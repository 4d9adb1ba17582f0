"""Migration 0002 (V2G tables) up and down on SQLite, and on PostgreSQL when
CSMS_TEST_POSTGRES_URL is set; the result matches csms.persistence.v2g_tables."""

from __future__ import annotations

from pathlib import Path

from csms.persistence import migrate
from csms.persistence import v2g_tables as v2g
from csms.persistence.tables import metadata
from tests.integration.test_csms_migrations import (
    ADDED_TO_CORE_LATER,
    _added_columns,
    _changes,
    full_schema_diff,
    schema_diff,
    table_names,
)
from tests.support.csms_db import fresh_postgres_database, postgres_url_or_skip

V2G_TABLES = {
    v2g.v2g_vehicles.name,
    v2g.v2g_prices.name,
    v2g.v2g_plans.name,
    v2g.v2g_dispatches.name,
    v2g.v2g_station_settings.name,
}
# Tables later revisions add (0004: the V2G rule state every node shares; 0007: OCPP 2.1
# periodic streams and dynamic schedule updates; 0008: DER curves; 0013: OCSP answers; 0014:
# sites and their envelopes; 0015-0016: the CSIP-AUS client's state, mirror points, subscriptions;
# 0018: the sites' household meters).
V2G_TABLES_LATER = {
    "site_meters",
    "ocsp_responses",
    "sites",
    "site_stations",
    "site_envelopes",
    "csip_sites",
    "csip_mirror_points",
    "csip_subscriptions",
    v2g.v2g_rule_states.name,
    "periodic_streams",
    "periodic_stream_values",
    "dynamic_schedule_updates",
    v2g.der_curve_settings.name,
}
# V2G columns later revisions add (0012: the V2G switch).
V2G_COLUMNS_LATER = {("v2g_vehicles", "v2g_enabled")}


async def _up_and_down(url: str) -> None:
    await migrate.upgrade_async(url, "0001")
    assert not (await table_names(url)) & V2G_TABLES
    await migrate.upgrade_async(url, "0002")
    names = await table_names(url)
    assert names >= V2G_TABLES
    assert names == set(metadata.tables) - V2G_TABLES_LATER
    assert _added_columns(await schema_diff(url)) == ADDED_TO_CORE_LATER
    # 0002's tables as the code defines, but for the columns later revisions add
    assert _changes(await full_schema_diff(url, V2G_TABLES)) == {
        ("add_column", table, name) for table, name in V2G_COLUMNS_LATER
    }
    await migrate.downgrade_async(url, "0001")
    assert not (await table_names(url)) & V2G_TABLES
    assert await table_names(url) == set(metadata.tables) - V2G_TABLES - V2G_TABLES_LATER
    await migrate.upgrade_async(url)
    assert await table_names(url) == set(metadata.tables)
    assert await full_schema_diff(url) == []


async def test_0002_up_and_down_sqlite(tmp_path: Path) -> None:
    await _up_and_down(f"sqlite+aiosqlite:///{tmp_path / 'v2g.db'}")


async def test_0002_up_and_down_postgres() -> None:
    base = postgres_url_or_skip()
    async with fresh_postgres_database(base) as url:
        await _up_and_down(url)
