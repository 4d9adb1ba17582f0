#!/usr/bin/env python3
"""The storage of meter values alone (issue 17, migration 0017): group commits of 33 messages
with 3 sampled values each, written through the repository of the tree given, on SQLite or
PostgreSQL; prints the client process's CPU and (PostgreSQL) the backend's CPU per message.
Isolates what the layout changes from the rest of the write path (sessions, validation, the
transaction rows) so two trees can be compared on a loaded box, interleaved:

    for tree in /tmp/old . /tmp/old .; do PYTHONPATH=$tree .venv/bin/python \\
        $tree/benchmarks/bench_meter_storage.py [--database-url URL]; done

The old tree (before 0017) stores one row per sampled value (`insert_meter_rows`), the new one
one row per MeterValue (`insert_packed_rows`). The database must be empty (it is migrated).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from csms.domain.models import MeterSample  # noqa: E402
from csms.persistence import migrate  # noqa: E402
from csms.persistence import repositories as repo  # noqa: E402

BATCH, BATCHES, STATIONS = 33, 300, 100
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _message(i: int) -> list[MeterSample]:
    station = f"ST{i % STATIONS:03d}"
    ts = T0 + timedelta(seconds=i // STATIONS)
    common = {"evse_id": 1, "transaction_id": f"{station}-TX", "context": "Sample.Periodic"}
    return [
        MeterSample(station, ts, 10.0 * i, "Energy.Active.Import.Register", unit="Wh", **common),
        MeterSample(station, ts, 50.0, "SoC", unit="Percent", **common),
        MeterSample(station, ts, 7000.0, "Power.Active.Import", unit="W", **common),
    ]


def _backend_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run(url: str) -> None:
    await migrate.upgrade_async(url)
    engine = create_async_engine(url)
    packed = hasattr(repo, "insert_packed_rows")
    try:
        async with engine.connect() as conn:
            pid = None
            if conn.dialect.name == "postgresql":
                pid = (await conn.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one()
            await conn.commit()
            cpu0, wall0 = time.process_time(), time.perf_counter()
            server0 = _backend_cpu_s(pid) if pid else 0.0
            for b in range(BATCHES):
                messages = [_message(b * BATCH + k) for k in range(BATCH)]
                if packed:
                    rows = {}
                    for samples in messages:
                        repo.add_samples_on_evse(rows, samples, None)
                    await repo.insert_packed_rows(conn, rows)
                else:
                    flat = []
                    for samples in messages:
                        flat.extend(repo.meter_rows_on_evse(samples, None))
                    await repo.insert_meter_rows(conn, flat)
                await conn.commit()
            cpu = time.process_time() - cpu0
            server = (_backend_cpu_s(pid) - server0) if pid else 0.0
            wall = time.perf_counter() - wall0
    finally:
        await engine.dispose()
    n = BATCH * BATCHES
    layout = "per MeterValue" if packed else "per sampled value"
    print(
        f"{url.split(':')[0]:18s} {layout:17s}: client CPU {cpu / n * 1e6:5.1f} us/msg, "
        f"database server {server / n * 1e6:5.1f} us/msg, total {(cpu + server) / n * 1e6:5.1f}"
        f" ({n / wall:.0f} msg/s)"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--database-url", default=None)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(args.database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'm.db'}"))


if __name__ == "__main__":
    main()
