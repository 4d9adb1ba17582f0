"""CPU cost per station message of the OCPP message log (`CSMS_MESSAGE_LOG_INCOMING`).

    flock /tmp/bench.lock .venv/bin/python benchmarks/bench_message_log.py \\
        [--messages 20000] [--database sqlite|postgres] [--rounds 3]

What the log adds to a station message: its two entries (the CALL and the answer) redacted and
buffered by `MessageLogService.append_exchange` on the hot path, then written by the background
writer in batches through the real group-commit writer (SQLite synchronous=FULL as deployed, or
PostgreSQL from CSMS_TEST_POSTGRES_URL). Process CPU (all threads: the SQLite writer thread too)
per message, for a Heartbeat and for a TransactionEvent with 4 sampled values; the hot-path
part alone (append without the writes) is printed beside it. Rounds alternate; the median is shown.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from csms.persistence import migrate  # noqa: E402
from csms.persistence.database import Database  # noqa: E402
from csms.services.records import MessageLogService  # noqa: E402

TX_EVENT: dict[str, Any] = {
    "eventType": "Updated",
    "timestamp": "2026-01-01T00:00:00.000Z",
    "triggerReason": "MeterValuePeriodic",
    "seqNo": 7,
    "transactionInfo": {"transactionId": "3f2a9c1e-0000-4000-8000-000000000001"},
    "evse": {"id": 1, "connectorId": 1},
    "meterValue": [
        {
            "timestamp": "2026-01-01T00:00:00.000Z",
            "sampledValue": [
                {"value": 12345.0, "measurand": "Energy.Active.Import.Register"},
                {"value": 678.0, "measurand": "Energy.Active.Export.Register"},
                {"value": 7000.0, "measurand": "Power.Active.Import"},
                {"value": 61.0, "measurand": "SoC"},
            ],
        }
    ],
}
KINDS = {
    "Heartbeat": ({}, {"currentTime": "2026-01-01T00:00:00.000Z"}),
    "TransactionEvent": (TX_EVENT, {}),
}


async def _cpu_per_message(url: str, action: str, messages: int, write: bool) -> float:
    db = Database(url)
    await db.start()
    ml = MessageLogService(db, log_incoming=True, flush_interval_s=0.25)
    if write:
        ml.start()
    request, response = KINDS[action]
    stations = [f"CS{n:05d}" for n in range(1000)]
    try:
        started = time.process_time()
        for n in range(messages):
            ml.append_exchange(stations[n % 1000], f"m{n}", action, request, "CALLRESULT", response)
            if n % 200 == 199:
                await asyncio.sleep(0)  # let the writer run, as between station frames
        if write:
            await ml.close()  # the last batch written
        used = time.process_time() - started
    finally:
        await db.close()
    return used / messages * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        if args.database == "sqlite":
            url = f"sqlite+aiosqlite:///{Path(directory) / 'bench.db'}"
        else:
            url = os.environ.get(
                "CSMS_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
            )
        await migrate.upgrade_async(url)
        print(
            f"message log, {args.messages} station messages per round, {args.database}, "
            f"median of {args.rounds} rounds (CPU us per message, all threads)"
        )
        for action in KINDS:
            full: list[float] = []
            hot: list[float] = []
            for _ in range(args.rounds):
                full.append(await _cpu_per_message(url, action, args.messages, write=True))
                hot.append(await _cpu_per_message(url, action, args.messages, write=False))
            print(
                f"  {action:<17} logged and written {statistics.median(full):6.1f} us/message"
                f"   (hot path alone: {statistics.median(hot):5.1f} us)"
            )


if __name__ == "__main__":
    asyncio.run(main())
