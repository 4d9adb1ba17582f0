"""A small CSMS written with the `ocpp` library, for the agent's tests (loopback only).

It records every CALL the station sends (action + camelCase payload, as on the wire), answers
them (BootNotification with a scripted sequence of statuses), validates them against the OCA
schemas (the library's default) and lets the test send CSMS-initiated CALLs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import ocpp.messages
from ocpp.messages import CallError
from ocpp.routing import on
from ocpp.v201 import ChargePoint, call_result
from ocpp.v201.enums import Action
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class Received:
    station_id: str
    message_id: str
    action: str
    payload: dict[str, Any]


class _Recorder:
    """Wraps the websocket: records incoming CALLs and raw frames."""

    def __init__(self, csms: AgentTestCsms, station_id: str, ws: ServerConnection) -> None:
        self.csms = csms
        self.station_id = station_id
        self.ws = ws

    async def recv(self) -> str:
        raw = await self.ws.recv()
        text = raw if isinstance(raw, str) else raw.decode()
        self.csms.frames.append(("in", text))
        message = json.loads(text)
        if message[0] == 2:
            self.csms.received.append(Received(self.station_id, message[1], message[2], message[3]))
        return text

    async def send(self, text: str) -> None:
        self.csms.frames.append(("out", text))
        await self.ws.send(text)


MALFORMED_CALLERROR = "<malformed>"


class _CsmsSide(ChargePoint):
    def __init__(self, csms: AgentTestCsms, station_id: str, connection: Any) -> None:
        super().__init__(station_id, connection, response_timeout=5)
        self.csms = csms

    async def route_message(self, raw_msg: str) -> None:
        message = json.loads(raw_msg)
        if message[0] == 2 and message[2] in self.csms.answer_delay_s:
            await asyncio.sleep(self.csms.answer_delay_s[message[2]])  # a slow CSMS
        if message[0] == 2 and message[2] in self.csms.silent_actions:
            return  # a CSMS that does not answer (overloaded, or a broken proxy)
        if message[0] == 2 and message[2] in self.csms.error_actions:
            if self.csms.error_code == MALFORMED_CALLERROR:
                await self._send(json.dumps([4, message[1]]))  # too short to be a CALLERROR
                return
            error = CallError(message[1], self.csms.error_code, "scripted failure", {})
            await self._send(error.to_json())  # a CSMS that cannot process it (E13)
            return
        await super().route_message(raw_msg)

    @on(Action.boot_notification)
    def on_boot_notification(self, **_: Any) -> call_result.BootNotification:
        statuses = self.csms.boot_statuses
        status = statuses.pop(0) if len(statuses) > 1 else statuses[0]
        return call_result.BootNotification(
            current_time=_now(), interval=self.csms.boot_interval, status=status
        )

    @on(Action.heartbeat)
    def on_heartbeat(self, **_: Any) -> call_result.Heartbeat:
        return call_result.Heartbeat(current_time=_now())

    @on(Action.status_notification)
    def on_status_notification(self, **_: Any) -> call_result.StatusNotification:
        return call_result.StatusNotification()

    @on(Action.transaction_event)
    def on_transaction_event(
        self, id_token: dict[str, Any] | None = None, **_: Any
    ) -> call_result.TransactionEvent:
        # Answer idTokenInfo for events that carry a token the test scripted (E05 / C15).
        status = None if id_token is None else self.csms.tx_token_status.get(id_token["id_token"])
        if status is None:
            return call_result.TransactionEvent()
        return call_result.TransactionEvent(id_token_info={"status": status})

    @on(Action.meter_values)
    def on_meter_values(self, **_: Any) -> call_result.MeterValues:
        return call_result.MeterValues()

    @on(Action.notify_event)
    def on_notify_event(self, **_: Any) -> call_result.NotifyEvent:
        return call_result.NotifyEvent()

    @on(Action.security_event_notification)
    def on_security_event_notification(self, **_: Any) -> call_result.SecurityEventNotification:
        return call_result.SecurityEventNotification()

    @on(Action.notify_report)
    def on_notify_report(self, **_: Any) -> call_result.NotifyReport:
        return call_result.NotifyReport()

    @on(Action.log_status_notification)
    def on_log_status_notification(self, **_: Any) -> call_result.LogStatusNotification:
        return call_result.LogStatusNotification()

    @on(Action.firmware_status_notification)
    def on_firmware_status_notification(self, **_: Any) -> call_result.FirmwareStatusNotification:
        return call_result.FirmwareStatusNotification()

    @on(Action.report_charging_profiles)
    def on_report_charging_profiles(self, **_: Any) -> call_result.ReportChargingProfiles:
        return call_result.ReportChargingProfiles()

    @on(Action.reservation_status_update)
    def on_reservation_status_update(self, **_: Any) -> call_result.ReservationStatusUpdate:
        return call_result.ReservationStatusUpdate()

    @on(Action.authorize)
    def on_authorize(self, id_token: dict[str, Any], **_: Any) -> call_result.Authorize:
        scripted = self.csms.authorize_answers.get(str(id_token["id_token"]))
        if scripted is not None:
            return call_result.Authorize(id_token_info=scripted)
        blocked = str(id_token["id_token"]).startswith("BLOCKED")
        return call_result.Authorize(id_token_info={"status": "Blocked" if blocked else "Accepted"})


@dataclass
class AgentTestCsms:
    boot_statuses: list[str] = field(default_factory=lambda: ["Accepted"])
    boot_interval: int = 300
    password: str | None = None  # Basic auth (security profile 1) when set
    silent_actions: set[str] = field(default_factory=set)  # CALLs left unanswered
    error_actions: set[str] = field(default_factory=set)  # CALLs answered with a CALLERROR
    answer_delay_s: dict[str, float] = field(default_factory=dict)  # action -> answer delay
    error_code: str = "InternalError"  # the code of that CALLERROR (or MALFORMED_CALLERROR)
    # idToken -> IdTokenInfo (snake_case) answered to Authorize instead of the default.
    authorize_answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    # idToken -> status answered in the idTokenInfo of TransactionEvents carrying it.
    tx_token_status: dict[str, str] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    frames: list[tuple[str, str]] = field(default_factory=list)
    stations: dict[str, _CsmsSide] = field(default_factory=dict)
    connections: list[ServerConnection] = field(default_factory=list)
    port: int = 0
    _server: Server | None = None

    async def start(self, port: int = 0) -> str:
        ocpp.messages.ASYNC_VALIDATION = False
        self._server = await serve(
            self._handle,
            "127.0.0.1",
            port or self.port,
            subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
            process_request=self._check_auth,
            ping_interval=None,
        )
        self.port = port or next(iter(self._server.sockets)).getsockname()[1]
        return self.url

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        self.stations.clear()

    def _check_auth(self, connection: ServerConnection, request: Request) -> Response | None:
        if self.password is None:
            return None
        import base64

        station_id = request.path.rstrip("/").split("/")[-1]
        expected = "Basic " + base64.b64encode(f"{station_id}:{self.password}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return connection.respond(401, "bad credentials\n")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        if ws.subprotocol != "ocpp2.0.1":
            await ws.close(1002, "subprotocol")
            return
        assert ws.request is not None
        station_id = ws.request.path.rstrip("/").split("/")[-1]
        cp = _CsmsSide(self, station_id, _Recorder(self, station_id, ws))
        self.stations[station_id] = cp
        self.connections.append(ws)
        with contextlib.suppress(Exception):
            await cp.start()

    async def call(self, station_id: str, payload: Any) -> Any:
        return await self.stations[station_id].call(payload, suppress=False)

    def actions(self, action: str) -> list[dict[str, Any]]:
        return [r.payload for r in self.received if r.action == action]

    async def wait_for(
        self,
        action: str,
        predicate: Callable[[dict[str, Any]], bool] = lambda _: True,
        *,
        count: int = 1,
        within_s: float = 5.0,
    ) -> list[dict[str, Any]]:
        """Wait until `count` received `action` payloads match `predicate`; return them."""
        deadline = asyncio.get_running_loop().time() + within_s
        while True:
            found = [p for p in self.actions(action) if predicate(p)]
            if len(found) >= count:
                return found
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(
                    f"{action}: {len(found)}/{count} after {within_s}s; got "
                    f"{[r.action for r in self.received]}"
                )
            await asyncio.sleep(0.01)

    async def wait_connected(self, station_id: str, within_s: float = 5.0) -> None:
        deadline = asyncio.get_running_loop().time() + within_s
        while station_id not in self.stations:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{station_id} did not connect")
            await asyncio.sleep(0.01)


__all__ = ["AgentTestCsms", "Headers", "Received"]
