"""CommandService: CSMS -> station commands through the router to a real websocket."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from ocpp.exceptions import GenericError
from ocpp.v201 import call

from csms.domain.errors import (
    CallErrorReceived,
    CommandTimeout,
    CommandValidationError,
    StationDisconnected,
    StationOffline,
    UnknownStation,
)
from csms.domain.models import Direction
from tests.support.csms_harness import Connected, Csms, connect_station, running_csms
from tests.support.csms_payloads import TS, tx_event

PROFILE = {
    "id": 11,
    "stackLevel": 1,
    "chargingProfilePurpose": "TxDefaultProfile",
    "chargingProfileKind": "Absolute",
    "chargingSchedule": [
        {
            "id": 1,
            "startSchedule": TS,
            "chargingRateUnit": "W",
            "chargingSchedulePeriod": [
                {"startPeriod": 0, "limit": 7000.0},
                {"startPeriod": 1800, "limit": -5000.0},
            ],
        }
    ],
}


@pytest.fixture
async def csms(tmp_path: Path) -> AsyncIterator[Csms]:
    async with running_csms(tmp_path) as running:
        await running.add_station("CS1")
        await running.add_station("IDLE")
        yield running


@pytest.fixture
async def station(csms: Csms) -> AsyncIterator[Connected]:
    async with connect_station(csms, "CS1") as conn:
        await conn.station.call(
            call.BootNotification(
                charging_station={"model": "m", "vendor_name": "v"}, reason="PowerUp"
            ),
            suppress=False,
        )
        await conn.station.call(
            call.StatusNotification(
                timestamp=TS, connector_status="Available", evse_id=1, connector_id=1
            ),
            suppress=False,
        )
        yield conn


async def test_send_returns_the_answer_and_logs_call_and_result(
    csms: Csms, station: Connected
) -> None:
    answer = await csms.services.commands.send("CS1", "Reset", {"type": "Immediate"})
    assert answer == {"status": "Accepted"}
    assert station.station.received[-1] == ("Reset", {"type": "Immediate"})
    log = (await csms.services.message_log.list("CS1")).items
    assert [(e.direction, e.kind, e.action) for e in reversed(log)] == [
        (Direction.OUT, "CALL", "Reset"),
        (Direction.IN, "CALLRESULT", "Reset"),
    ]
    assert log[1].payload == {"type": "Immediate"} and log[0].payload == answer
    assert log[0].message_id == log[1].message_id


@pytest.mark.parametrize(
    ("action", "payload", "fragment"),
    [
        ("Reset", {"type": "Soon"}, "type"),
        ("Reset", {}, "'type' is a required property"),
        ("Heartbeat", {}, "not an action the CSMS can send"),
        ("Frobnicate", {}, "not an action the CSMS can send"),
    ],
)
async def test_invalid_command_refused_before_sending(
    csms: Csms, station: Connected, action: str, payload: dict[str, object], fragment: str
) -> None:
    with pytest.raises(CommandValidationError) as info:
        await csms.services.commands.send("CS1", action, payload)
    assert fragment in str(info.value)
    assert not [a for a, _ in station.station.received if a == action]


async def test_unknown_and_offline_stations(csms: Csms) -> None:
    with pytest.raises(UnknownStation):
        await csms.services.commands.send("NOPE", "Reset", {"type": "Immediate"})
    with pytest.raises(StationOffline):
        await csms.services.commands.send("IDLE", "Reset", {"type": "Immediate"})


async def test_command_timeout(csms: Csms, station: Connected) -> None:
    station.station.delay["Reset"] = 1.0
    with pytest.raises(CommandTimeout):
        await csms.services.commands.send("CS1", "Reset", {"type": "Immediate"}, timeout=0.2)
    kinds = [e.kind for e in (await csms.services.message_log.list("CS1")).items]
    assert "TIMEOUT" in kinds


async def test_callerror_from_station(csms: Csms, station: Connected) -> None:
    station.station.answers["Reset"] = GenericError("reset refused by test")
    with pytest.raises(CallErrorReceived) as info:
        await csms.services.commands.send("CS1", "Reset", {"type": "Immediate"})
    assert info.value.code == "GenericError"
    assert "reset refused" in info.value.description


async def test_disconnect_fails_waiting_command_at_once(csms: Csms, station: Connected) -> None:
    station.station.delay["Reset"] = 30
    pending = asyncio.create_task(
        csms.services.commands.send("CS1", "Reset", {"type": "Immediate"}, timeout=60)
    )
    await station.station.wait_for("Reset")
    await station.ws.close()
    # Well inside the 60 s command timeout: the disconnect itself ends the wait.
    async with asyncio.timeout(5):
        with pytest.raises(StationDisconnected):
            await pending


async def _report_items_per_message(station: Connected, instance: str, value: int) -> None:
    await station.station.call(
        call.NotifyReport(
            request_id=1,
            generated_at=TS,
            seq_no=0,
            report_data=[
                {
                    "component": {"name": "DeviceDataCtrlr"},
                    "variable": {"name": "ItemsPerMessage", "instance": instance},
                    "variable_attribute": [{"type": "Actual", "value": str(value)}],
                }
            ],
        ),
        suppress=False,
    )


async def test_b06_get_variables_split_by_items_per_message(csms: Csms, station: Connected) -> None:
    await _report_items_per_message(station, "GetVariables", 2)
    items = [{"component": {"name": "Ctrlr"}, "variable": {"name": f"V{i}"}} for i in range(5)]
    answer = await csms.services.commands.send("CS1", "GetVariables", {"getVariableData": items})
    requests = [kw for action, kw in station.station.received if action == "GetVariables"]
    assert [len(r["get_variable_data"]) for r in requests] == [2, 2, 1]
    assert [r["variable"]["name"] for r in answer["getVariableResult"]] == [
        f"V{i}" for i in range(5)
    ]


async def test_b05_set_variables_split_by_items_per_message(csms: Csms, station: Connected) -> None:
    await _report_items_per_message(station, "SetVariables", 3)
    items = [
        {"attributeValue": "1", "component": {"name": "C"}, "variable": {"name": f"V{i}"}}
        for i in range(4)
    ]
    answer = await csms.services.commands.send("CS1", "SetVariables", {"setVariableData": items})
    requests = [kw for action, kw in station.station.received if action == "SetVariables"]
    assert [len(r["set_variable_data"]) for r in requests] == [3, 1]
    assert len(answer["setVariableResult"]) == 4


async def test_get_variables_unsplit_without_reported_limit(csms: Csms, station: Connected) -> None:
    items = [{"component": {"name": "C"}, "variable": {"name": f"V{i}"}} for i in range(5)]
    await csms.services.commands.send("CS1", "GetVariables", {"getVariableData": items})
    requests = [kw for action, kw in station.station.received if action == "GetVariables"]
    assert [len(r["get_variable_data"]) for r in requests] == [5]


async def test_k01_accepted_profile_stored_and_cleared(csms: Csms, station: Connected) -> None:
    payload = {"evseId": 1, "chargingProfile": PROFILE}
    answer = await csms.services.commands.send("CS1", "SetChargingProfile", payload)
    assert answer["status"] == "Accepted"
    sent = next(kw for a, kw in station.station.received if a == "SetChargingProfile")
    assert (
        sent["charging_profile"]["charging_schedule"][0]["charging_schedule_period"][1]["limit"]
        == -5000.0
    )
    stored = await csms.services.charging_profiles.list("CS1", evse_id=1)
    assert [(p.profile_id, p.stack_level, p.purpose) for p in stored] == [
        (11, 1, "TxDefaultProfile")
    ]
    assert stored[0].profile == PROFILE
    await csms.services.commands.send("CS1", "ClearChargingProfile", {"chargingProfileId": 11})
    assert await csms.services.charging_profiles.list("CS1") == []


async def test_k01_profile_rejected_by_station_not_stored(csms: Csms, station: Connected) -> None:
    station.station.answers["SetChargingProfile"] = {"status": "Rejected"}
    answer = await csms.services.commands.send(
        "CS1", "SetChargingProfile", {"evseId": 1, "chargingProfile": PROFILE}
    )
    assert answer["status"] == "Rejected"
    assert await csms.services.charging_profiles.list("CS1") == []


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        (
            lambda p: p["chargingSchedule"][0]["chargingSchedulePeriod"][0].update(startPeriod=5),
            "K01.FR.31",
        ),
        (
            lambda p: p["chargingSchedule"][0]["chargingSchedulePeriod"][1].update(startPeriod=0),
            "K01.FR.35",
        ),
        (lambda p: p["chargingSchedule"][0].pop("startSchedule"), "K01.FR.40"),
        (lambda p: p.update(chargingProfilePurpose="TxProfile", transactionId="NOPE"), "K01.FR.09"),
    ],
)
async def test_k01_rules_checked_before_sending(
    csms: Csms, station: Connected, change: object, rule: str
) -> None:
    profile = copy.deepcopy(PROFILE)
    change(profile)  # type: ignore[operator]
    with pytest.raises(CommandValidationError) as info:
        await csms.services.commands.send(
            "CS1", "SetChargingProfile", {"evseId": 1, "chargingProfile": profile}
        )
    assert rule in str(info.value)
    assert not [a for a, _ in station.station.received if a == "SetChargingProfile"]


async def test_k01_fr06_same_stack_level_conflict(csms: Csms, station: Connected) -> None:
    await csms.services.commands.send(
        "CS1", "SetChargingProfile", {"evseId": 1, "chargingProfile": PROFILE}
    )
    clash = {**copy.deepcopy(PROFILE), "id": 12}
    with pytest.raises(CommandValidationError, match=r"K01\.FR\.06"):
        await csms.services.commands.send(
            "CS1", "SetChargingProfile", {"evseId": 1, "chargingProfile": clash}
        )


async def test_k01_tx_profile_for_running_transaction_accepted(
    csms: Csms, station: Connected
) -> None:
    started = tx_event("Started", 0, tx_id="TX9")
    await station.station.call(
        call.TransactionEvent(
            event_type=started["eventType"],
            timestamp=started["timestamp"],
            trigger_reason=started["triggerReason"],
            seq_no=0,
            transaction_info=started["transactionInfo"],
            evse=started["evse"],
        ),
        suppress=False,
    )
    profile = {
        **copy.deepcopy(PROFILE),
        "chargingProfilePurpose": "TxProfile",
        "transactionId": "TX9",
    }
    answer = await csms.services.commands.send(
        "CS1", "SetChargingProfile", {"evseId": 1, "chargingProfile": profile}
    )
    assert answer["status"] == "Accepted"


async def test_replaced_connection_fails_its_waiting_command(
    csms: Csms, station: Connected
) -> None:
    station.station.delay["Reset"] = 30
    pending = asyncio.create_task(
        csms.services.commands.send("CS1", "Reset", {"type": "Immediate"}, timeout=60)
    )
    await station.station.wait_for("Reset")
    async with connect_station(csms, "CS1") as newer, asyncio.timeout(5):
        with pytest.raises(StationDisconnected):
            await pending
        # The new connection takes commands at once.
        newer.station.answers["Reset"] = {"status": "Scheduled"}
        answer = await csms.services.commands.send("CS1", "Reset", {"type": "OnIdle"})
        assert answer == {"status": "Scheduled"}


async def test_k01_invalid_profile_to_an_offline_station_is_a_validation_error(
    csms: Csms,
) -> None:
    profile = copy.deepcopy(PROFILE)
    profile["chargingSchedule"][0]["chargingSchedulePeriod"][0]["startPeriod"] = 5
    with pytest.raises(CommandValidationError, match=r"K01\.FR\.31"):
        await csms.services.commands.send(
            "IDLE", "SetChargingProfile", {"evseId": 1, "chargingProfile": profile}
        )
    # A valid profile to the same offline station is refused as offline, not as invalid.
    with pytest.raises(StationOffline):
        await csms.services.commands.send(
            "IDLE", "SetChargingProfile", {"evseId": 1, "chargingProfile": PROFILE}
        )
