"""Tiny OCPP 2.0.1 peers written with the Python `ocpp` library, used to prove the Node harness.

They stand in for our CSMS and agent while those are being built, so the harness's own tests do
not depend on them. Loopback only.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import websockets
from ocpp.routing import on
from ocpp.v201 import ChargePoint, call_result
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import Server, ServerConnection, serve

SUBPROTOCOL = "ocpp2.0.1"


def _now() -> str:
    return datetime.now(UTC).isoformat()


class PythonCsmsSession(ChargePoint):
    """One station's session on the tiny Python CSMS; records what the station sent."""

    def __init__(self, station_id: str, connection: ServerConnection) -> None:
        super().__init__(station_id, connection)
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.booted = asyncio.Event()
        self.heartbeats = 0
        self.heartbeat_seen = asyncio.Event()

    @on("BootNotification")
    def on_boot(self, **payload: Any) -> call_result.BootNotification:
        self.received.append(("BootNotification", payload))
        self.booted.set()
        return call_result.BootNotification(current_time=_now(), interval=60, status="Accepted")

    @on("Heartbeat")
    def on_heartbeat(self) -> call_result.Heartbeat:
        self.received.append(("Heartbeat", {}))
        self.heartbeats += 1
        self.heartbeat_seen.set()
        return call_result.Heartbeat(current_time=_now())

    @on("StatusNotification")
    def on_status(self, **payload: Any) -> call_result.StatusNotification:
        self.received.append(("StatusNotification", payload))
        return call_result.StatusNotification()

    @on("NotifyReport")
    def on_notify_report(self, **payload: Any) -> call_result.NotifyReport:
        self.received.append(("NotifyReport", payload))
        return call_result.NotifyReport()


@dataclass
class PythonCsms:
    """A websockets server on 127.0.0.1 that runs one `PythonCsmsSession` per station."""

    server: Server
    port: int
    sessions: dict[str, PythonCsmsSession] = field(default_factory=dict)
    _connected: dict[str, asyncio.Event] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp"

    def _event_for(self, station_id: str) -> asyncio.Event:
        return self._connected.setdefault(station_id, asyncio.Event())

    async def session(self, station_id: str, timeout_s: float = 10.0) -> PythonCsmsSession:
        await asyncio.wait_for(self._event_for(station_id).wait(), timeout_s)
        return self.sessions[station_id]


@contextlib.asynccontextmanager
async def python_csms() -> AsyncIterator[PythonCsms]:
    holder: dict[str, PythonCsms] = {}

    async def handler(connection: ServerConnection) -> None:
        assert connection.request is not None
        station_id = connection.request.path.rstrip("/").rsplit("/", 1)[-1]
        session = PythonCsmsSession(station_id, connection)
        csms = holder["csms"]
        csms.sessions[station_id] = session
        csms._event_for(station_id).set()
        with contextlib.suppress(websockets.ConnectionClosed):
            await session.start()

    server = await serve(handler, "127.0.0.1", 0, subprotocols=[SUBPROTOCOL])  # type: ignore[list-item]
    port = next(iter(server.sockets)).getsockname()[1]
    csms = PythonCsms(server=server, port=port)
    holder["csms"] = csms
    try:
        yield csms
    finally:
        server.close()
        await server.wait_closed()


class PythonStation(ChargePoint):
    """A station written with the `ocpp` library; answers GetVariables from a small table."""

    def __init__(self, station_id: str, connection: ClientConnection) -> None:
        super().__init__(station_id, connection)
        self.variables = {("OCPPCommCtrlr", "HeartbeatInterval"): "120"}
        self.get_variables_requests: list[list[dict[str, Any]]] = []

    @on("GetVariables")
    def on_get_variables(self, get_variable_data: list[dict[str, Any]]) -> call_result.GetVariables:
        self.get_variables_requests.append(get_variable_data)
        results = []
        for item in get_variable_data:
            key = (item["component"]["name"], item["variable"]["name"])
            value = self.variables.get(key)
            result: dict[str, Any] = {
                "attribute_status": "Accepted" if value is not None else "UnknownVariable",
                "component": item["component"],
                "variable": item["variable"],
            }
            if value is not None:
                result["attribute_value"] = value
            results.append(result)
        return call_result.GetVariables(get_variable_result=results)


def basic_auth_header(identity: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{identity}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@contextlib.asynccontextmanager
async def python_station(
    base_url: str,
    station_id: str,
    password: str | None = None,
    subprotocols: list[str] | None = None,
    station_class: type[PythonStation] = PythonStation,
) -> AsyncIterator[PythonStation]:
    """Connect a `PythonStation` and run its receive loop until the block ends."""
    headers = basic_auth_header(station_id, password) if password is not None else None
    connection = await ws_connect(
        f"{base_url}/{station_id}",
        subprotocols=subprotocols or [SUBPROTOCOL],  # type: ignore[arg-type]
        additional_headers=headers,
        open_timeout=10,
    )
    station = station_class(station_id, connection)
    runner = asyncio.create_task(station.start())
    try:
        yield station
    finally:
        await connection.close()
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError, websockets.ConnectionClosed):
            await runner
