"""Every CSMS-initiated action the station implements, over a real websocket."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ocpp.exceptions import NotImplementedError as OcppNotImplemented
from ocpp.exceptions import NotSupportedError
from ocpp.v201 import call

from chargepoint_firmware.blocks.diagnostics import handlers as diagnostics
from tests.integration.test_agent_transactions import start_remote
from tests.support.agent_harness import STATION_ID, Harness, eventually, start_harness


@pytest.fixture
async def h(tmp_path: Path) -> Any:
    harness = await start_harness(tmp_path, evse_count=2)
    await harness.csms.wait_for("StatusNotification", count=2)
    yield harness
    await harness.close()


def var(component: str, variable: str, **extra: Any) -> dict[str, Any]:
    return {"component": {"name": component}, "variable": {"name": variable}, **extra}


@dataclass
class FooBar:
    """An action no OCPP version defines."""


async def test_unknown_action_is_not_implemented(h: Harness) -> None:
    with pytest.raises(OcppNotImplemented):
        await h.csms.stations[STATION_ID].call(
            FooBar(), suppress=False, skip_schema_validation=True
        )


async def test_known_but_unsupported_action_is_not_supported(h: Harness) -> None:
    with pytest.raises(NotSupportedError):
        await h.call(call.ClearDisplayMessage(id=1))


async def test_b06_b05_get_and_set_variables(h: Harness) -> None:
    got = await h.call(
        call.GetVariables(
            get_variable_data=[
                var("OCPPCommCtrlr", "HeartbeatInterval"),
                var("NoSuchCtrlr", "X"),
                var("OCPPCommCtrlr", "NoSuchVariable"),
                var("OCPPCommCtrlr", "HeartbeatInterval", attribute_type="MaxSet"),
            ]
        )
    )
    statuses = [r["attribute_status"] for r in got.get_variable_result]
    assert statuses == [
        "Accepted",
        "UnknownComponent",
        "UnknownVariable",
        "NotSupportedAttributeType",
    ]
    assert got.get_variable_result[0]["attribute_value"] == "300"

    done = await h.call(
        call.SetVariables(
            set_variable_data=[
                var("OCPPCommCtrlr", "HeartbeatInterval", attribute_value="1"),
                var("SmartChargingCtrlr", "RateUnit", attribute_value="W"),
                var("SampledDataCtrlr", "TxUpdatedMeasurands", attribute_value="Bogus.Measurand"),
            ]
        )
    )
    assert [r["attribute_status"] for r in done.set_variable_result] == [
        "Accepted",
        "Rejected",
        "Rejected",
    ]
    # Acted upon: the heartbeat follows the new interval at once.
    await h.csms.wait_for("Heartbeat", within_s=3)


async def test_b07_b08_base_report_and_report_in_parts(h: Harness) -> None:
    per_message = h.agent.config.integer("DeviceDataCtrlr", "ItemsPerMessageGetReport")
    result = await h.call(call.GetBaseReport(request_id=11, report_base="FullInventory"))
    assert result.status == "Accepted"
    parts = await h.csms.wait_for("NotifyReport", lambda p: p["requestId"] == 11, count=2)
    await eventually(lambda: any(not p.get("tbc") for p in h.csms.actions("NotifyReport")))
    parts = [p for p in h.csms.actions("NotifyReport") if p["requestId"] == 11]
    assert [p["seqNo"] for p in parts] == list(range(len(parts)))
    assert all(p["tbc"] for p in parts[:-1]) and not parts[-1]["tbc"]
    assert all(len(p["reportData"]) <= per_message for p in parts)
    names = {
        (d["component"]["name"], d["variable"]["name"]) for p in parts for d in p["reportData"]
    }
    assert ("V2XCtrlr", "NegativeLimitIsDischarge") in names

    report = await h.call(
        call.GetReport(
            request_id=12, component_variable=[var("OCPPCommCtrlr", "HeartbeatInterval")]
        )
    )
    assert report.status == "Accepted"
    one = await h.csms.wait_for("NotifyReport", lambda p: p["requestId"] == 12)
    assert [d["variable"]["name"] for d in one[0]["reportData"]] == ["HeartbeatInterval"]
    empty = await h.call(call.GetReport(request_id=13, component_variable=[var("Nope", "Nope")]))
    assert empty.status == "EmptyResultSet"


async def test_b11_reset_immediate_ends_transactions_and_boots_again(h: Harness) -> None:
    tx_id = await start_remote(h)
    result = await h.call(call.Reset(type="Immediate"))
    assert result.status == "Accepted"
    ended = await h.csms.wait_for("TransactionEvent", lambda e: e["eventType"] == "Ended")
    assert ended[0]["transactionInfo"]["transactionId"] == tx_id
    assert ended[0]["transactionInfo"]["stoppedReason"] == "ImmediateReset"
    assert ended[0]["triggerReason"] == "ResetCommand"
    boots = await h.csms.wait_for("BootNotification", count=2)
    assert boots[1]["reason"] == "RemoteReset"


async def test_b12_reset_on_idle_is_scheduled_until_transaction_ends(h: Harness) -> None:
    tx_id = await start_remote(h)
    result = await h.call(call.Reset(type="OnIdle"))
    assert result.status == "Scheduled"
    assert len(h.csms.actions("BootNotification")) == 1
    await h.call(call.RequestStopTransaction(transaction_id=tx_id))
    boots = await h.csms.wait_for("BootNotification", count=2)
    assert boots[1]["reason"] == "RemoteReset"


async def test_reset_unknown_evse_rejected(h: Harness) -> None:
    result = await h.call(call.Reset(type="Immediate", evse_id=9))
    assert result.status == "Rejected"


async def test_g03_change_availability_inoperative_then_operative(h: Harness) -> None:
    result = await h.call(call.ChangeAvailability(operational_status="Inoperative", evse={"id": 2}))
    assert result.status == "Accepted"
    await h.csms.wait_for(
        "StatusNotification", lambda p: p["evseId"] == 2 and p["connectorStatus"] == "Unavailable"
    )
    start = await h.call(
        call.RequestStartTransaction(
            id_token={"id_token": "A", "type": "Central"}, remote_start_id=1, evse_id=2
        )
    )
    assert start.status == "Rejected"
    back = await h.call(call.ChangeAvailability(operational_status="Operative", evse={"id": 2}))
    assert back.status == "Accepted"
    await h.csms.wait_for(
        "StatusNotification",
        lambda p: p["evseId"] == 2 and p["connectorStatus"] == "Available",
        count=2,
    )


async def test_g03_change_availability_during_transaction_is_scheduled(h: Harness) -> None:
    tx_id = await start_remote(h)
    result = await h.call(call.ChangeAvailability(operational_status="Inoperative", evse={"id": 1}))
    assert result.status == "Scheduled"
    await h.call(call.RequestStopTransaction(transaction_id=tx_id))
    h.evse.unplug()
    await h.csms.wait_for(
        "StatusNotification", lambda p: p["evseId"] == 1 and p["connectorStatus"] == "Unavailable"
    )


async def test_f05_unlock_connector(h: Harness) -> None:
    unknown = await h.call(call.UnlockConnector(evse_id=7, connector_id=1))
    assert unknown.status == "UnknownConnector"
    free = await h.call(call.UnlockConnector(evse_id=2, connector_id=1))
    assert free.status == "Unlocked"
    await start_remote(h)
    busy = await h.call(call.UnlockConnector(evse_id=1, connector_id=1))
    assert busy.status == "OngoingAuthorizedTransaction"


async def test_f06_trigger_message(h: Harness) -> None:
    hb = await h.call(call.TriggerMessage(requested_message="Heartbeat"))
    assert hb.status == "Accepted"
    await h.csms.wait_for("Heartbeat")
    st = await h.call(
        call.TriggerMessage(
            requested_message="StatusNotification", evse={"id": 2, "connector_id": 1}
        )
    )
    assert st.status == "Accepted"
    await h.csms.wait_for("StatusNotification", lambda p: p["evseId"] == 2, count=2)
    mv = await h.call(call.TriggerMessage(requested_message="MeterValues", evse={"id": 1}))
    assert mv.status == "Accepted"
    values = await h.csms.wait_for("MeterValues")
    assert values[0]["evseId"] == 1
    assert values[0]["meterValue"][0]["sampledValue"][0]["context"] == "Trigger"
    no_tx = await h.call(call.TriggerMessage(requested_message="TransactionEvent", evse={"id": 1}))
    assert no_tx.status == "Rejected"
    await start_remote(h)
    tx = await h.call(call.TriggerMessage(requested_message="TransactionEvent", evse={"id": 1}))
    assert tx.status == "Accepted"
    await h.csms.wait_for("TransactionEvent", lambda e: e["triggerReason"] == "Trigger")
    cert = await h.call(call.TriggerMessage(requested_message="SignChargingStationCertificate"))
    assert cert.status == "NotImplemented"
    fw = await h.call(call.TriggerMessage(requested_message="FirmwareStatusNotification"))
    assert fw.status == "Accepted"
    status = await h.csms.wait_for("FirmwareStatusNotification")
    assert status[0]["status"] == "Idle"


async def test_d01_d02_local_list_and_c_clear_cache(h: Harness) -> None:
    version = await h.call(call.GetLocalListVersion())
    assert version.version_number == 0
    full = await h.call(
        call.SendLocalList(
            version_number=3,
            update_type="Full",
            local_authorization_list=[
                {
                    "id_token": {"id_token": "GOOD", "type": "ISO14443"},
                    "id_token_info": {"status": "Accepted"},
                },
                {
                    "id_token": {"id_token": "BAD", "type": "ISO14443"},
                    "id_token_info": {"status": "Blocked"},
                },
            ],
        )
    )
    assert full.status == "Accepted"
    assert (await h.call(call.GetLocalListVersion())).version_number == 3
    stale = await h.call(call.SendLocalList(version_number=2, update_type="Differential"))
    assert stale.status == "VersionMismatch"
    # The local list is used when the station authorizes remote starts (AuthorizeRemoteStart;
    # without it the CSMS vouches for the token, F01.FR.02): a blocked token cannot start.
    authorize = await h.call(
        call.SetVariables(
            set_variable_data=[var("AuthCtrlr", "AuthorizeRemoteStart", attribute_value="true")]
        )
    )
    assert authorize.set_variable_result[0]["attribute_status"] == "Accepted"
    blocked = await h.call(
        call.RequestStartTransaction(
            id_token={"id_token": "BAD", "type": "ISO14443"}, remote_start_id=1, evse_id=1
        )
    )
    assert blocked.status == "Rejected"
    diff = await h.call(
        call.SendLocalList(
            version_number=4,
            update_type="Differential",
            local_authorization_list=[{"id_token": {"id_token": "BAD", "type": "ISO14443"}}],
        )
    )
    assert diff.status == "Accepted"
    assert h.agent.storage.local_list_entry("BAD", "ISO14443") is None
    assert h.agent.storage.local_list_entry("GOOD", "ISO14443") == {"status": "Accepted"}
    entries = await h.call(
        call.GetVariables(get_variable_data=[var("LocalAuthListCtrlr", "Entries")])
    )
    assert entries.get_variable_result[0]["attribute_value"] == "1"
    cleared = await h.call(call.ClearCache())
    assert cleared.status == "Accepted"


async def test_p01_data_transfer_unknown_vendor(h: Harness) -> None:
    result = await h.call(call.DataTransfer(vendor_id="com.example", message_id="x", data="y"))
    assert result.status == "UnknownVendorId"


async def test_n01_get_log_upload_sequence(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(diagnostics, "SIMULATED_STEP_S", 0.01)
    result = await h.call(
        call.GetLog(
            log={"remote_location": "https://logs.example/upload"},
            log_type="DiagnosticsLog",
            request_id=21,
        )
    )
    assert result.status == "Accepted"
    assert result.filename
    statuses = await h.csms.wait_for("LogStatusNotification", count=2)
    assert [s["status"] for s in statuses] == ["Uploading", "Uploaded"]
    assert all(s["requestId"] == 21 for s in statuses)
    bad = await h.call(
        call.GetLog(log={"remote_location": "nowhere"}, log_type="SecurityLog", request_id=22)
    )
    assert bad.status == "Accepted"
    failed = await h.csms.wait_for("LogStatusNotification", lambda s: s["requestId"] == 22, count=2)
    assert failed[-1]["status"] == "UploadFailure"


async def test_l01_update_firmware_status_sequence(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(diagnostics, "SIMULATED_STEP_S", 0.01)
    result = await h.call(
        call.UpdateFirmware(
            request_id=31,
            firmware={
                "location": "https://fw.example/v2.bin",
                "retrieve_date_time": "2026-01-01T00:00:00.000Z",
            },
        )
    )
    assert result.status == "Accepted"
    steps = await h.csms.wait_for("FirmwareStatusNotification", count=4)
    assert [s["status"] for s in steps] == ["Downloading", "Downloaded", "Installing", "Installed"]


async def test_e14_get_transaction_status(h: Harness) -> None:
    tx_id = await start_remote(h)
    await eventually(lambda: len(h.agent.outbox) == 0)
    status = await h.call(call.GetTransactionStatus(transaction_id=tx_id))
    assert status.ongoing_indicator is True
    assert status.messages_in_queue is False
    unknown = await h.call(call.GetTransactionStatus(transaction_id="nope"))
    assert unknown.ongoing_indicator is False
