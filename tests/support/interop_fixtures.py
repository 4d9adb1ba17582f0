"""Our systems under test, wired to the third-party peers of tests/interop/ (Node `ocpp-rpc`,
strict mode): our CSMS (services + OCPP server + REST API on a temp SQLite file) for the Node
station, and our charge-point agent (fake EVSE) for the Node CSMS. Plus minimal schema-valid
payloads for every station-initiated OCPP 2.0.1 action.

    async with csms_for_interop(tmp_path) as api:       # ApiHarness, station "CS1" registered
        async with interop_station() as station:
            await station.connect(api.ocpp_url, "CS1", password=STATION_PASSWORD)

    async with interop_csms(password=AGENT_PASSWORD) as csms:
        async with agent_for_interop(tmp_path, csms.url) as agent:   # RunningAgent
            await csms.wait_for_station(AGENT_ID)
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chargepoint_firmware.agent import Agent
from chargepoint_firmware.wiring import build_agent
from tests.support.agent_fakes import FakeEvse
from tests.support.agent_harness import agent_settings, eventually
from tests.support.api_harness import STATION_PASSWORD, ApiHarness, api_harness
from tests.support.interop import (
    INTEROP_DIR,
    CallOutcome,
    InteropCsms,
    InteropStation,
    NodePeer,
    require_node,
)

JsonDict = dict[str, Any]

INTEROP_STATION_ID = "CS1"
AGENT_ID = "CP-INTEROP-1"
AGENT_PASSWORD = "agent-interop-pass-01"  # 16-40 characters, as profile 1 asks

__all__ = [
    "AGENT_ID",
    "AGENT_PASSWORD",
    "INTEROP_STATION_ID",
    "STATION_PASSWORD",
    "RunningAgent",
    "agent_for_interop",
    "call_unvalidated",
    "connect_with_options",
    "csms_for_interop",
    "harness_action_lists",
    "interop_csms_tls",
    "iso_now",
    "minimal_station_requests",
    "set_slow_handler",
]


def iso_now() -> str:
    """Now as RFC 3339 with milliseconds and Z (ocpp-rpc checks the date-time format)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def minimal_station_requests(now: str) -> dict[str, JsonDict]:
    """A minimal schema-valid request for every station-initiated OCPP 2.0.1 action (the 25 of
    client.js's CS_TO_CSMS), each only with required fields (plus evse ids that exist)."""
    component_variable: JsonDict = {
        "component": {"name": "ChargingStation"},
        "variable": {"name": "Available"},
    }
    return {
        "Authorize": {"idToken": {"idToken": "MINIMAL-1", "type": "ISO14443"}},
        "BootNotification": {
            "reason": "PowerUp",
            "chargingStation": {"model": "ocpp-rpc-harness", "vendorName": "interop"},
        },
        "ClearedChargingLimit": {"chargingLimitSource": "EMS"},
        "DataTransfer": {"vendorId": "org.example.interop"},
        "FirmwareStatusNotification": {"status": "Idle"},
        "Get15118EVCertificate": {
            "iso15118SchemaVersion": "urn:iso:15118:2:2013:MsgDef",
            "action": "Install",
            "exiRequest": "AAEC",
        },
        "GetCertificateStatus": {
            "ocspRequestData": {
                "hashAlgorithm": "SHA256",
                "issuerNameHash": "a" * 64,
                "issuerKeyHash": "b" * 64,
                "serialNumber": "01",
                "responderURL": "http://ocsp.example",
            }
        },
        "Heartbeat": {},
        "LogStatusNotification": {"status": "Idle"},
        "MeterValues": {
            "evseId": 1,
            "meterValue": [{"timestamp": now, "sampledValue": [{"value": 1.0}]}],
        },
        "NotifyChargingLimit": {"chargingLimit": {"chargingLimitSource": "EMS"}},
        "NotifyCustomerInformation": {
            "data": "none",
            "seqNo": 0,
            "generatedAt": now,
            "requestId": 1,
        },
        "NotifyDisplayMessages": {"requestId": 1},
        "NotifyEVChargingNeeds": {"chargingNeeds": {"requestedEnergyTransfer": "DC"}, "evseId": 1},
        "NotifyEVChargingSchedule": {
            "timeBase": now,
            "evseId": 1,
            "chargingSchedule": {
                "id": 1,
                "chargingRateUnit": "W",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 3000.0}],
            },
        },
        "NotifyEvent": {
            "generatedAt": now,
            "seqNo": 0,
            "eventData": [
                {
                    "eventId": 1,
                    "timestamp": now,
                    "trigger": "Delta",
                    "actualValue": "false",
                    "eventNotificationType": "HardWiredNotification",
                    **component_variable,
                }
            ],
        },
        "NotifyMonitoringReport": {"requestId": 1, "seqNo": 0, "generatedAt": now},
        "NotifyReport": {"requestId": 1, "seqNo": 0, "generatedAt": now},
        "PublishFirmwareStatusNotification": {"status": "Idle"},
        "ReportChargingProfiles": {
            "requestId": 1,
            "chargingLimitSource": "CSO",
            "evseId": 1,
            "tbc": False,
            "chargingProfile": [
                {
                    "id": 11,
                    "stackLevel": 0,
                    "chargingProfilePurpose": "TxDefaultProfile",
                    "chargingProfileKind": "Relative",
                    "chargingSchedule": [
                        {
                            "id": 1,
                            "chargingRateUnit": "A",
                            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0}],
                        }
                    ],
                }
            ],
        },
        "ReservationStatusUpdate": {"reservationId": 1, "reservationUpdateStatus": "Expired"},
        "SecurityEventNotification": {"type": "StartupOfTheDevice", "timestamp": now},
        "SignCertificate": {
            "csr": "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----"
        },
        "StatusNotification": {
            "timestamp": now,
            "connectorStatus": "Available",
            "evseId": 1,
            "connectorId": 1,
        },
        "TransactionEvent": {
            "eventType": "Started",
            "timestamp": now,
            "triggerReason": "CablePluggedIn",
            "seqNo": 0,
            "transactionInfo": {"transactionId": "tx-minimal-1"},
            "evse": {"id": 1, "connectorId": 1},
        },
    }


def harness_action_lists() -> tuple[list[str], list[str]]:
    """(station-initiated, CSMS-initiated) OCPP 2.0.1 actions as the Node harness lists them
    (common.js CS_TO_CSMS, CSMS_TO_CS), read from the harness: tests cover what it can send."""
    node = require_node()
    script = (
        "const c = require('./common');"
        "process.stdout.write(JSON.stringify([c.CS_TO_CSMS, c.CSMS_TO_CS]));"
    )
    done = subprocess.run(
        [node, "-e", script], cwd=INTEROP_DIR, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    station_side, csms_side = json.loads(done.stdout)
    return list(station_side), list(csms_side)


async def connect_with_options(
    station: InteropStation,
    url: str,
    identity: str,
    password: str | None,
    **options: Any,
) -> JsonDict:
    """Connect client.js with options `InteropStation.connect` does not take (e.g.
    `remote_transactions=True`: it starts/ends a transaction on RequestStart/StopTransaction)."""
    command: JsonDict = {
        "command": "connect",
        "url": url,
        "identity": identity,
        "password": password,
        "reconnect": False,
        "follow_ups": True,
        **options,
    }
    event = await station.request(command, ("connected", "connect_failed"))
    assert event["event"] == "connected", f"{identity} could not connect to {url}: {event}"
    return event


async def set_slow_handler(peer: NodePeer, action: str, response: JsonDict, delay_s: float) -> None:
    """Make a harness answer `action` with `response` only after `delay_s` (a slow peer)."""
    command: JsonDict = {
        "command": "set-handler",
        "action": action,
        "response": response,
        "delay_ms": int(delay_s * 1000),
    }
    await peer.request(command, ("handler_set",))


async def call_unvalidated(
    peer: NodePeer,
    action: str,
    payload: Any,
    *,
    identity: str | None = None,
    timeout_s: float = 10.0,
) -> CallOutcome:
    """Have a harness send ONE CALL that skips its own strict validation (a malformed CALL on
    purpose); the answer is still validated. `identity`: the station, when `peer` is server.js.
    On a CALLERROR, `error_description` is the errorDescription exactly as the peer sent it."""
    command: JsonDict = {
        "command": "call",
        "action": action,
        "payload": payload,
        "timeout_ms": int(timeout_s * 1000),
        "unvalidated": True,
    }
    if identity is not None:
        command["identity"] = identity
    event = await peer.request(command, ("call_result", "call_error"), timeout_s + 2.0)
    outcome = CallOutcome.from_event(event)
    if outcome.ok:
        return outcome
    # The errorDescription as sent (ocpp-rpc's `description` is its own text for the code).
    return dataclasses.replace(outcome, error_description=str(event.get("message", "")))


@contextlib.asynccontextmanager
async def csms_for_interop(tmp_path: Path, **settings: Any) -> AsyncIterator[ApiHarness]:
    """Our CSMS (services, OCPP server on a free loopback port, REST API over ASGI) with
    station INTEROP_STATION_ID registered for security profile 1 (password STATION_PASSWORD)."""
    settings.setdefault("command_timeout_s", 5.0)
    async with api_harness(tmp_path, with_ocpp=True, **settings) as api:
        await api.add_station(INTEROP_STATION_ID)
        yield api


@contextlib.asynccontextmanager
async def interop_csms_tls(
    cert_file: Path,
    key_file: Path,
    *,
    client_ca_file: Path | None = None,
    password: str | None = None,
) -> AsyncIterator[tuple[InteropCsms, str]]:
    """server.js on wss (security profile 2; profile 3 with `client_ca_file`): the peer and its
    base URL (wss://127.0.0.1:PORT/ocpp)."""
    csms = InteropCsms(password=password)
    csms.args += ["--tls-cert", str(cert_file), "--tls-key", str(key_file)]
    if client_ca_file is not None:
        csms.args += ["--tls-client-ca", str(client_ca_file)]
    await csms.start()
    try:
        yield csms, f"wss://127.0.0.1:{csms.port}/ocpp"
    finally:
        await csms.stop()


@dataclass
class RunningAgent:
    agent: Agent
    evse: FakeEvse
    task: asyncio.Task[None]


@contextlib.asynccontextmanager
async def agent_for_interop(
    state_dir: Path, csms_url: str, *, online_within_s: float = 10.0, **overrides: Any
) -> AsyncIterator[RunningAgent]:
    """Our charge-point agent (one fake EVSE) connected to `csms_url` with Basic auth
    (security profile 1, AGENT_ID / AGENT_PASSWORD); waits until it is online (an
    AssertionError "agent never came online" after `online_within_s`)."""
    values: dict[str, Any] = {
        "station_id": AGENT_ID,
        "security": {"profile": 1, "basic_auth_password": AGENT_PASSWORD},
    }
    values.update(overrides)
    settings = agent_settings(state_dir, csms_url, **values)
    evse = FakeEvse(1)
    agent = build_agent(settings, {1: evse})
    task = asyncio.create_task(agent.run())
    try:
        await eventually(
            lambda: agent.online, within_s=online_within_s, message="agent never came online"
        )
        yield RunningAgent(agent, evse, task)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        agent.close()
