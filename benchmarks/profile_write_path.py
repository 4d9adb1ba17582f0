"""Where the write path's CPU goes, in process (issue 17): 100 stations' sessions each send
TransactionEvent Updated and MeterValues alternately (3 sampled values each) through the real
handler path (Session.handle_frame: parse, validate, group-commit write, answer), no network.
Prints messages/s, the process's CPU per message and the writer thread's share (SQLite: the
thread with pysqlite, SQLAlchemy bind processing and the commit); --profile adds a cProfile of
the event loop, --profile --thread one of the writer thread instead.

    .venv/bin/python benchmarks/profile_write_path.py [--database-url URL] [--profile [--thread]]

Another tree (`git archive <rev> | tar -x -C /tmp/old`) is measured with WP_ROOT=/tmp/old. A
PostgreSQL database must exist and be empty (it is migrated). The box is shared: compare runs
interleaved, several each.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import logging
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(os.environ.get("WP_ROOT", Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(ROOT))

from csms.domain.models import RegistrationStatus  # noqa: E402
from csms.ocpp_server.blocks import all_handlers  # noqa: E402
from csms.ocpp_server.session import Session  # noqa: E402
from csms.persistence import database  # noqa: E402
from csms.services.container import build_services  # noqa: E402
from csms.settings import Settings  # noqa: E402

# Messages per station within its burst allowance (100 frames): no pacing. --stations sets
# how many (500, as the socket benchmark, spreads the indexes' writes like a fleet does).
MESSAGES = 96
CONTEXT = "Sample.Periodic"


class _Transport:
    async def recv(self) -> str:  # the benchmark drives handle_frame directly
        raise ConnectionError

    async def send(self, message: str) -> None:
        return None

    async def close(self, code: int = 1000, reason: str = "") -> None:
        return None


def _meter_value(i: int) -> tuple[list[dict[str, Any]], str]:
    ts = f"2026-01-01T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}.000Z"
    sampled = [
        {"value": 10.0 * i, "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
        {"value": 50.0, "measurand": "SoC", "unit": "Percent"},
        {"value": 7000.0, "measurand": "Power.Active.Import", "unit": "W"},
    ]
    values = [
        {
            "value": s["value"],
            "measurand": s["measurand"],
            "unitOfMeasure": {"unit": s["unit"]},
            "context": CONTEXT,
        }
        for s in sampled
    ]
    return [{"timestamp": ts, "sampledValue": values}], ts


def _frame(i: int) -> str:
    meter, ts = _meter_value(i)
    if i == 0 or i % 2:
        payload = {
            "eventType": "Started" if i == 0 else "Updated",
            "timestamp": ts,
            "triggerReason": "Authorized" if i == 0 else "MeterValuePeriodic",
            "seqNo": i,
            "transactionInfo": {"transactionId": "TX", "chargingState": "Charging"},
            "meterValue": meter,
        }
        if i == 0:
            payload["evse"] = {"id": 1, "connectorId": 1}
        return orjson.dumps([2, f"m{i}", "TransactionEvent", payload]).decode()
    return orjson.dumps([2, f"m{i}", "MeterValues", {"evseId": 1, "meterValue": meter}]).decode()


def _process_io() -> dict[str, int] | None:
    """This process's read/write calls and bytes so far (Linux /proc/self/io)."""
    try:
        lines = Path("/proc/self/io").read_text().splitlines()
    except OSError:
        return None
    wanted = ("rchar", "wchar", "syscr", "syscw")
    fields = dict(line.split(": ") for line in lines)
    return {k: int(fields[k]) for k in wanted if k in fields}


class WriterMeter:
    """CPU time (and optionally a profile) of the writer thread's batches, and batch sizes."""

    def __init__(self, profile: bool) -> None:
        self.cpu_s = 0.0
        self.batches: list[int] = []
        # CPU time of the thread (not wall: a commit waits for fsync).
        self.profile = cProfile.Profile(time.thread_time) if profile else None
        orig_thread = database.GroupCommitWriter._thread_batch
        orig_commit = database.GroupCommitWriter._commit
        meter = self

        def thread_batch(writer: Any, batch: list[Any]) -> list[Any]:
            started = time.thread_time()
            if meter.profile:
                meter.profile.enable()
            try:
                return orig_thread(writer, batch)
            finally:
                if meter.profile:
                    meter.profile.disable()
                meter.cpu_s += time.thread_time() - started

        async def commit(writer: Any, batch: list[Any]) -> None:
            meter.batches.append(len(batch))
            await orig_commit(writer, batch)

        database.GroupCommitWriter._thread_batch = thread_batch  # type: ignore[method-assign]
        database.GroupCommitWriter._commit = commit  # type: ignore[method-assign]


async def run(url: str, work: Path, profile: cProfile.Profile | None, stations: int) -> float:
    settings = Settings(
        database_url=url, ocpp_host="127.0.0.1", ocpp_port=0, password_key_file=work / "key"
    )
    services = build_services(settings)
    await services.start(migrate=True)
    try:
        sessions = []
        for k in range(stations):
            await services.stations.create(f"S{k}", password="bench-password-0001")
            sessions.append(
                Session(
                    f"S{k}",
                    _Transport(),  # type: ignore[arg-type]
                    services,
                    all_handlers(),
                    registration=RegistrationStatus.ACCEPTED,
                )
            )
        for session in sessions:
            await session.handle_frame(_frame(0))

        async def drive(session: Session) -> None:
            for i in range(1, MESSAGES + 1):
                await session.handle_frame(_frame(i))

        io0 = _process_io()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        if profile:
            profile.enable()
        await asyncio.gather(*(drive(s) for s in sessions))
        if profile:
            profile.disable()
        cpu1, wall1 = time.process_time(), time.perf_counter()
        io1 = _process_io()
        total = stations * MESSAGES
        print(
            f"{url.split(':')[0]}: {total} messages, {total / (wall1 - wall0):.0f} msg/s, "
            f"process CPU {(cpu1 - cpu0) / total * 1e6:.0f} us/msg"
        )
        if io0 and io1:  # deterministic where CPU time is noisy: the file I/O per message
            print(
                "file I/O per message: "
                + ", ".join(f"{k} {(io1[k] - io0[k]) / total:.1f}" for k in sorted(io1))
            )
        return cpu1 - cpu0
    finally:
        await services.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--database-url", default=None)
    p.add_argument("--stations", type=int, default=100)
    p.add_argument("--profile", action="store_true")
    p.add_argument("--thread", action="store_true", help="with --profile: the writer thread")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import uvloop

    meter = WriterMeter(args.profile and args.thread)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        url = args.database_url or f"sqlite+aiosqlite:///{work / 'csms.db'}"
        loop_profile = cProfile.Profile() if args.profile and not args.thread else None
        uvloop.run(run(url, work, loop_profile, args.stations))
    total = args.stations * MESSAGES
    mean = sum(meter.batches) / max(1, len(meter.batches))
    print(
        f"writer thread CPU {meter.cpu_s / total * 1e6:.0f} us/msg (0 on PostgreSQL: no "
        f"thread), {len(meter.batches)} batches, mean {mean:.1f} messages"
    )
    chosen = meter.profile or loop_profile
    if chosen is not None:
        pstats.Stats(chosen).sort_stats("tottime").print_stats(35)


if __name__ == "__main__":
    main()
