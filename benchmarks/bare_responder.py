#!/usr/bin/env python3
"""Baseline "CSMS": bare `websockets`, no validation, no persistence.

It answers every OCPP 2.0.1 CALL from a station with a canned, schema-valid response, so the
load generator can be measured against the cheapest possible server. With --api-port it also
serves the one REST route the generator uses for CSMS-initiated commands,
`POST /stations/{station_id}/ocpp/{action}` (body: the request payload; answer: the station's
response payload), forwarding the CALL over the station's websocket. Loopback only.

  python benchmarks/bare_responder.py --port 9000 [--api-port 8000] [--uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import re
import signal
import sys
import uuid
from collections import Counter
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

import orjson
import websockets
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

SUBPROTOCOL = "ocpp2.0.1"
_COMMAND_ROUTE = re.compile(r"^/stations/([^/]+)/ocpp/([A-Za-z0-9]+)$")


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class BareResponder:
    """A websockets server answering every CALL; counts what it received."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_port: int | None = None,
        api_token: str | None = None,
        heartbeat_interval: int = 300,
        command_timeout_s: float = 25.0,
        backlog: int = 100,
        password: str | None = None,
        pending_boots: int = 0,
    ) -> None:
        self.host = host
        self.port = port
        self.api_port = api_port
        self.api_token = api_token
        self.heartbeat_interval = heartbeat_interval
        self.command_timeout_s = command_timeout_s
        self.backlog = backlog  # asyncio's default is 100: a boot storm overflows it
        self.password = password  # Basic auth (user = station id) when set
        self.pending_boots = pending_boots  # answer the first N boots of a station Pending
        self.boots: Counter[str] = Counter()
        self.auth_rejected = 0
        self.received: Counter[str] = Counter()  # station-initiated CALLs by action
        self.csms_calls_sent: Counter[str] = Counter()
        self.csms_calls_answered: Counter[str] = Counter()
        self.api_requests = 0
        self.connections_total = 0
        self.stations: dict[str, ServerConnection] = {}
        self._pending: dict[str, asyncio.Future[list[Any]]] = {}
        self._server: Server | None = None
        self._api_server: asyncio.Server | None = None

    def answer(self, station_id: str, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        if action == "BootNotification":
            self.boots[station_id] += 1
            if self.boots[station_id] <= self.pending_boots:
                return {"currentTime": _now_iso(), "interval": 1, "status": "Pending"}
            return {
                "currentTime": _now_iso(),
                "interval": self.heartbeat_interval,
                "status": "Accepted",
            }
        if action == "Heartbeat":
            return {"currentTime": _now_iso()}
        if action == "Authorize":
            return {"idTokenInfo": {"status": "Accepted"}}
        if action == "TransactionEvent" and "idToken" in payload:
            return {"idTokenInfo": {"status": "Accepted"}}
        return {}  # StatusNotification, MeterValues, TransactionEvent, Notify*: empty is valid

    async def _handle(self, connection: ServerConnection) -> None:
        assert connection.request is not None
        station_id = unquote(connection.request.path.rstrip("/").rsplit("/", 1)[-1])
        self.connections_total += 1
        self.stations[station_id] = connection
        try:
            async for raw in connection:
                message = orjson.loads(raw)
                if message[0] == 2:
                    self.received[message[2]] += 1
                    reply = [3, message[1], self.answer(station_id, message[2], message[3])]
                    await connection.send(orjson.dumps(reply).decode())
                else:
                    future = self._pending.pop(message[1], None)
                    if future is not None and not future.done():
                        future.set_result(message)
        except websockets.ConnectionClosed:
            pass
        finally:
            if self.stations.get(station_id) is connection:
                del self.stations[station_id]

    async def send_call(self, station_id: str, action: str, payload: Any) -> list[Any]:
        """A CSMS-initiated CALL; the station's CALLRESULT or CALLERROR frame."""
        connection = self.stations[station_id]
        message_id = uuid.uuid4().hex
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._pending[message_id] = future
        self.csms_calls_sent[action] += 1
        try:
            await connection.send(orjson.dumps([2, message_id, action, payload]).decode())
            async with asyncio.timeout(self.command_timeout_s):
                reply = await future
        finally:
            self._pending.pop(message_id, None)
        self.csms_calls_answered[action] += 1
        return reply

    # -- the one REST route -------------------------------------------------------------------
    async def _handle_http(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            while True:
                request_line = await reader.readline()
                if not request_line:
                    break
                method, target, _ = request_line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                status, answer = await self._route(method, target, headers, body)
                data = orjson.dumps(answer)
                writer.write(
                    f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(data)}\r\n\r\n".encode()
                    + data
                )
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _route(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Any]:
        self.api_requests += 1
        if (
            self.api_token is not None
            and headers.get("authorization") != f"Bearer {self.api_token}"
        ):
            return 401, {"detail": "bearer token required"}
        match = _COMMAND_ROUTE.match(target.split("?", 1)[0])
        if method != "POST" or match is None:
            return 404, {"detail": "not found"}
        station_id, action = unquote(match.group(1)), match.group(2)
        if station_id not in self.stations:
            return 409, {"detail": f"{station_id} is not connected"}
        try:
            reply = await self.send_call(station_id, action, orjson.loads(body or b"{}"))
        except TimeoutError:
            return 504, {"detail": "no answer in time"}
        except (KeyError, websockets.ConnectionClosed):
            return 409, {"detail": f"{station_id} disconnected"}
        if reply[0] == 3:
            return 200, reply[2]
        return 502, {"detail": "CALLERROR", "code": reply[2], "description": reply[3]}

    # -- life cycle ---------------------------------------------------------------------------
    def _check_auth(self, connection: ServerConnection, request: Request) -> Response | None:
        if self.password is None:
            return None
        station_id = unquote(request.path.rstrip("/").rsplit("/", 1)[-1])
        token = base64.b64encode(f"{station_id}:{self.password}".encode()).decode()
        if request.headers.get("Authorization") == f"Basic {token}":
            return None
        self.auth_rejected += 1
        return connection.respond(HTTPStatus.UNAUTHORIZED, "bad credentials\n")

    async def start(self) -> None:
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
            compression=None,
            max_queue=64,
            backlog=self.backlog,
            process_request=self._check_auth,
        )
        self.port = next(iter(self._server.sockets)).getsockname()[1]
        if self.api_port is not None:
            self._api_server = await asyncio.start_server(
                self._handle_http, self.host, self.api_port
            )
            self.api_port = self._api_server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._api_server is not None:
            self._api_server.close()
            await self._api_server.wait_closed()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def __aenter__(self) -> BareResponder:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def _serve_forever(args: argparse.Namespace) -> None:
    responder = BareResponder(
        "127.0.0.1",
        args.port,
        api_port=args.api_port,
        api_token=args.api_token,
        heartbeat_interval=args.heartbeat_interval,
        backlog=args.backlog,
        password=args.password,
    )
    await responder.start()
    print(
        orjson.dumps(
            {
                "port": responder.port,
                "api_port": responder.api_port,
                "pid": __import__("os").getpid(),
            }
        ).decode(),
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await responder.stop()
    print(
        orjson.dumps(
            {
                "received": dict(responder.received),
                "csms_calls_answered": dict(responder.csms_calls_answered),
            }
        ).decode(),
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="bare websockets OCPP 2.0.1 responder (baseline)")
    p.add_argument("--port", type=int, default=9000)
    p.add_argument("--api-port", type=int, default=None)
    p.add_argument("--api-token", default=None)
    p.add_argument("--heartbeat-interval", type=int, default=300)
    p.add_argument("--backlog", type=int, default=100, help="listen backlog (asyncio default 100)")
    p.add_argument("--password", default=None, help="require Basic auth with this password")
    p.add_argument("--uvloop", action="store_true")
    args = p.parse_args(argv)
    if args.uvloop:
        import uvloop

        uvloop.install()
    asyncio.run(_serve_forever(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
