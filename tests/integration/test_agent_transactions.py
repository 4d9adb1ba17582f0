"""Transactions against a real websocket CSMS: lifecycle, meter values, stops, faults."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from ocpp.v201 import call

from tests.support.agent_harness import Harness, eventually, start_harness

MS_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def tx_events(h: Harness, tx_id: str | None = None) -> list[dict[str, Any]]:
    events = h.csms.actions("TransactionEvent")
    if tx_id is None:
        return events
    return [e for e in events if e["transactionInfo"]["transactionId"] == tx_id]


def measurands(event: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for mv in event.get("meterValue", []):
        for sv in mv["sampledValue"]:
            out[sv["measurand"]] = sv["value"]
    return out


async def set_variable(h: Harness, component: str, variable: str, value: str) -> None:
    result = await h.call(
        call.SetVariables(
            set_variable_data=[
                {
                    "component": {"name": component},
                    "variable": {"name": variable},
                    "attribute_value": value,
                }
            ]
        )
    )
    assert result.set_variable_result[0]["attribute_status"] == "Accepted"


async def start_remote(h: Harness, token: str = "TOKEN-1", remote_id: int = 7) -> str:
    h.evse.plug_in()
    await h.csms.wait_for("StatusNotification", lambda p: p["connectorStatus"] == "Occupied")
    result = await h.call(
        call.RequestStartTransaction(
            id_token={"id_token": token, "type": "ISO14443"}, remote_start_id=remote_id, evse_id=1
        )
    )
    assert result.status == "Accepted"
    started = await h.csms.wait_for("TransactionEvent", lambda e: e["eventType"] == "Started")
    return str(started[0]["transactionInfo"]["transactionId"])


async def test_e01_remote_start_meter_values_remote_stop(tmp_path: Path) -> None:
    h = await start_harness(tmp_path)
    try:
        await set_variable(h, "SampledDataCtrlr", "TxUpdatedInterval", "1")
        tx_id = await start_remote(h)
        started = tx_events(h, tx_id)[0]
        assert started["triggerReason"] == "RemoteStart"
        assert started["transactionInfo"]["remoteStartId"] == 7
        assert started["idToken"] == {"idToken": "TOKEN-1", "type": "ISO14443"}
        assert started["seqNo"] == 0
        assert started["evse"] == {"id": 1, "connectorId": 1}
        assert "offline" not in started
        assert MS_UTC.match(started["timestamp"])
        assert started["meterValue"][0]["sampledValue"][0]["context"] == "Transaction.Begin"
        assert h.evse.allowed is True
        # Energy flows: the charging state follows the hardware.
        await h.csms.wait_for(
            "TransactionEvent",
            lambda e: (
                e["triggerReason"] == "ChargingStateChanged"
                and e["transactionInfo"].get("chargingState") == "Charging"
            ),
        )
        h.evse.add_energy(import_wh=1234.5)
        periodic = await h.csms.wait_for(
            "TransactionEvent",
            lambda e: (
                e["triggerReason"] == "MeterValuePeriodic"
                and measurands(e).get("Energy.Active.Import.Register") == 1234.5
            ),
        )
        values = measurands(periodic[0])
        assert values["Power.Active.Import"] == 7000.0
        assert values["Power.Active.Export"] == 0.0
        assert values["Voltage"] == 380.0
        assert values["SoC"] == 50.0
        assert MS_UTC.match(periodic[0]["meterValue"][0]["timestamp"])

        stop = await h.call(call.RequestStopTransaction(transaction_id=tx_id))
        assert stop.status == "Accepted"
        ended = await h.csms.wait_for("TransactionEvent", lambda e: e["eventType"] == "Ended")
        assert ended[0]["triggerReason"] == "RemoteStop"
        assert ended[0]["transactionInfo"]["stoppedReason"] == "Remote"
        assert h.evse.allowed is False
        seqs = [e["seqNo"] for e in tx_events(h, tx_id)]
        assert seqs == list(range(len(seqs)))
        # A second stop for the same transaction is rejected.
        again = await h.call(call.RequestStopTransaction(transaction_id=tx_id))
        assert again.status == "Rejected"
    finally:
        await h.close()


async def test_e_unplug_ends_transaction_ev_disconnected(tmp_path: Path) -> None:
    h = await start_harness(tmp_path)
    try:
        tx_id = await start_remote(h)
        h.evse.unplug()
        ended = await h.csms.wait_for("TransactionEvent", lambda e: e["eventType"] == "Ended")
        assert ended[0]["transactionInfo"]["transactionId"] == tx_id
        assert ended[0]["transactionInfo"]["stoppedReason"] == "EVDisconnected"
        assert ended[0]["triggerReason"] == "EVCommunicationLost"
        await h.csms.wait_for(
            "StatusNotification", lambda p: p["connectorStatus"] == "Available", count=2
        )
    finally:
        await h.close()


async def test_e_tx_start_point_ev_connected_remote_start_returns_transaction_id(
    tmp_path: Path,
) -> None:
    h = await start_harness(tmp_path)
    try:
        await set_variable(h, "TxCtrlr", "TxStartPoint", "EVConnected")
        h.evse.plug_in()
        started = await h.csms.wait_for("TransactionEvent", lambda e: e["eventType"] == "Started")
        assert started[0]["triggerReason"] == "CablePluggedIn"
        assert h.evse.allowed is False  # connected but not authorized
        tx_id = started[0]["transactionInfo"]["transactionId"]
        result = await h.call(
            call.RequestStartTransaction(
                id_token={"id_token": "T2", "type": "Central"}, remote_start_id=9, evse_id=1
            )
        )
        assert result.status == "Accepted"
        assert result.transaction_id == tx_id  # F01.FR.?: the running transaction's id
        updated = await h.csms.wait_for(
            "TransactionEvent", lambda e: e["triggerReason"] == "RemoteStart"
        )
        assert updated[0]["eventType"] == "Updated"
        assert updated[0]["idToken"]["idToken"] == "T2"
        await eventually(lambda: h.evse.allowed)
    finally:
        await h.close()


async def test_fault_ends_transaction_notifies_event_and_security_event(tmp_path: Path) -> None:
    h = await start_harness(tmp_path)
    try:
        await start_remote(h)
        h.evse.trip("emergency_stop")
        ended = await h.csms.wait_for("TransactionEvent", lambda e: e["eventType"] == "Ended")
        assert ended[0]["transactionInfo"]["stoppedReason"] == "EmergencyStop"
        assert ended[0]["triggerReason"] == "AbnormalCondition"
        await h.csms.wait_for("StatusNotification", lambda p: p["connectorStatus"] == "Faulted")
        events = await h.csms.wait_for("NotifyEvent")
        data = events[0]["eventData"][0]
        assert data["component"] == {"name": "EVSE", "evse": {"id": 1}}
        assert data["variable"] == {"name": "Problem"}
        assert data["actualValue"] == "true"
        assert data["techInfo"] == "emergency_stop"
        security = await h.csms.wait_for("SecurityEventNotification")
        assert security[0]["type"] == "SafetyTrip"
        assert "emergency_stop" in security[0]["techInfo"]
        # A new remote start is refused while faulted.
        result = await h.call(
            call.RequestStartTransaction(
                id_token={"id_token": "T3", "type": "Central"}, remote_start_id=10, evse_id=1
            )
        )
        assert result.status == "Rejected"
    finally:
        await h.close()


async def test_e03_ev_connection_timeout_ends_authorization(tmp_path: Path) -> None:
    h = await start_harness(tmp_path, manual_clock=True)
    try:
        await set_variable(h, "TxCtrlr", "TxStartPoint", "Authorized")
        result = await h.call(
            call.RequestStartTransaction(
                id_token={"id_token": "LATE", "type": "Central"}, remote_start_id=12, evse_id=1
            )
        )
        assert result.status == "Accepted"
        started = await h.csms.wait_for("TransactionEvent", lambda e: e["eventType"] == "Started")
        assert started[0]["triggerReason"] == "RemoteStart"
        from tests.support.agent_fakes import ManualClock

        assert isinstance(h.clock, ManualClock)
        h.clock.advance(119.0)
        await asyncio.sleep(0.2)  # give a (wrongly) early timer the chance to fire
        assert not [e for e in tx_events(h) if e["eventType"] == "Ended"]
        h.clock.advance(1.0)
        ended = await h.csms.wait_for("TransactionEvent", lambda e: e["eventType"] == "Ended")
        assert ended[0]["triggerReason"] == "EVConnectTimeout"
        assert ended[0]["transactionInfo"]["stoppedReason"] == "Timeout"
        assert h.evse.allowed is False
    finally:
        await h.close()


async def test_f01_authorize_remote_start_asks_the_csms_first(tmp_path: Path) -> None:
    h = await start_harness(tmp_path)
    try:
        await set_variable(h, "AuthCtrlr", "AuthorizeRemoteStart", "true")
        h.evse.plug_in()
        blocked = await h.call(
            call.RequestStartTransaction(
                id_token={"id_token": "BLOCKED-1", "type": "ISO14443"}, remote_start_id=1, evse_id=1
            )
        )
        assert blocked.status == "Accepted"  # the answer comes before the authorization
        await h.csms.wait_for("Authorize")
        await asyncio.sleep(0.2)
        assert not tx_events(h)
        assert h.evse.allowed is False
        # The answer was cached: the same token is now refused at once.
        again = await h.call(
            call.RequestStartTransaction(
                id_token={"id_token": "BLOCKED-1", "type": "ISO14443"}, remote_start_id=2, evse_id=1
            )
        )
        assert again.status == "Rejected"
        good = await h.call(
            call.RequestStartTransaction(
                id_token={"id_token": "GOOD-1", "type": "ISO14443"}, remote_start_id=3, evse_id=1
            )
        )
        assert good.status == "Accepted"
        started = await h.csms.wait_for("TransactionEvent", lambda e: e["eventType"] == "Started")
        assert started[0]["idToken"]["idToken"] == "GOOD-1"
        assert [a["idToken"]["idToken"] for a in h.csms.actions("Authorize")] == [
            "BLOCKED-1",
            "GOOD-1",
        ]
    finally:
        await h.close()


async def test_f01_fr_02_remote_start_without_authorize_remote_start_ignores_the_cache(
    tmp_path: Path,
) -> None:
    h = await start_harness(tmp_path)
    try:
        await set_variable(h, "AuthCtrlr", "AuthorizeRemoteStart", "true")
        h.evse.plug_in()
        first = await h.call(
            call.RequestStartTransaction(
                id_token={"id_token": "BLOCKED-1", "type": "ISO14443"}, remote_start_id=1, evse_id=1
            )
        )
        assert first.status == "Accepted"
        await h.csms.wait_for("Authorize")  # the CSMS said Blocked: now in the cache
        await asyncio.sleep(0.2)
        assert not tx_events(h)
        # AuthorizeRemoteStart=false: the CSMS vouches for the token; the cache has no say.
        await set_variable(h, "AuthCtrlr", "AuthorizeRemoteStart", "false")
        again = await h.call(
            call.RequestStartTransaction(
                id_token={"id_token": "BLOCKED-1", "type": "ISO14443"}, remote_start_id=2, evse_id=1
            )
        )
        assert again.status == "Accepted"
        started = await h.csms.wait_for("TransactionEvent", lambda e: e["eventType"] == "Started")
        assert started[0]["transactionInfo"]["remoteStartId"] == 2
        assert len(h.csms.actions("Authorize")) == 1  # no second Authorize
    finally:
        await h.close()


async def test_f01_fr_02_central_token_is_not_authorized_first(tmp_path: Path) -> None:
    h = await start_harness(tmp_path)
    try:
        await set_variable(h, "AuthCtrlr", "AuthorizeRemoteStart", "true")
        h.evse.plug_in()
        answer = await h.call(
            call.RequestStartTransaction(
                id_token={"id_token": "APP-USER-1", "type": "Central"}, remote_start_id=7, evse_id=1
            )
        )
        assert answer.status == "Accepted"
        started = await h.csms.wait_for("TransactionEvent", lambda e: e["eventType"] == "Started")
        assert started[0]["idToken"] == {"idToken": "APP-USER-1", "type": "Central"}
        assert h.csms.actions("Authorize") == []
    finally:
        await h.close()


async def test_j01_clock_aligned_meter_values_on_the_boundary(tmp_path: Path) -> None:
    from tests.support.agent_fakes import ManualClock

    h = await start_harness(tmp_path, manual_clock=True)
    try:
        assert isinstance(h.clock, ManualClock)
        await set_variable(h, "AlignedDataCtrlr", "Interval", "900")
        h.clock.advance(900.0)  # 12:15:00, but SendDuringIdle is false: nothing while idle
        await asyncio.sleep(0.1)
        assert h.csms.actions("MeterValues") == []
        await set_variable(h, "AlignedDataCtrlr", "SendDuringIdle", "true")
        h.evse.add_energy(import_wh=77.0)
        h.clock.advance(899.0)  # 12:29:59
        await asyncio.sleep(0.1)
        assert h.csms.actions("MeterValues") == []
        h.clock.advance(1.0)  # 12:30:00, a quarter-hour boundary
        values = await h.csms.wait_for("MeterValues")
        mv = values[0]["meterValue"][0]
        assert mv["timestamp"] == "2026-01-01T12:30:00.000Z"
        assert {sv["context"] for sv in mv["sampledValue"]} == {"Sample.Clock"}
        assert measurands(values[0])["Energy.Active.Import.Register"] == 77.0
        # During a transaction the aligned sample is a TransactionEvent (MeterValueClock).
        await start_remote(h)
        h.clock.advance(900.0)
        clocked = await h.csms.wait_for(
            "TransactionEvent", lambda e: e["triggerReason"] == "MeterValueClock"
        )
        assert clocked[0]["meterValue"][0]["timestamp"] == "2026-01-01T12:45:00.000Z"
    finally:
        await h.close()


async def test_sampled_measurands_follow_the_device_model(tmp_path: Path) -> None:
    h = await start_harness(tmp_path)
    try:
        await set_variable(h, "SampledDataCtrlr", "TxUpdatedMeasurands", "SoC,Voltage")
        await set_variable(h, "SampledDataCtrlr", "TxUpdatedInterval", "1")
        await start_remote(h)
        periodic = await h.csms.wait_for(
            "TransactionEvent", lambda e: e["triggerReason"] == "MeterValuePeriodic"
        )
        assert set(measurands(periodic[0])) == {"SoC", "Voltage"}
    finally:
        await h.close()
