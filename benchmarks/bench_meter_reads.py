#!/usr/bin/env python3
"""API reads of meter values on a large table (issue 17): 10 million sampled values in
PostgreSQL (generated in the database), then p50/p99 of the two reads users make, through a
real `csms serve` node over HTTP:

* a transaction's meter values: GET /stations/{id}/transactions/{tx}/meter-values (first page
  and a page deep inside a long transaction);
* a station's last 24 h: GET /stations/{id}/meter-values (default range; first page and one
  measurand).

    CSMS_TEST_POSTGRES_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/test \\
    .venv/bin/python benchmarks/bench_meter_reads.py --rows 10000000 --requests 300

The data: `--stations` stations, each with samples every 10 s going back from now (3 measurands
per timestamp: energy register, power, SoC), cut into 1-hour transactions (1,080 samples each);
generated with INSERT ... SELECT generate_series (one statement per station, ~1.5 min for
10 million) in database `--database-name` (bench_reads, created beside the URL's and dropped
afterwards unless --keep), in the layout of 0017
(one row per MeterValue holding its 3 sampled values; `--rows` counts sampled values), indexes
as the migrations define them, then ANALYZE.

To compare trees on the same data, `--python NAME=INTERPRETER` once per tree (each tree's own
venv, e.g. `--python old=/tmp/reads-old/.venv/bin/python --python new=.venv/bin/python`): one
node per tree, started from an empty directory so that each venv's own install is what runs
(its `csms` path is printed), every request sent to each node in turn (in random order), the
answers' bodies compared. `--reuse` keeps the database and, when it holds rows, skips the
generation (the data then ends when it was generated: the last 24 h hold fewer).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.multinode import prepare_database, start_node  # noqa: E402

SAMPLE_EVERY_S = 10
MEASURANDS = ("Energy.Active.Import.Register", "Power.Active.Import", "SoC")
TX_SAMPLES = 360  # timestamps per transaction (1 h at 10 s)


async def generate(dsn: str, stations: list[str], rows: int) -> float:
    """Insert `rows` samples (spread evenly over the stations) and their transactions."""
    per_station = rows // (len(stations) * len(MEASURANDS))  # timestamps per station
    conn = await asyncpg.connect(dsn)
    started = time.monotonic()
    try:
        await conn.execute("SET synchronous_commit = off")
        for k, station in enumerate(stations):
            await conn.execute(
                """
                INSERT INTO meter_values (station_id, evse_id, transaction_id, timestamp,
                                          sample_count, sampled_values)
                SELECT $1::text, 1, $1::text || '-tx-' || (n / $3::int),
                       now() - (n * $4::int) * interval '1 second', 3,
                       '[["Energy.Active.Import.Register",' || (n * 1.0)
                       || ',null,null,"Sample.Periodic","Wh"],["Power.Active.Import",'
                       || (n * 1.0) || ',null,null,"Sample.Periodic","W"],["SoC",'
                       || (n * 1.0) || ',null,null,"Sample.Periodic","Percent"]]'
                FROM generate_series(0, $2::int - 1) AS n
                """,
                station,
                per_station,
                TX_SAMPLES,
                SAMPLE_EVERY_S,
            )
            await conn.execute(
                """
                INSERT INTO transactions (station_id, transaction_id, state, evse_id,
                                          started_at, ended_at, updated_at, seq_count)
                SELECT $1::text, $1::text || '-tx-' || t,
                       CASE WHEN t = 0 THEN 'Active' ELSE 'Ended' END, 1,
                       now() - ((t + 1) * $3::int * $4::int) * interval '1 second',
                       now() - (t * $3::int * $4::int) * interval '1 second', now(), 0
                FROM generate_series(0, ($2::int - 1) / $3::int) AS t
                """,
                station,
                per_station,
                TX_SAMPLES,
                SAMPLE_EVERY_S,
            )
            if k % 10 == 9:
                print(f"  {k + 1}/{len(stations)} stations generated", flush=True)
        await conn.execute("ANALYZE meter_values")
        await conn.execute("ANALYZE transactions")
        total = await conn.fetchval("SELECT count(*) FROM meter_values")
    finally:
        await conn.close()
    print(
        f"{total * len(MEASURANDS):,} sampled values ({total:,} rows, one per MeterValue) "
        f"in {time.monotonic() - started:.0f} s"
    )
    return per_station * SAMPLE_EVERY_S


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"p50 {statistics.median(ordered) * 1e3:6.1f} ms  p99 {p99 * 1e3:6.1f} ms  "
        f"max {ordered[-1] * 1e3:6.1f} ms"
    )


async def measure(
    nodes: dict[str, str], token: str, stations: list[str], span_s: int, n: int
) -> None:
    """`n` requests of each kind, each sent to every node (API URL by name) in random order."""
    rng = random.Random(1)
    transactions = max(1, span_s // (TX_SAMPLES * SAMPLE_EVERY_S))
    reads = {
        "transaction, first page (limit 1000)": lambda s: (
            f"/stations/{s}/transactions/{s}-tx-{rng.randrange(transactions)}/meter-values",
            {"limit": 1000},
        ),
        "transaction, deep page (offset 1000, limit 50)": lambda s: (
            f"/stations/{s}/transactions/{s}-tx-{rng.randrange(transactions)}/meter-values",
            {"offset": 1000, "limit": 50},
        ),
        "station last 24 h, first page (limit 1000)": lambda s: (
            f"/stations/{s}/meter-values",
            {"limit": 1000},
        ),
        "station last 24 h, SoC only (limit 1000)": lambda s: (
            f"/stations/{s}/meter-values",
            {"limit": 1000, "measurand": "SoC"},
        ),
    }
    headers = {"Authorization": f"Bearer {token}"}
    clients = {
        name: httpx.AsyncClient(base_url=url, headers=headers, timeout=60)
        for name, url in nodes.items()
    }
    try:
        for kind, make in reads.items():
            times: dict[str, list[float]] = {name: [] for name in nodes}
            same = 0
            differing: list[str] = []
            for _ in range(n):
                path, params = make(rng.choice(stations))
                order = list(nodes)
                rng.shuffle(order)
                bodies: dict[bytes, httpx.Response] = {}
                for name in order:
                    started = time.perf_counter()
                    response = await clients[name].get(path, params=params)
                    times[name].append(time.perf_counter() - started)
                    if response.status_code != 200:
                        raise SystemExit(
                            f"{name} {path}: {response.status_code} {response.text[:200]}"
                        )
                    bodies[response.content] = response
                same += len(bodies) == 1
                if len(bodies) > 1:
                    # Which items differ: at the ends of the range only, when it is the edge.
                    pages = [r.json() for r in bodies.values()]
                    ends = [(p["total"], p["items"][0]["timestamp"]) for p in pages]
                    differing.append(" vs ".join(f"total {t:,} from {first}" for t, first in ends))
            total = response.json()["total"]
            print(f"{kind} (total {total:,})")
            for name in nodes:
                print(f"  {name:10s} {percentiles(times[name])}")
            if len(nodes) > 1:
                # The 24 h reads end at each request's own now(): a sample can cross the edge.
                print(f"  same body from every node: {same}/{n}")
                for line in differing[:3]:
                    print(f"  differing: {line}")
    finally:
        for client in clients.values():
            await client.aclose()


@contextlib.asynccontextmanager
async def own_database(
    base_url: str, name: str, keep: bool, reuse: bool = False
) -> AsyncIterator[str]:
    """Database `name` beside `base_url`'s, created empty (dropped first if it is there, unless
    `reuse`) and dropped afterwards unless `keep`: the tests' databases are never touched."""
    admin_dsn = base_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    conn = await asyncpg.connect(admin_dsn)
    try:
        there = await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name
        )
        if not (reuse and there):
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield f"{base_url.rpartition('/')[0]}/{name}"
    finally:
        if not keep:
            conn = await asyncpg.connect(admin_dsn)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await conn.close()


async def populated(database_url: str) -> bool:
    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    conn = await asyncpg.connect(dsn)
    try:
        return bool(await conn.fetchval("SELECT to_regclass('meter_values') IS NOT NULL")) and bool(
            await conn.fetchval("SELECT EXISTS (SELECT 1 FROM meter_values)")
        )
    finally:
        await conn.close()


def csms_path(python: str, cwd: str) -> str:
    """Where `python` run in `cwd` imports csms from (what its node runs)."""
    code = "import csms, os; print(os.path.dirname(csms.__file__))"
    return subprocess.run(
        [python, "-c", code], cwd=cwd, capture_output=True, text=True, check=True
    ).stdout.strip()


async def run(args: argparse.Namespace) -> None:
    base_url = args.database_url or os.environ.get(
        "CSMS_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
    )
    stations = [f"MR{i:04d}" for i in range(args.stations)]
    pythons: dict[str, str] = args.pythons
    async with own_database(
        base_url, args.database_name, args.keep or args.reuse, args.reuse
    ) as database_url:
        per_station = args.rows // (len(stations) * len(MEASURANDS))
        span_s = per_station * SAMPLE_EVERY_S
        if args.reuse and await populated(database_url):
            token = await prepare_database(database_url, [])
            print(f"reusing {args.database_name} (not generated again)")
        else:
            token = await prepare_database(database_url, stations)
            dsn = database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
            span_s = await generate(dsn, stations, args.rows)
        nodes = {}
        with tempfile.TemporaryDirectory() as empty:
            try:
                for name, python in pythons.items():
                    print(f"node {name}: {python}, csms from {csms_path(python, empty)}")
                    nodes[name] = await start_node(
                        f"reads-{name}", database_url, None, python, empty
                    )
                await measure(
                    {name: node.api_url for name, node in nodes.items()},
                    token,
                    stations,
                    span_s,
                    args.requests,
                )
            finally:
                for node in nodes.values():
                    await node.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=10_000_000)
    p.add_argument("--stations", type=int, default=100)
    p.add_argument("--requests", type=int, default=300, help="per kind of read")
    p.add_argument("--database-url", default=None, help="default: $CSMS_TEST_POSTGRES_URL")
    p.add_argument(
        "--database-name",
        default="bench_reads",
        help="the database created (dropped first if there) beside the URL's",
    )
    p.add_argument("--keep", action="store_true", help="keep the database (for EXPLAIN)")
    p.add_argument(
        "--reuse", action="store_true", help="keep the database; use its rows if it has some"
    )
    p.add_argument(
        "--python",
        action="append",
        default=[],
        metavar="NAME=INTERPRETER",
        help="one node per tree, run by that tree's venv (default: this interpreter)",
    )
    args = p.parse_args(argv)
    # abspath, not resolve: a venv's python is a symlink to the base interpreter.
    args.pythons = {
        name: os.path.abspath(python) for name, python in (a.split("=", 1) for a in args.python)
    } or {"this tree": sys.executable}
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
