#!/usr/bin/env python3
"""Migration 0017 on a large table (issue 17): the time of its upgrade (one row per sampled
value -> one row per MeterValue) and downgrade on `--rows` old-layout rows, this tree's 0017
beside a baseline 0017 taken from git (by default the commit that introduced it, which
converted the rows in Python through the driver), in one command, on PostgreSQL and SQLite.

    CSMS_TEST_POSTGRES_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/test \\
    .venv/bin/python benchmarks/bench_migration_0017.py --rows 1000000

The old rows are generated in the database at revision 0016: `--stations` stations, a sample of
3 measurands every 10 s, 1-hour transactions. PostgreSQL: in database `--database-name`
(created and dropped beside the URL's); SQLite: a temporary file.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import asyncpg
import sqlalchemy as sa
from alembic import command
from sqlalchemy.ext.asyncio import create_async_engine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from csms.persistence import migrate  # noqa: E402

MIGRATION = "migrations/versions/0017_meter_values_per_reading.py"
BASELINE = "9a7e770"  # 0017 as first written: rows grouped in Python
MEASURANDS = 3

_PG_OLD_ROWS = """
INSERT INTO meter_values (station_id, evse_id, transaction_id, timestamp, measurand, phase,
                          location, context, value, unit)
SELECT 'MG' || lpad((n % $2::int)::text, 4, '0'), 1,
       'MG' || (n % $2::int) || '-tx-' || (n / $2::int / 360),
       timestamp '2026-12-01' - (n / $2::int * 10) * interval '1 second',
       (ARRAY['Energy.Active.Import.Register', 'Power.Active.Import', 'SoC'])[m + 1],
       NULL, NULL, 'Sample.Periodic', n * 1.5 + m, (ARRAY['Wh', 'W', 'Percent'])[m + 1]
FROM generate_series(0, $1::int - 1) AS n, generate_series(0, 2) AS m
"""

_SQLITE_OLD_ROWS = """
WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n + 1 < :timestamps),
     m(m) AS (VALUES (0), (1), (2))
INSERT INTO meter_values (station_id, evse_id, transaction_id, timestamp, measurand, phase,
                          location, context, value, unit)
SELECT printf('MG%04d', n % :stations), 1,
       printf('MG%d-tx-%d', n % :stations, n / :stations / 360),
       strftime('%Y-%m-%d %H:%M:%f000', '2026-12-01', printf('-%d seconds', n / :stations * 10)),
       CASE m WHEN 0 THEN 'Energy.Active.Import.Register' WHEN 1 THEN 'Power.Active.Import'
              ELSE 'SoC' END,
       NULL, NULL, 'Sample.Periodic', n * 1.5 + m,
       CASE m WHEN 0 THEN 'Wh' WHEN 1 THEN 'W' ELSE 'Percent' END
FROM s, m
"""


def migrations_with(revision: str | None, into: Path) -> Path:
    """A copy of this tree's migrations/ with 0017 as it was at `revision` (None: as it is)."""
    target = into / ("migrations-" + (revision or "tree"))
    shutil.copytree(ROOT / "migrations", target)
    if revision is not None:
        old = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{revision}:{MIGRATION}"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        (target / "versions" / Path(MIGRATION).name).write_text(old)
    return target


def timed(url: str, scripts: Path, action: Callable[..., None], revision: str) -> float:
    config = migrate.alembic_config(url)
    config.set_main_option("script_location", str(scripts))
    started = time.monotonic()
    action(config, revision)
    return time.monotonic() - started


async def counts(url: str) -> tuple[int, int]:
    """(rows, sampled values) in meter_values, whichever layout."""
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        columns = await conn.run_sync(
            lambda sync: {c["name"] for c in sa.inspect(sync).get_columns("meter_values")}
        )
        total = "sum(sample_count)" if "sample_count" in columns else "count(*)"
        found = (await conn.execute(sa.text(f"SELECT count(*), {total} FROM meter_values"))).one()
    await engine.dispose()
    return int(found[0]), int(found[1] or 0)


async def generate(url: str, rows: int, stations: int) -> float:
    timestamps = rows // MEASURANDS
    started = time.monotonic()
    if url.startswith("postgresql"):
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
        try:
            await conn.execute(_PG_OLD_ROWS, timestamps, stations)
            await conn.execute("ANALYZE meter_values")
        finally:
            await conn.close()
    else:
        engine = sa.create_engine(url.replace("+aiosqlite", ""))
        with engine.begin() as conn:
            conn.execute(
                sa.text(_SQLITE_OLD_ROWS), {"timestamps": timestamps, "stations": stations}
            )
        engine.dispose()
    return time.monotonic() - started


async def pg_database(base_url: str, name: str, drop_only: bool = False) -> str:
    conn = await asyncpg.connect(base_url.replace("postgresql+asyncpg://", "postgresql://", 1))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return f"{base_url.rpartition('/')[0]}/{name}"


async def one(
    label: str, url: str, scripts: Path, args: argparse.Namespace
) -> tuple[float, float | None]:
    await migrate.upgrade_async(url, "0016")
    made = await generate(url, args.rows, args.stations)
    rows, _ = await counts(url)
    up = await asyncio.to_thread(timed, url, scripts, command.upgrade, "0017")
    packed, sampled = await counts(url)
    if sampled != rows:
        raise SystemExit(f"{label}: {rows} samples before, {sampled} after")
    down = None
    if args.downgrade:
        down = await asyncio.to_thread(timed, url, scripts, command.downgrade, "0016")
        if (back := await counts(url)) != (rows, rows):
            raise SystemExit(f"{label}: downgrade gave {back}, not {rows} rows")
    print(
        f"  {label:34s} {rows:,} rows generated in {made:.0f} s -> {packed:,};"
        f" upgrade {up:7.1f} s" + ("" if down is None else f", downgrade {down:7.1f} s"),
        flush=True,
    )
    return up, down


async def run(args: argparse.Namespace) -> None:
    base_url = args.database_url or os.environ.get("CSMS_TEST_POSTGRES_URL")
    with tempfile.TemporaryDirectory() as tmp:
        variants = {
            f"baseline 0017 ({args.baseline})": migrations_with(args.baseline, Path(tmp)),
            "this tree's 0017": migrations_with(None, Path(tmp)),
        }
        for database in args.database.split(","):
            print(f"{database}:")
            results = []
            for label, scripts in variants.items():
                if database == "postgres":
                    if not base_url:
                        raise SystemExit("PostgreSQL: set CSMS_TEST_POSTGRES_URL")
                    url = await pg_database(base_url, args.database_name)
                else:
                    url = f"sqlite+aiosqlite:///{Path(tmp) / f'm-{len(results)}.db'}"
                try:
                    results.append(await one(label, url, scripts, args))
                finally:
                    if database == "postgres":
                        await pg_database(base_url or "", args.database_name, drop_only=True)
            (base_up, base_down), (up, down) = results
            line = f"  upgrade {base_up / up:.1f}x faster"
            if base_down and down:
                line += f", downgrade {base_down / down:.1f}x faster"
            print(line)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000, help="old-layout rows (sampled values)")
    p.add_argument("--stations", type=int, default=100)
    p.add_argument("--database", default="postgres,sqlite")
    p.add_argument("--baseline", default=BASELINE, help="git revision of the baseline 0017")
    p.add_argument("--no-downgrade", dest="downgrade", action="store_false")
    p.add_argument("--database-url", default=None, help="default: $CSMS_TEST_POSTGRES_URL")
    p.add_argument("--database-name", default="bench_mig0017")
    args = p.parse_args(argv)
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
