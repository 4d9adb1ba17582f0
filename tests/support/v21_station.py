"""An OCPP 2.1 charging station for V2X tests: the `ocpp` library's v21 ChargePoint on a real
websocket offering only `ocpp2.1`. It checks every CALL it receives against the 2.1 schemas
(as a strict station would), answers the V2X, DER, aFRR and stream actions with schema-valid
responses, and records what it received."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ocpp.messages import Call, CallResult, MessageType, unpack, validate_payload
from ocpp.v21 import ChargePoint, call
from websockets.asyncio.client import ClientConnection, connect

from tests.support.api_station import basic_auth_header
from tests.support.v2g_harness import iso

JsonDict = dict[str, Any]

ANSWERS: dict[str, JsonDict] = {
    "SetChargingProfile": {"status": "Accepted"},
    "ClearChargingProfile": {"status": "Accepted"},
    "UpdateDynamicSchedule": {"status": "Accepted"},
    "NotifyAllowedEnergyTransfer": {"status": "Accepted"},
    "AFRRSignal": {"status": "Accepted"},
    "SetDERControl": {"status": "Accepted"},
    "GetDERControl": {"status": "Accepted"},
    "ClearDERControl": {"status": "Accepted"},
    "AdjustPeriodicEventStream": {"status": "Accepted"},
    "GetPeriodicEventStream": {},
    "SetVariables": {"setVariableResult": []},
}

MONITOR_ACTIONS = ("SetVariableMonitoring", "ClearVariableMonitoring")


@dataclass
class Received:
    action: str
    payload: JsonDict


class V21Station(ChargePoint):
    def __init__(self, station_id: str, connection: ClientConnection) -> None:
        super().__init__(station_id, connection, response_timeout=10)
        self.received: list[Received] = []
        self._event = asyncio.Event()

    async def route_message(self, raw_msg: str) -> None:
        message = unpack(raw_msg)
        if message.message_type_id != MessageType.Call:
            await super().route_message(raw_msg)
            return
        assert isinstance(message, Call)
        await validate_payload(message, "2.1")  # a strict 2.1 station
        self.received.append(Received(message.action, message.payload))
        self._event.set()
        if message.action not in ANSWERS and message.action not in MONITOR_ACTIONS:
            frame = [MessageType.CallError, message.unique_id, "NotImplemented", "", {}]
            await self._send(json.dumps(frame))
            return
        result = CallResult(
            unique_id=message.unique_id,
            payload=self.answer(message),
            action=message.action,
        )
        await validate_payload(result, "2.1")
        await self._send(result.to_json())

    def answer(self, message: Call) -> JsonDict:
        if message.action == "SetVariableMonitoring":
            return {
                "setMonitoringResult": [
                    {
                        "id": 40 + k,
                        "status": "Accepted",
                        "type": item["type"],
                        "severity": item["severity"],
                        "component": item["component"],
                        "variable": item["variable"],
                    }
                    for k, item in enumerate(message.payload["setMonitoringData"])
                ]
            }
        if message.action == "ClearVariableMonitoring":
            return {
                "clearMonitoringResult": [
                    {"status": "Accepted", "id": i} for i in message.payload["id"]
                ]
            }
        return dict(ANSWERS[message.action])

    async def open_stream(self, stream_id: int, monitor_id: int, interval_s: int) -> None:
        """OpenPeriodicEventStream, as a station does after a periodic-stream monitor was set."""
        await self.call(
            call.OpenPeriodicEventStream(
                constant_stream_data={
                    "id": stream_id,
                    "variable_monitoring_id": monitor_id,
                    "params": {"interval": interval_s},
                }
            ),
            suppress=False,
        )

    async def wait_for_call(self, action: str, wait_s: float = 5.0) -> Received:
        async def first() -> Received:
            while True:
                for received in self.received:
                    if received.action == action:
                        return received
                self._event.clear()
                await self._event.wait()

        return await asyncio.wait_for(first(), wait_s)

    async def boot(self) -> str:
        response = await self.call(
            call.BootNotification(
                charging_station={"vendorName": "V21Vendor", "model": "V21Model"},
                reason="PowerUp",
            ),
            suppress=False,
        )
        return str(response.status)

    async def report_v2x_controller(self, modes: str) -> None:
        """NotifyReport with the V2XChargingCtrlr variables (Enabled, SupportedOperationModes)."""

        def item(variable: str, value: str) -> JsonDict:
            return {
                "component": {"name": "V2XChargingCtrlr"},
                "variable": {"name": variable},
                "variable_attribute": [{"type": "Actual", "value": value}],
            }

        await self.call(
            call.NotifyReport(
                request_id=1,
                generated_at="2026-01-01T00:00:00Z",
                seq_no=0,
                report_data=[item("Enabled", "true"), item("SupportedOperationModes", modes)],
            ),
            suppress=False,
        )

    async def start_transaction(self, tx_id: str, at: datetime, soc_pct: float) -> None:
        await self.call(
            call.StatusNotification(
                timestamp=iso(at), connector_status="Occupied", evse_id=1, connector_id=1
            ),
            suppress=False,
        )
        meter = [
            {
                "timestamp": iso(at),
                "sampled_value": [
                    {"value": soc_pct, "measurand": "SoC", "unit_of_measure": {"unit": "Percent"}}
                ],
            }
        ]
        await self.call(
            call.TransactionEvent(
                event_type="Started",
                timestamp=iso(at),
                trigger_reason="CablePluggedIn",
                seq_no=0,
                transaction_info={"transaction_id": tx_id, "charging_state": "Charging"},
                evse={"id": 1, "connector_id": 1},
                meter_value=meter,
            ),
            suppress=False,
        )


@contextlib.asynccontextmanager
async def connected_v21_station(
    ocpp_url: str, station_id: str, password: str
) -> AsyncIterator[V21Station]:
    headers = {"Authorization": basic_auth_header(station_id, password)}
    url = f"{ocpp_url.rstrip('/')}/{station_id}"
    async with connect(url, subprotocols=["ocpp2.1"], additional_headers=headers) as websocket:  # type: ignore[list-item]
        assert websocket.subprotocol == "ocpp2.1"
        station = V21Station(station_id, websocket)
        runner = asyncio.create_task(station.start())
        try:
            await station.boot()
            yield station
        finally:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await runner
