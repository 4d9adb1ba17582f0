"""Per-event cost of a long transaction (issue 11 finding 6): the time to store one
TransactionEvent at event ~100 and at event ~8,000 of the same transaction.

    .venv/bin/python benchmarks/bench_tx_seq.py [--events 8000] [--database-url URL]

Before 0005 each new seqNo rewrote the transaction's whole seen-seqNo list (a JSON column),
so the cost grew with the number of events; now the row keeps a span and a count. The events
go through the real handler path (Session.handle_frame: parse, validate, group-commit write,
answer) one at a time, without a network. Default database: a temporary SQLite file
(synchronous=NORMAL, as the tests use); pass a PostgreSQL URL to measure there (the database
must exist and be empty: it is migrated). To measure the old code, run a copy of this file
from an export of the old revision:
    git archive <rev> | tar -x -C /tmp/old && cp benchmarks/bench_tx_seq.py /tmp/old/benchmarks/
    .venv/bin/python /tmp/old/benchmarks/bench_tx_seq.py
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from csms.domain.models import RegistrationStatus  # noqa: E402
from csms.ocpp_server.blocks import all_handlers  # noqa: E402
from csms.ocpp_server.session import Session  # noqa: E402
from csms.services.container import build_services  # noqa: E402
from csms.settings import Settings  # noqa: E402


class _Transport:
    async def recv(self) -> str:  # the benchmark drives handle_frame directly
        raise ConnectionError

    async def send(self, message: str) -> None:
        return None

    async def close(self, code: int = 1000, reason: str = "") -> None:
        return None


def _frame(seq_no: int) -> str:
    second = f"{seq_no // 3600 % 24:02d}:{seq_no // 60 % 60:02d}:{seq_no % 60:02d}"
    payload = {
        "eventType": "Started" if seq_no == 0 else "Updated",
        "timestamp": f"2026-01-01T{second}.000Z",
        "triggerReason": "Authorized" if seq_no == 0 else "MeterValuePeriodic",
        "seqNo": seq_no,
        "transactionInfo": {"transactionId": "TX-LONG"},
        "evse": {"id": 1, "connectorId": 1},
        "meterValue": [
            {
                "timestamp": f"2026-01-01T{second}.000Z",
                "sampledValue": [{"value": 10.0 * seq_no}],
            }
        ],
    }
    return orjson.dumps([2, f"m{seq_no}", "TransactionEvent", payload]).decode()


async def run(events: int, database_url: str, workdir: Path) -> list[float]:
    settings = Settings(
        database_url=database_url,
        ocpp_host="127.0.0.1",
        ocpp_port=0,
        password_key_file=workdir / "csms.password-key",
    )
    services = build_services(settings, sqlite_synchronous="NORMAL")
    await services.start(migrate=True)
    try:
        await services.stations.create("BENCH", password="bench-password-0001")
        session = Session(
            "BENCH",
            _Transport(),  # type: ignore[arg-type]
            services,
            all_handlers(),
            registration=RegistrationStatus.ACCEPTED,
        )
        took: list[float] = []
        for n in range(events):
            frame = _frame(n)
            start = time.perf_counter()
            await session.handle_frame(frame)
            took.append(time.perf_counter() - start)
        return took
    finally:
        await services.close()


def _window(took: list[float], around: int, width: int = 100) -> tuple[float, float]:
    """Median and p90 in ms of the `width` events ending at `around`."""
    part = sorted(t * 1000 for t in took[max(0, around - width) : around])
    return statistics.median(part), part[min(len(part) - 1, int(len(part) * 0.9))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=8000)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args(argv)
    if not 200 <= args.events <= 100_000:
        parser.error("--events must be 200..100000")
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench-tx-seq-") as tmp:
        workdir = Path(tmp)
        url = args.database_url or f"sqlite+aiosqlite:///{workdir / 'csms.db'}"
        took = asyncio.run(run(args.events, url, workdir))
    early = _window(took, 100)
    late = _window(took, args.events)
    print(f"code: {ROOT}")
    print(f"database: {url.split('://')[0]}, one transaction, {args.events} events")
    print(f"events   1-100:  median {early[0]:.3f} ms  p90 {early[1]:.3f} ms")
    print(f"events {args.events - 99}-{args.events}: median {late[0]:.3f} ms  p90 {late[1]:.3f} ms")
    print(f"late/early median: {late[0] / early[0]:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
