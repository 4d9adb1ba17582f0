#!/usr/bin/env python3
"""Baseline CSMS built the textbook way on the Python `ocpp` library (2.1.0): one
`ocpp.v201.ChargePoint` per connection, schema validation on, no persistence.

By default the library validates each message in a thread pool (`ASYNC_VALIDATION = True`);
`--inline-validation` validates in the event loop instead. Loopback only.

  python benchmarks/ocpp_lib_server.py --port 9000 [--inline-validation] [--uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from datetime import UTC, datetime
from typing import Any

import orjson
import websockets
from ocpp import messages
from ocpp.routing import on
from ocpp.v201 import ChargePoint, call_result
from websockets.asyncio.server import ServerConnection, serve


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


class BaselineSession(ChargePoint):
    heartbeat_interval = 300

    @on("BootNotification")
    def on_boot(self, **_: Any) -> call_result.BootNotification:
        return call_result.BootNotification(
            current_time=_now_iso(), interval=self.heartbeat_interval, status="Accepted"
        )

    @on("Heartbeat")
    def on_heartbeat(self) -> call_result.Heartbeat:
        return call_result.Heartbeat(current_time=_now_iso())

    @on("StatusNotification")
    def on_status(self, **_: Any) -> call_result.StatusNotification:
        return call_result.StatusNotification()

    @on("TransactionEvent")
    def on_transaction_event(self, **payload: Any) -> call_result.TransactionEvent:
        if payload.get("id_token"):
            return call_result.TransactionEvent(id_token_info={"status": "Accepted"})
        return call_result.TransactionEvent()

    @on("MeterValues")
    def on_meter_values(self, **_: Any) -> call_result.MeterValues:
        return call_result.MeterValues()

    @on("Authorize")
    def on_authorize(self, **_: Any) -> call_result.Authorize:
        return call_result.Authorize(id_token_info={"status": "Accepted"})


async def _handle(connection: ServerConnection) -> None:
    assert connection.request is not None
    station_id = connection.request.path.rstrip("/").rsplit("/", 1)[-1]
    session = BaselineSession(station_id, connection)
    with contextlib.suppress(websockets.ConnectionClosed):
        await session.start()


async def _serve(port: int) -> None:
    server = await serve(
        _handle,
        "127.0.0.1",
        port,
        subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
        compression=None,
    )
    bound = next(iter(server.sockets)).getsockname()[1]
    print(
        orjson.dumps(
            {"port": bound, "pid": os.getpid(), "async_validation": messages.ASYNC_VALIDATION}
        ).decode(),
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    await server.wait_closed()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="ocpp library ChargePoint server (baseline)")
    p.add_argument("--port", type=int, default=9000)
    p.add_argument(
        "--inline-validation",
        action="store_true",
        help="validate in the event loop (ocpp.messages.ASYNC_VALIDATION = False)",
    )
    p.add_argument("--heartbeat-interval", type=int, default=300)
    p.add_argument("--log-info", action="store_true", help="keep the library's INFO logging")
    p.add_argument("--uvloop", action="store_true")
    args = p.parse_args(argv)
    if args.inline_validation:
        messages.ASYNC_VALIDATION = False
    # The library logs every frame at INFO; a production server would not.
    logging.getLogger("ocpp").setLevel(logging.INFO if args.log_info else logging.WARNING)
    BaselineSession.heartbeat_interval = args.heartbeat_interval
    if args.uvloop:
        import uvloop

        uvloop.install()
    asyncio.run(_serve(args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
