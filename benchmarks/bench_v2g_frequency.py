"""Time to answer one grid-frequency sample (V2gService.grid_frequency) with N connected
vehicles: the rule state in process memory (the service as of --baseline-rev, loaded from git)
against the state shared in the database (this checkout), one node and two nodes alternating.

    flock /tmp/bench.lock .venv/bin/python benchmarks/bench_v2g_frequency.py \\
        [--vehicles 100] [--samples 40] [--database sqlite|postgres|both] [--baseline-rev REV]

PostgreSQL: CSMS_TEST_POSTGRES_URL (a throw-away database is made beside it). Commands go to a
sender that answers at once, so the figures are the service and the database alone. Each
variant gets a fresh database; the stream is 50.0 Hz samples, then 49.7 Hz ones (the rule arms
and fires once for every vehicle at the 6th). Columns: median and p90 of the samples that fire
nothing, the one sample that fires (N profiles sent), and `contexts`: reading every vehicle's
full session context (`_connected`, what the baseline reads per sample); ratio = median
against the baseline's.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from csms.persistence.database import Database  # noqa: E402
from tests.support.csms_db import fresh_postgres_database  # noqa: E402
from tests.support.v2g_nodes import CountingSender, node_databases, plug_in  # noqa: E402

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
BASELINE_REV = "6328882"  # the last commit with the rule state in process memory


def load_service_class(rev: str | None) -> Any:
    """V2gService of this checkout, or of `rev` (its v2g_service.py from git, run against the
    rest of this checkout)."""
    if rev is None:
        from csms.services.v2g import V2gService

        return V2gService
    source = subprocess.run(
        ["git", "show", f"{rev}:csms/services/v2g_service.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "baseline_v2g_service.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("baseline_v2g_service", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.V2gService


async def run_variant(
    url: str, service_class: Any, nodes: int, vehicles: int, samples: int
) -> dict[str, float]:
    sent: list[Any] = []
    async with node_databases(url, nodes) as dbs:
        await plug_in(dbs[0], [f"CS{k}" for k in range(vehicles)], T0 - timedelta(hours=1), 80.0)
        services = [service_class(db, CountingSender(f"n{k}", sent)) for k, db in enumerate(dbs)]
        low_from = samples - 10
        times: list[float] = []
        fire_ms = 0.0
        for s in range(samples):
            service = services[s % nodes]
            hz = 50.0 if s < low_from else 49.7
            t0 = time.perf_counter()
            answer = await service.grid_frequency(hz, T0 + timedelta(seconds=s))
            elapsed = (time.perf_counter() - t0) * 1000.0
            if answer["fired"]:
                fire_ms = elapsed
                assert len(answer["fired"]) == vehicles
            else:
                times.append(elapsed)
        assert sum(a == "SetChargingProfile" for _, _, a, _ in sent) == vehicles
        contexts_ms = await _contexts_ms(dbs[0], services[0])
    return {
        "median_ms": statistics.median(times[2:]),  # the first two warm the caches
        "p90_ms": statistics.quantiles(times[2:], n=10)[-1],
        "fire_ms": fire_ms,
        "contexts_ms": contexts_ms,
    }


async def _contexts_ms(db: Database, service: Any) -> float:
    """The part both variants share: reading each connected vehicle's session context."""
    runs = []
    for _ in range(5):
        t0 = time.perf_counter()
        await service._connected(T0)
        runs.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(runs)


async def bench(url: str, label: str, args: argparse.Namespace) -> None:
    variants = [
        ("in memory (baseline)", load_service_class(args.baseline_rev), 1),
        ("shared in database, 1 node", load_service_class(None), 1),
        ("shared in database, 2 nodes", load_service_class(None), 2),
    ]
    print(f"\n{label}: {args.vehicles} connected vehicles, {args.samples} samples per variant")
    print(f"{'variant':32} {'median ms':>10} {'p90 ms':>8} {'fire ms':>8} {'contexts':>9} ratio")
    base: float | None = None
    for name, service_class, nodes in variants:
        if url.startswith("sqlite"):
            with tempfile.TemporaryDirectory() as tmp:
                result = await run_variant(
                    url.replace("{tmp}", tmp), service_class, nodes, args.vehicles, args.samples
                )
        else:
            async with fresh_postgres_database(url) as fresh:
                result = await run_variant(fresh, service_class, nodes, args.vehicles, args.samples)
        base = base or result["median_ms"]
        print(
            f"{name:32} {result['median_ms']:10.1f} {result['p90_ms']:8.1f} "
            f"{result['fire_ms']:8.1f} {result['contexts_ms']:9.1f} "
            f"{result['median_ms'] / base:5.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vehicles", type=int, default=100)
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--database", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--baseline-rev", default=BASELINE_REV)
    args = parser.parse_args()
    if args.samples < 20:
        parser.error("--samples must be >= 20")
    if args.database in ("sqlite", "both"):
        asyncio.run(bench("sqlite+aiosqlite:///{tmp}/bench.db", "SQLite", args))
    if args.database in ("postgres", "both"):
        url = os.environ.get("CSMS_TEST_POSTGRES_URL")
        if not url:
            sys.exit("CSMS_TEST_POSTGRES_URL is not set")
        asyncio.run(bench(url, "PostgreSQL", args))


if __name__ == "__main__":
    main()
