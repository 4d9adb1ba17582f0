"""A charging station for API tests: the `ocpp` library's v201 ChargePoint on a real websocket.

It answers every CSMS-initiated OCPP 2.0.1 action with a schema-valid response, records every
CALL it receives (action + payload exactly as sent), and can be told per action to answer with a
CALLERROR or to stay silent. GetVariables/SetVariables work on a small in-memory variable store so
that password rotation and variable reads are observable.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from ocpp.messages import Call, CallResult, MessageType, unpack, validate_payload
from ocpp.v201 import ChargePoint, call
from websockets.asyncio.client import ClientConnection, connect

from csms.oca_schemas import CSMS_INITIATED_ACTIONS

JsonDict = dict[str, Any]

# Fixed answers for the actions whose answer does not depend on the request.
STATIC_RESPONSES: dict[str, JsonDict] = {
    "RequestStartTransaction": {"status": "Accepted", "transactionId": "tx-from-station"},
    "RequestStopTransaction": {"status": "Accepted"},
    "Reset": {"status": "Accepted"},
    "ChangeAvailability": {"status": "Accepted"},
    "UnlockConnector": {"status": "Unlocked"},
    "TriggerMessage": {"status": "Accepted"},
    "GetBaseReport": {"status": "Accepted"},
    "GetReport": {"status": "Accepted"},
    "SetChargingProfile": {"status": "Accepted"},
    "GetChargingProfiles": {"status": "NoProfiles"},
    "ClearChargingProfile": {"status": "Accepted"},
    "GetCompositeSchedule": {"status": "Rejected"},
    "ClearCache": {"status": "Accepted"},
    "SendLocalList": {"status": "Accepted"},
    "GetLocalListVersion": {"versionNumber": 3},
    "ReserveNow": {"status": "Accepted"},
    "CancelReservation": {"status": "Accepted"},
    "UpdateFirmware": {"status": "Accepted"},
    "PublishFirmware": {"status": "Accepted"},
    "UnpublishFirmware": {"status": "Unpublished"},
    "GetLog": {"status": "Accepted", "filename": "station.log"},
    "SetNetworkProfile": {"status": "Accepted"},
    "CertificateSigned": {"status": "Accepted"},
    "InstallCertificate": {"status": "Accepted"},
    "DeleteCertificate": {"status": "Accepted"},
    "GetInstalledCertificateIds": {"status": "NotFound"},
    "SetDisplayMessage": {"status": "Accepted"},
    "GetDisplayMessages": {"status": "Unknown"},
    "ClearDisplayMessage": {"status": "Accepted"},
    "CustomerInformation": {"status": "Accepted"},
    "SetMonitoringBase": {"status": "Accepted"},
    "SetMonitoringLevel": {"status": "Accepted"},
    "GetMonitoringReport": {"status": "Accepted"},
    "GetTransactionStatus": {"messagesInQueue": False, "ongoingIndicator": True},
    "CostUpdated": {},
    "DataTransfer": {"status": "Accepted", "data": "pong"},
}


@dataclass
class ReceivedCall:
    action: str
    payload: JsonDict
    unique_id: str


@dataclass
class StationBehaviour:
    """How the station answers; tests change it while the station runs."""

    # action -> (error code, description): answer with a CALLERROR.
    call_errors: dict[str, tuple[str, str]] = field(default_factory=dict)
    # actions left unanswered (the CSMS must time out).
    silent: set[str] = field(default_factory=set)
    # action -> payload: replaces the default answer (must still be schema-valid).
    responses: dict[str, JsonDict] = field(default_factory=dict)
    # (component, variable) pairs SetVariables rejects.
    rejected_variables: set[tuple[str, str]] = field(default_factory=set)


class ApiTestStation(ChargePoint):
    """v201 ChargePoint answering every CSMS-initiated action generically."""

    def __init__(self, station_id: str, connection: ClientConnection) -> None:
        super().__init__(station_id, connection, response_timeout=10)
        self.behaviour = StationBehaviour()
        self.received: list[ReceivedCall] = []
        self._received_event = asyncio.Event()
        # (component name, variable name) -> actual value
        self.variables: dict[tuple[str, str], str] = {
            ("SecurityCtrlr", "BasicAuthPassword"): "",
            ("SecurityCtrlr", "SecurityProfile"): "1",
            ("OCPPCommCtrlr", "HeartbeatInterval"): "300",
            ("DeviceDataCtrlr", "ItemsPerMessage"): "50",
            ("SmartChargingCtrlr", "Enabled"): "true",
        }

    async def route_message(self, raw_msg: str) -> None:
        message = unpack(raw_msg)
        if message.message_type_id != MessageType.Call:
            await super().route_message(raw_msg)
            return
        assert isinstance(message, Call)
        self.received.append(ReceivedCall(message.action, message.payload, message.unique_id))
        self._received_event.set()
        behaviour = self.behaviour
        if message.action in behaviour.silent:
            return
        if message.action in behaviour.call_errors:
            code, description = behaviour.call_errors[message.action]
            frame = [MessageType.CallError, message.unique_id, code, description, {}]
            await self._send(json.dumps(frame))
            return
        if message.action not in CSMS_INITIATED_ACTIONS:
            frame = [MessageType.CallError, message.unique_id, "NotImplemented", "", {}]
            await self._send(json.dumps(frame))
            return
        # The station checks what it receives like a strict station would.
        await validate_payload(message, "2.0.1")
        payload = self.answer(message.action, message.payload)
        result = CallResult(unique_id=message.unique_id, payload=payload, action=message.action)
        await validate_payload(result, "2.0.1")
        await self._send(result.to_json())

    def answer(self, action: str, request: JsonDict) -> JsonDict:
        if action in self.behaviour.responses:
            return self.behaviour.responses[action]
        if action == "GetVariables":
            return {
                "getVariableResult": [self._get_one(item) for item in request["getVariableData"]]
            }
        if action == "SetVariables":
            return {
                "setVariableResult": [self._set_one(item) for item in request["setVariableData"]]
            }
        if action == "SetVariableMonitoring":
            results = []
            for number, item in enumerate(request["setMonitoringData"], start=1):
                results.append(
                    {
                        "id": number,
                        "status": "Accepted",
                        "type": item["type"],
                        "severity": item["severity"],
                        "component": item["component"],
                        "variable": item["variable"],
                    }
                )
            return {"setMonitoringResult": results}
        if action == "ClearVariableMonitoring":
            return {
                "clearMonitoringResult": [
                    {"status": "Accepted", "id": monitor_id} for monitor_id in request["id"]
                ]
            }
        return dict(STATIC_RESPONSES[action])

    def _get_one(self, item: JsonDict) -> JsonDict:
        key = (item["component"]["name"], item["variable"]["name"])
        result: JsonDict = {"component": item["component"], "variable": item["variable"]}
        if key in self.variables and key != ("SecurityCtrlr", "BasicAuthPassword"):
            result["attributeStatus"] = "Accepted"
            result["attributeValue"] = self.variables[key]
        elif key in self.variables:
            result["attributeStatus"] = "Rejected"  # write-only
        else:
            result["attributeStatus"] = "UnknownVariable"
        return result

    def _set_one(self, item: JsonDict) -> JsonDict:
        key = (item["component"]["name"], item["variable"]["name"])
        result: JsonDict = {"component": item["component"], "variable": item["variable"]}
        if key in self.behaviour.rejected_variables:
            result["attributeStatus"] = "Rejected"
        elif key in self.variables:
            self.variables[key] = item["attributeValue"]
            result["attributeStatus"] = "Accepted"
        else:
            result["attributeStatus"] = "UnknownVariable"
        return result

    async def wait_for_call(self, action: str, wait_s: float = 5.0) -> ReceivedCall:
        """The first received CALL of `action` (waits for it if none yet)."""

        async def first() -> ReceivedCall:
            while True:
                for received in self.received:
                    if received.action == action:
                        return received
                self._received_event.clear()
                await self._received_event.wait()

        return await asyncio.wait_for(first(), wait_s)

    def calls_of(self, action: str) -> list[ReceivedCall]:
        return [received for received in self.received if received.action == action]

    async def boot(self) -> str:
        """Send a BootNotification; return the status the CSMS answered."""
        response = await self.call(
            call.BootNotification(
                charging_station={
                    "vendorName": "ApiTestVendor",
                    "model": "ApiTestModel",
                    "serialNumber": "SN-0001",
                    "firmwareVersion": "1.2.3",
                },
                reason="PowerUp",
            ),
            suppress=False,
        )
        return str(response.status)

    async def disconnect(self) -> None:
        """Close the websocket (as a station losing its network would)."""
        await self._connection.close()

    async def call_status_notification(
        self, evse_id: int, connector_id: int, status: str = "Available"
    ) -> None:
        await self.call(
            call.StatusNotification(
                timestamp="2026-01-01T00:00:00Z",
                connector_status=status,
                evse_id=evse_id,
                connector_id=connector_id,
            ),
            suppress=False,
        )


def basic_auth_header(station_id: str, password: str) -> str:
    token = base64.b64encode(f"{station_id}:{password}".encode()).decode()
    return f"Basic {token}"


@contextlib.asynccontextmanager
async def connected_station(
    ocpp_url: str, station_id: str, password: str | None, *, boot: bool = True
) -> AsyncIterator[ApiTestStation]:
    """Connect a test station to `ocpp_url` (without the station id) and run it until exit."""
    headers = {}
    if password is not None:
        headers["Authorization"] = basic_auth_header(station_id, password)
    url = f"{ocpp_url.rstrip('/')}/{station_id}"
    async with connect(url, subprotocols=["ocpp2.0.1"], additional_headers=headers) as websocket:  # type: ignore[list-item]
        station = ApiTestStation(station_id, websocket)
        runner = asyncio.create_task(station.start())
        try:
            if boot:
                await station.boot()
            yield station
        finally:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await runner
