"""Fairness under a flood (issue 11): a bystander station's round-trip latency while another
station floods the CSMS with pipelined frames, with the per-station message rate limit off
and on.

    .venv/bin/python benchmarks/bench_fairness.py [--seconds 8] [--flood heartbeat|bad|data]

Three processes on loopback: the CSMS (the test harness's real OCPP server on a fresh SQLite
file, in-process services), the flooders (each sends frames back to back without waiting for
answers, and counts the answers), and the bystanders (Heartbeat every 100 ms each, below any
rate limit, timing each answer). Per mode: the bystanders alone, then with the flood.
Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import multiprocessing as mp
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
import websockets  # noqa: E402

from tests.support.csms_harness import BOOT, PASSWORD, basic_auth, running_csms  # noqa: E402

FLOOD_FRAMES = {
    "heartbeat": '[2,"f","Heartbeat",{}]',
    "bad": '[2,"f","Heartbeat",{"x":',  # not JSON
    "data": orjson.dumps([2, "f", "DataTransfer", {"vendorId": "v", "data": "x" * 1000}]).decode(),
}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


# ---- CSMS process --------------------------------------------------------------------------


def _serve(pipe: Connection, overrides: dict[str, Any], stations: list[str]) -> None:
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(_serve_async(pipe, overrides, stations))


async def _serve_async(pipe: Connection, overrides: dict[str, Any], stations: list[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-fairness-") as directory:
        async with running_csms(Path(directory), ping_timeout_s=2.0, **overrides) as csms:
            for station_id in stations:
                await csms.add_station(station_id)
            pipe.send(csms.url)
            await asyncio.get_running_loop().run_in_executor(None, pipe.recv)  # stop


# ---- clients ---------------------------------------------------------------------------------


async def _connect(url: str, station_id: str) -> Any:
    ws = await websockets.connect(
        f"{url}/{station_id}",
        subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
        additional_headers=basic_auth(station_id, PASSWORD),
        open_timeout=10,
        max_queue=None,
    )
    await ws.send(orjson.dumps([2, "boot", "BootNotification", BOOT]).decode())
    await ws.recv()
    return ws


def _flood(pipe: Connection, url: str, station_ids: list[str], frame: str, seconds: float) -> None:
    pipe.send(asyncio.run(_flood_async(url, station_ids, frame, seconds)))


async def _flood_async(url: str, station_ids: list[str], frame: str, seconds: float) -> int:
    answered = 0

    async def one(station_id: str) -> None:
        nonlocal answered
        ws = await _connect(url, station_id)

        async def read() -> None:
            nonlocal answered
            with contextlib.suppress(Exception):
                async for _ in ws:
                    answered += 1

        reader = asyncio.create_task(read())
        end = time.monotonic() + seconds
        sent = 0
        with contextlib.suppress(Exception):
            while time.monotonic() < end:
                async with asyncio.timeout(max(0.01, end - time.monotonic())):
                    await ws.send(frame)
                sent += 1
                if sent % 8 == 0:
                    await asyncio.sleep(0)  # send() need not yield: let the reader count
        reader.cancel()
        ws.transport.abort()  # a paced link reads nothing more: no closing handshake

    with contextlib.suppress(TimeoutError):
        await asyncio.gather(*(one(s) for s in station_ids))
    return answered


async def _bystanders(url: str, station_ids: list[str], seconds: float) -> list[float]:
    latencies: list[float] = []

    async def one(station_id: str) -> None:
        ws = await _connect(url, station_id)
        end = time.monotonic() + seconds
        n = 0
        while time.monotonic() < end:
            n += 1
            started = time.monotonic()
            await ws.send(f'[2,"b{n}","Heartbeat",{{}}]')
            async with asyncio.timeout(30):
                await ws.recv()
            latencies.append(time.monotonic() - started)
            await asyncio.sleep(0.1)
        await ws.close()

    await asyncio.gather(*(one(s) for s in station_ids))
    return latencies


def _row(mode: str, phase: str, latencies: list[float], flood_per_s: float | None) -> str:
    ms = [x * 1000 for x in latencies]
    flood = "-" if flood_per_s is None else f"{flood_per_s:,.0f}"
    return (
        f"| {mode} | {phase} | {flood} | {len(ms)} | {percentile(ms, 50):.1f} | "
        f"{percentile(ms, 99):.1f} | {max(ms):.1f} |"
    )


def run_mode(mode: str, overrides: dict[str, Any], args: argparse.Namespace) -> list[str]:
    ctx = mp.get_context("spawn")
    flooders = [f"FLOOD{i}" for i in range(args.flooders)]
    bystanders = [f"BY{i}" for i in range(args.bystanders)]
    parent, child = ctx.Pipe()
    server = ctx.Process(target=_serve, args=(child, overrides, flooders + bystanders))
    server.start()
    try:
        url = parent.recv()
        rows = []
        idle = asyncio.run(_bystanders(url, bystanders, args.seconds))
        rows.append(_row(mode, "no flood", idle, None))
        flood_parent, flood_child = ctx.Pipe()
        flooder = ctx.Process(
            target=_flood,
            args=(flood_child, url, flooders, FLOOD_FRAMES[args.flood], args.seconds + 1.0),
        )
        flooder.start()
        time.sleep(0.5)  # the flood is running before the first sample
        busy = asyncio.run(_bystanders(url, bystanders, args.seconds))
        answered = flood_parent.recv()
        flooder.join(30)
        rows.append(_row(mode, f"flood ({args.flood})", busy, answered / (args.seconds + 1.0)))
        return rows
    finally:
        parent.send("stop")
        server.join(30)
        if server.is_alive():
            server.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--flood", choices=sorted(FLOOD_FRAMES), default="heartbeat")
    parser.add_argument("--flooders", type=int, default=1)
    parser.add_argument("--bystanders", type=int, default=5)
    parser.add_argument("--rate", type=float, default=20.0, help="ocpp_rate_per_s when on")
    parser.add_argument("--burst", type=int, default=100, help="ocpp_rate_burst when on")
    args = parser.parse_args()
    if not (0 < args.seconds <= 600 and 1 <= args.flooders <= 50 and 1 <= args.bystanders <= 50):
        parser.error("--seconds 0..600, --flooders/--bystanders 1..50")
    print("| rate limit | phase | flood answers/s | bystander samples | p50 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|---|---|")
    for mode, overrides in (
        ("off", {"ocpp_rate_per_s": 0.0}),
        (
            f"{args.rate:g}/s burst {args.burst}",
            {"ocpp_rate_per_s": args.rate, "ocpp_rate_burst": args.burst},
        ),
    ):
        for row in run_mode(mode, overrides, args):
            print(row, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
