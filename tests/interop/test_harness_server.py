"""The Node CSMS (server.js, ocpp-rpc strict mode) against stations written in Python."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from ocpp import exceptions
from ocpp.routing import on
from ocpp.v201 import call, call_result
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from tests.support.interop import interop_csms
from tests.support.interop_peers import PythonStation, basic_auth_header, python_station

pytestmark = pytest.mark.node

PASSWORD = "interop-secret-0123456789"  # 16-40 characters, as SecurityCtrlr.BasicAuthPassword
BOOT = call.BootNotification(
    charging_station={"model": "py-station", "vendor_name": "python-ocpp"}, reason="PowerUp"
)


async def test_b01_python_station_boots_and_answers_get_variables() -> None:
    async with (
        interop_csms(password=PASSWORD, heartbeat_interval=17) as csms,
        python_station(csms.url, "PY-CS-1", PASSWORD) as station,
    ):
        connected = await csms.wait_for_station("PY-CS-1")
        assert connected["protocol"] == "ocpp2.0.1"
        assert connected["had_password"] is True

        boot = await station.call(BOOT, suppress=False)
        assert (boot.status, boot.interval) == ("Accepted", 17)
        received = await csms.wait_for_call("BootNotification", identity="PY-CS-1")
        assert received["payload"]["chargingStation"]["vendorName"] == "python-ocpp"

        outcome = await csms.call(
            "PY-CS-1",
            "GetVariables",
            {
                "getVariableData": [
                    {
                        "component": {"name": "OCPPCommCtrlr"},
                        "variable": {"name": "HeartbeatInterval"},
                    }
                ]
            },
        )
        result = outcome.result["getVariableResult"][0]
        assert (result["attributeStatus"], result["attributeValue"]) == ("Accepted", "120")
        assert len(station.get_variables_requests) == 1
        await csms.expect_no_strict_violations()


async def test_heartbeat_and_transaction_event_get_valid_answers() -> None:
    async with interop_csms() as csms, python_station(csms.url, "PY-CS-2") as station:
        heartbeat = await station.call(call.Heartbeat(), suppress=False)
        assert heartbeat.current_time
        started = await station.call(
            call.TransactionEvent(
                event_type="Started",
                timestamp="2026-01-01T00:00:00Z",
                trigger_reason="Authorized",
                seq_no=0,
                transaction_info={"transaction_id": "tx-42"},
                id_token={"id_token": "TAG1", "type": "ISO14443"},
                evse={"id": 1, "connector_id": 1},
            ),
            suppress=False,
        )
        assert started.id_token_info == {"status": "Accepted"}
        await csms.expect_no_strict_violations()


@pytest.mark.parametrize(
    "password",
    [None, "wrong-password-0123456789"],
    ids=["no-password", "wrong-password"],
)
async def test_a00_basic_auth_refused_with_401(password: str | None) -> None:
    async with interop_csms(password=PASSWORD) as csms:
        headers = basic_auth_header("PY-CS-3", password) if password else None
        with pytest.raises(InvalidStatus) as refused:
            await ws_connect(
                f"{csms.url}/PY-CS-3",
                subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
                additional_headers=headers,
            )
        assert refused.value.response.status_code == 401
        rejected = await csms.wait_event("auth_rejected", identity="PY-CS-3")
        assert rejected["had_password"] is (password is not None)


async def test_station_offering_only_ocpp16_is_refused() -> None:
    async with interop_csms() as csms:
        with pytest.raises(InvalidStatus) as refused:
            await ws_connect(f"{csms.url}/PY-CS-4", subprotocols=["ocpp1.6"])  # type: ignore[list-item]
        assert refused.value.response.status_code == 400
        rejected = await csms.wait_event("subprotocol_rejected", identity="PY-CS-4")
        assert rejected["offered"] == ["ocpp1.6"]
        assert [e for e in csms.events if e["event"] == "station_connected"] == []


# Payloads a careless station might send, and the CALLERROR code ocpp-rpc answers with.
# These codes are what our agent receives from ocpp-rpc-based CSMSs; note the 1.6 spelling
# "OccurenceConstraintViolation" (one r) that ocpp-rpc also uses on 2.0.1.
INVALID_CALLS = [
    ("missing-required", "BootNotification", {"reason": "PowerUp"}, "OccurenceConstraintViolation"),
    (
        "wrong-type",
        "StatusNotification",
        {
            "timestamp": "2026-01-01T00:00:00Z",
            "connectorStatus": "Available",
            "evseId": "1",
            "connectorId": 1,
        },
        "TypeConstraintViolation",
    ),
    ("additional-property", "Heartbeat", {"extra": 1}, "PropertyConstraintViolation"),
    (
        "too-long",
        "BootNotification",
        {"reason": "PowerUp", "chargingStation": {"model": "m" * 21, "vendorName": "v"}},
        "FormatViolation",
    ),
    (
        "bad-enum",
        "BootNotification",
        {"reason": "Sunrise", "chargingStation": {"model": "m", "vendorName": "v"}},
        "FormatViolation",
    ),
    (
        "bad-date-time",
        "StatusNotification",
        {"timestamp": "yesterday", "connectorStatus": "Available", "evseId": 1, "connectorId": 1},
        "FormatViolation",
    ),
]


@pytest.mark.parametrize(
    ("action", "payload", "expected_code"),
    [case[1:] for case in INVALID_CALLS],
    ids=[case[0] for case in INVALID_CALLS],
)
async def test_invalid_station_call_is_refused_and_counted(
    action: str, payload: dict[str, Any], expected_code: str
) -> None:
    async with interop_csms() as csms:
        async with ws_connect(f"{csms.url}/RAW-CS", subprotocols=["ocpp2.0.1"]) as ws:  # type: ignore[list-item]
            await ws.send(json.dumps([2, "m-1", action, payload]))
            reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert reply[0] == 4 and reply[1] == "m-1"
        assert reply[2] == expected_code
        violation = (await _violations(csms, 1))[0]
        assert (violation.origin, violation.kind, violation.action) == ("peer", "call", action)
        assert violation.code == expected_code
        assert violation.identity == "RAW-CS"


async def test_k01_invalid_station_answer_to_a_csms_call_is_counted() -> None:
    """A station that answers SetChargingProfile with a status outside the enum."""

    class SloppyStation(PythonStation):
        @on("SetChargingProfile", skip_schema_validation=True)
        def on_set_profile(self, **_: Any) -> call_result.SetChargingProfile:
            return call_result.SetChargingProfile(status="Fine")

    async with interop_csms() as csms:
        async with python_station(csms.url, "PY-CS-5", station_class=SloppyStation):
            outcome = await csms.call(
                "PY-CS-5",
                "SetChargingProfile",
                {
                    "evseId": 1,
                    "chargingProfile": {
                        "id": 1,
                        "stackLevel": 0,
                        "chargingProfilePurpose": "TxDefaultProfile",
                        "chargingProfileKind": "Absolute",
                        "chargingSchedule": [
                            {
                                "id": 1,
                                "startSchedule": "2026-01-01T00:00:00Z",
                                "chargingRateUnit": "W",
                                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": -3000}],
                            }
                        ],
                    },
                },
            )
        assert not outcome.ok
        violations = await _violations(csms, 1)
        assert [(v.origin, v.kind, v.action) for v in violations] == [
            ("peer", "result", "SetChargingProfile")
        ]
        assert violations[0].result == {"status": "Fine"}


async def test_invalid_python_boot_raises_the_ocpp_rpc_error_in_the_station() -> None:
    """What our agent sees when it sends a bad BootNotification to an ocpp-rpc CSMS: the
    `ocpp` library maps ocpp-rpc's spelling to OccurenceConstraintViolationError."""
    async with interop_csms() as csms, python_station(csms.url, "PY-CS-6") as station:
        with pytest.raises(exceptions.OccurenceConstraintViolationError):
            await station.call(
                call.BootNotification(charging_station={"model": "m"}, reason="PowerUp"),
                suppress=False,
                skip_schema_validation=True,
            )
        await csms.sync()
        assert len(csms.strict_violations("peer")) == 1


async def test_csms_call_to_an_absent_station_reports_not_connected() -> None:
    async with interop_csms() as csms:
        outcome = await csms.call("NOBODY", "Reset", {"type": "Immediate"})
        assert outcome.error_code == "NotConnected"


async def _violations(csms: Any, count: int) -> list[Any]:
    await csms.wait_event("strict_violation")
    found = csms.strict_violations()
    assert len(found) == count, found
    return found
