"""OCPP 2.1 periodic event streams from the agent, seen on the wire by a bare-bones 2.1 CSMS
(raw OCPP-J frames: ocpp-rpc 2.2.1, the interop peer, cannot receive SEND frames, and the
`ocpp` library has no SEND support either)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from websockets.asyncio.server import ServerConnection, serve

from chargepoint_firmware.wiring import build_agent
from tests.support.agent_fakes import FakeEvse
from tests.support.agent_harness import agent_settings, eventually

pytestmark = pytest.mark.timeout(60)

OCPP_RPC_21 = (
    Path(__file__).parents[1] / "interop" / "node_modules" / "ocpp-rpc" / "lib" / "schemas"
) / "ocpp2_1.json"


def _now() -> str:
    return datetime.now(UTC).isoformat()


ANSWERS: dict[str, Any] = {
    "BootNotification": lambda: {"currentTime": _now(), "interval": 300, "status": "Accepted"},
    "Heartbeat": lambda: {"currentTime": _now()},
    "OpenPeriodicEventStream": lambda: {"status": "Accepted"},
}


@dataclass
class RawCsms:
    port: int = 0
    frames: list[list[Any]] = field(default_factory=list)
    connection: ServerConnection | None = None
    pending: dict[str, asyncio.Future[list[Any]]] = field(default_factory=dict)

    def sent(self, kind: int, action: str | None = None) -> list[list[Any]]:
        return [f for f in self.frames if f[0] == kind and (action is None or f[2] == action)]

    async def call(self, action: str, payload: dict[str, Any]) -> list[Any]:
        assert self.connection is not None
        message_id = str(uuid.uuid4())
        answer: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self.pending[message_id] = answer
        await self.connection.send(json.dumps([2, message_id, action, payload]))
        return await asyncio.wait_for(answer, 5)


@contextlib.asynccontextmanager
async def raw_csms() -> AsyncIterator[RawCsms]:
    csms = RawCsms()

    async def handler(connection: ServerConnection) -> None:
        csms.connection = connection
        async for text in connection:
            frame = json.loads(text)
            csms.frames.append(frame)
            if frame[0] == 2:
                answer = ANSWERS.get(frame[2], dict)()
                await connection.send(json.dumps([3, frame[1], answer]))
            elif frame[0] in (3, 4) and frame[1] in csms.pending:
                csms.pending.pop(frame[1]).set_result(frame)

    server = await serve(handler, "127.0.0.1", 0, subprotocols=["ocpp2.1"])  # type: ignore[list-item]
    csms.port = next(iter(server.sockets)).getsockname()[1]
    try:
        yield csms
    finally:
        server.close()
        await server.wait_closed()


def monitor(variable: str = "Power", *, kind: str = "Periodic", evse: int = 1) -> dict[str, Any]:
    return {
        "value": 0.1,
        "type": kind,
        "severity": 8,
        "component": {"name": "EVSE", "evse": {"id": evse}},
        "variable": {"name": variable},
        "periodicEventStream": {"interval": 1, "values": 5},
    }


async def test_periodic_event_stream_opens_sends_send_frames_and_closes(tmp_path: Path) -> None:
    async with raw_csms() as csms:
        evse = FakeEvse(1)
        evse.plug_in()
        evse._update(power_w=-3210.4)  # discharging: the streamed values must say so
        settings = agent_settings(
            tmp_path, f"ws://127.0.0.1:{csms.port}/ocpp", ocpp_versions=["2.1"]
        )
        agent = build_agent(settings, {1: evse})
        task = asyncio.create_task(agent.run())
        try:
            await eventually(lambda: agent.online, within_s=10, message="not online")
            answer = await csms.call(
                "SetVariableMonitoring",
                {
                    "setMonitoringData": [
                        monitor(),
                        monitor("Temperature"),
                        monitor(kind="UpperThreshold"),
                        monitor(evse=9),
                    ]
                },
            )
            results = answer[2]["setMonitoringResult"]
            assert [r["status"] for r in results] == [
                "Accepted",
                "UnknownVariable",
                "UnsupportedMonitorType",
                "UnknownComponent",
            ]
            stream_id = results[0]["id"]
            await eventually(lambda: csms.sent(2, "OpenPeriodicEventStream"), within_s=5)
            opened = csms.sent(2, "OpenPeriodicEventStream")[0][3]["constantStreamData"]
            assert opened == {
                "id": stream_id,
                "variableMonitoringId": stream_id,
                "params": {"interval": 1, "values": 5},
            }
            await eventually(lambda: len(csms.sent(6)) >= 2, within_s=5, message="no SEND")
            send = csms.sent(6)[0]
            assert send[2] == "NotifyPeriodicEventStream"
            payload = send[3]
            assert payload["id"] == stream_id and payload["pending"] == 0
            assert 1 <= len(payload["data"]) <= 5
            assert {d["v"] for d in payload["data"]} == {"-3210.4"}
            if OCPP_RPC_21.exists():  # the OCA 2.1 schema of the SEND message (ships with it)
                schemas = json.loads(OCPP_RPC_21.read_text())
                schema = next(s for s in schemas if s["$id"] == "urn:NotifyPeriodicEventStream")
                jsonschema.validate(payload, schema)

            got = await csms.call("GetPeriodicEventStream", {})
            assert got[2]["constantStreamData"][0]["id"] == stream_id
            adjusted = await csms.call(
                "AdjustPeriodicEventStream", {"id": stream_id, "params": {"values": 2}}
            )
            assert adjusted[2]["status"] == "Accepted"
            unknown = await csms.call("AdjustPeriodicEventStream", {"id": 99, "params": {}})
            assert unknown[2]["status"] == "Rejected"

            cleared = await csms.call("ClearVariableMonitoring", {"id": [stream_id, 42]})
            assert cleared[2]["clearMonitoringResult"] == [
                {"id": stream_id, "status": "Accepted"},
                {"id": 42, "status": "NotFound"},
            ]
            await eventually(lambda: csms.sent(2, "ClosePeriodicEventStream"), within_s=5)
            assert csms.sent(2, "ClosePeriodicEventStream")[0][3] == {"id": stream_id}
            count = len(csms.sent(6))
            await asyncio.sleep(1.5)
            assert len(csms.sent(6)) <= count + 1  # at most a batch already on its way
            assert (await csms.call("GetPeriodicEventStream", {}))[2] == {}
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            agent.close()
