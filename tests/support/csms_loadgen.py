"""Load generator for the CSMS OCPP edge: CSMS CPU time per station message.

    .venv/bin/python -m tests.support.csms_loadgen --stations 50 --seconds 10 --mix tx

The CSMS (services + OCPP server, SQLite in a temp dir unless --database-url) runs in this
process; the stations run in a child process (raw websockets, one outstanding CALL each), so
the CPU time measured here is the CSMS's alone. `--mix heartbeat` sends Heartbeats only;
`--mix tx` sends TransactionEvent Updated with a meter value (the persisted, heavier path).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PASSWORD = "loadgen-password-01"
REPO_ROOT = str(Path(__file__).resolve().parents[2])


async def _station(url: str, station_id: str, mix: str, until: float) -> int:
    import orjson
    import websockets

    auth = base64.b64encode(f"{station_id}:{PASSWORD}".encode()).decode()
    async with websockets.connect(
        f"{url}/{station_id}",
        subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
        additional_headers={"Authorization": f"Basic {auth}"},
        compression=None,
    ) as ws:
        boot = {"chargingStation": {"vendorName": "L", "model": "G"}, "reason": "PowerUp"}
        await ws.send(orjson.dumps([2, "b", "BootNotification", boot]).decode())
        await ws.recv()
        sent = 0
        seq = 0
        while time.monotonic() < until:
            if mix == "tx":
                seq += 1
                payload: dict[str, Any] = {
                    "eventType": "Started" if seq == 1 else "Updated",
                    "timestamp": "2026-01-01T00:00:00.000Z",
                    "triggerReason": "MeterValuePeriodic",
                    "seqNo": seq,
                    "transactionInfo": {"transactionId": f"T-{station_id}"},
                    "evse": {"id": 1, "connectorId": 1},
                    "meterValue": [
                        {
                            "timestamp": "2026-01-01T00:00:00.000Z",
                            "sampledValue": [{"value": float(seq)}],
                        }
                    ],
                }
                frame = [2, str(seq), "TransactionEvent", payload]
            else:
                frame = [2, str(sent), "Heartbeat", {}]
            await ws.send(orjson.dumps(frame).decode())
            reply = orjson.loads(await ws.recv())
            if reply[0] != 3:
                raise RuntimeError(f"unexpected reply {reply}")
            sent += 1
        return sent


async def _clients(url: str, stations: int, mix: str, seconds: float) -> int:
    until = time.monotonic() + seconds
    counts = await asyncio.gather(
        *(_station(url, f"LG{i:04d}", mix, until) for i in range(stations))
    )
    return sum(counts)


async def _serve(args: argparse.Namespace) -> dict[str, Any]:

    tmp = Path(tempfile.mkdtemp(prefix="csms-loadgen-"))
    if args.database_url and args.database_url.startswith("postgresql"):
        # Never migrate a shared database: use a throw-away one beside it.
        from tests.support.csms_db import fresh_postgres_database

        async with fresh_postgres_database(args.database_url) as url:
            return await _run(args, url)
    return await _run(args, args.database_url or f"sqlite+aiosqlite:///{tmp / 'csms.db'}")


async def _run(args: argparse.Namespace, url: str) -> dict[str, Any]:
    from csms.ocpp_server.server import start_ocpp_server
    from csms.services.container import build_services
    from csms.settings import Settings

    settings = Settings(
        database_url=url,
        ocpp_host="127.0.0.1",
        ocpp_port=0,
        validate_messages=not args.no_validate,
        password_key_file=Path(tempfile.gettempdir()) / "csms-loadgen.password-key",
    )
    from argon2 import PasswordHasher

    services = build_services(
        settings,
        password_hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1),
        sqlite_synchronous=args.sqlite_synchronous,
    )
    await services.start(migrate=True)
    for i in range(args.stations):
        await services.stations.create(f"LG{i:04d}", password=PASSWORD)
    server = await start_ocpp_server(settings, services)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    batches0, ops0 = services.db.writer.batches_committed, services.db.writer.ops_committed
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.support.csms_loadgen",
        "--client",
        f"ws://127.0.0.1:{server.port}/ocpp",
        "--stations",
        str(args.stations),
        "--seconds",
        str(args.seconds),
        "--mix",
        args.mix,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": REPO_ROOT},
    )
    out, _ = await child.communicate()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    messages = int(out.decode().strip().splitlines()[-1])
    result = {
        "mix": args.mix,
        "stations": args.stations,
        "database": url.split(":")[0],
        "validate_messages": not args.no_validate,
        "sqlite_synchronous": args.sqlite_synchronous,
        "messages": messages,
        "messages_per_s": round(messages / args.seconds, 1),
        "csms_cpu_us_per_message": round(cpu / max(messages, 1) * 1e6, 1),
        "commits": services.db.writer.batches_committed - batches0,
        "writes": services.db.writer.ops_committed - ops0,
        "wall_s": round(wall, 2),
    }
    await server.close()
    await services.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stations", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--mix", choices=["heartbeat", "tx"], default="tx")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--no-validate", action="store_true")
    parser.add_argument("--sqlite-synchronous", default="FULL", choices=["FULL", "NORMAL", "OFF"])
    parser.add_argument("--client", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        print(asyncio.run(_clients(args.client, args.stations, args.mix, args.seconds)))
        return
    print(json.dumps(asyncio.run(_serve(args))))


if __name__ == "__main__":
    main()
