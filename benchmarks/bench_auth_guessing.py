#!/usr/bin/env python3
"""Online password guessing against the CSMS websocket (issue 11, finding 4). Loopback only.

Starts the real OCPP server in-process on a fresh SQLite file with one station, then one
client guesses wrong Basic-auth passwords for it as fast as it can for --seconds, with
--concurrency handshakes in flight. Prints attempts/s, how many guesses the CSMS actually
checked (answered 401: each could have been the right password) and how many it refused
unchecked (429), once with the throttle as configured by default and once with it disabled
(free failures set far above the run: the behaviour before the fix). A bystander station
connects with its right password from another loopback address during each run.

  .venv/bin/python benchmarks/bench_auth_guessing.py [--seconds 5] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import logging
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import websockets  # noqa: E402
from argon2 import PasswordHasher  # noqa: E402
from websockets.exceptions import InvalidStatus  # noqa: E402

from csms.ocpp_server.server import start_ocpp_server  # noqa: E402
from csms.persistence.migrate import upgrade_async  # noqa: E402
from csms.services.container import build_services  # noqa: E402
from csms.settings import Settings  # noqa: E402

PASSWORD = "bench-station-password-1"
UNTHROTTLED = {"auth_free_failures_per_station": 10**9, "auth_free_failures_per_address": 10**9}


def _auth(station_id: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{station_id}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def _attempt(url: str, station_id: str, password: str, source: str) -> int:
    try:
        ws = await websockets.connect(
            f"{url}/{station_id}",
            subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
            additional_headers=_auth(station_id, password),
            local_addr=(source, 0),
            open_timeout=30,
        )
    except InvalidStatus as refused:
        return refused.response.status_code
    await ws.close()
    return 101


async def run(seconds: float, concurrency: int, overrides: dict[str, Any]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-auth-") as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'csms.db'}"
        await upgrade_async(url)
        settings = Settings(
            database_url=url,
            ocpp_host="127.0.0.1",
            ocpp_port=0,
            password_key_file=Path(tmp) / "key",
            **overrides,
        )
        services = build_services(
            settings,
            sqlite_synchronous="NORMAL",
            password_hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1),
        )
        await services.start()
        server = await start_ocpp_server(settings, services)
        try:
            for station_id in ("TARGET", "BYSTANDER"):
                await services.stations.create(station_id, password=PASSWORD)
            ws_url = f"ws://127.0.0.1:{server.port}/ocpp"
            statuses: Counter[int] = Counter()
            deadline = time.perf_counter() + seconds
            guess = 0

            async def guesser() -> None:
                nonlocal guess
                while time.perf_counter() < deadline:
                    guess += 1
                    code = await _attempt(ws_url, "TARGET", f"wrong-{guess:012d}", "127.0.0.1")
                    statuses[code] += 1

            bystander_ms: list[float] = []
            bystander_codes: Counter[int] = Counter()

            async def bystander() -> None:
                while time.perf_counter() < deadline:
                    start = time.perf_counter()
                    code = await _attempt(ws_url, "BYSTANDER", PASSWORD, "127.0.0.2")
                    bystander_ms.append((time.perf_counter() - start) * 1000)
                    bystander_codes[code] += 1
                    await asyncio.sleep(0.1)

            started = time.perf_counter()
            await asyncio.gather(bystander(), *(guesser() for _ in range(concurrency)))
            elapsed = time.perf_counter() - started
            events = await services.events.list("TARGET", kind="CsmsSecurityEvent")
        finally:
            await server.close()
            await services.close()
    attempts = sum(statuses.values())
    return {
        "attempts_per_s": attempts / elapsed,
        "checked_per_s": statuses[401] / elapsed,
        "checked": statuses[401],
        "throttled": statuses[429],
        "other": {k: v for k, v in statuses.items() if k not in (401, 429)},
        "security_events": events.total,
        "bystander_ok": bystander_codes[101],
        "bystander_refused": sum(v for k, v in bystander_codes.items() if k != 101),
        "bystander_median_ms": statistics.median(bystander_ms) if bystander_ms else float("nan"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each run (5)")
    parser.add_argument("--concurrency", type=int, default=8, help="handshakes in flight (8)")
    args = parser.parse_args()
    if not (0 < args.seconds <= 600 and 1 <= args.concurrency <= 256):
        parser.error("--seconds must be in (0, 600] and --concurrency in [1, 256]")
    logging.basicConfig(level=logging.WARNING)
    for name, overrides in (("throttle off (before)", UNTHROTTLED), ("throttle on (default)", {})):
        result = asyncio.run(run(args.seconds, args.concurrency, overrides))
        print(
            f"{name:<22} {result['attempts_per_s']:8.0f} attempts/s  "
            f"{result['checked_per_s']:8.1f} checked guesses/s "
            f"({result['checked']} checked, {result['throttled']} refused unchecked"
            f"{', other ' + str(result['other']) if result['other'] else ''}); "
            f"security events {result['security_events']}; bystander "
            f"{result['bystander_ok']} ok / {result['bystander_refused']} refused, "
            f"median connect {result['bystander_median_ms']:.1f} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
