"""The Node station (client.js, ocpp-rpc strict mode) against a tiny Python `ocpp` CSMS."""

from __future__ import annotations

import pytest
from ocpp import exceptions
from ocpp.v201 import call

from tests.support.interop import (
    CLIENT_SCRIPT,
    SERVER_SCRIPT,
    interop_station,
    run_self_check,
)
from tests.support.interop_peers import python_csms

pytestmark = pytest.mark.node


@pytest.mark.parametrize("script", [CLIENT_SCRIPT, SERVER_SCRIPT], ids=["client", "server"])
async def test_every_default_answer_is_schema_valid(script: object) -> None:
    result = await run_self_check(script)  # type: ignore[arg-type]
    assert result["problems"] == []
    assert result["returncode"] == 0
    # 40 CSMS-initiated 2.0.1 actions + the 15 OCPP 2.1 added (client answers) and 25
    # station-initiated 2.0.1 ones (server answers).
    assert result["actions"] == (40 + 15 if script == CLIENT_SCRIPT else 25)


async def test_b01_node_station_boots_and_answers_a_csms_call() -> None:
    async with python_csms() as csms, interop_station() as station:
        connected = await station.connect(csms.url, "NODE-CS-1")
        assert connected["protocol"] == "ocpp2.0.1"

        boot = await station.boot()
        assert boot["status"] == "Accepted"
        assert boot["interval"] == 60

        session = await csms.session("NODE-CS-1")
        assert session.booted.is_set()
        assert session.received[0][1]["charging_station"]["vendor_name"] == "interop"

        response = await session.call(
            call.GetVariables(
                get_variable_data=[
                    {
                        "component": {"name": "OCPPCommCtrlr"},
                        "variable": {"name": "HeartbeatInterval"},
                    },
                    {"component": {"name": "NoSuchCtrlr"}, "variable": {"name": "X"}},
                ]
            ),
            suppress=False,
        )
        statuses = [r["attribute_status"] for r in response.get_variable_result]
        assert statuses == ["Accepted", "UnknownComponent"]
        assert response.get_variable_result[0]["attribute_value"] == "300"

        received = await station.wait_for_call("GetVariables")
        assert received["payload"]["getVariableData"][0]["variable"]["name"] == "HeartbeatInterval"
        await station.expect_no_strict_violations()


async def test_b05_set_variables_changes_what_get_variables_reports() -> None:
    async with python_csms() as csms, interop_station() as station:
        await station.connect(csms.url, "NODE-CS-2")
        session = await csms.session("NODE-CS-2")
        target = {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}
        set_response = await session.call(
            call.SetVariables(set_variable_data=[{**target, "attribute_value": "45"}]),
            suppress=False,
        )
        assert set_response.set_variable_result[0]["attribute_status"] == "Accepted"
        get_response = await session.call(
            call.GetVariables(get_variable_data=[target]), suppress=False
        )
        assert get_response.get_variable_result[0]["attribute_value"] == "45"
        await station.expect_no_strict_violations()


async def test_f06_trigger_message_heartbeat_is_followed_by_a_heartbeat() -> None:
    async with python_csms() as csms, interop_station() as station:
        await station.connect(csms.url, "NODE-CS-3")
        session = await csms.session("NODE-CS-3")
        response = await session.call(
            call.TriggerMessage(requested_message="Heartbeat"), suppress=False
        )
        assert response.status == "Accepted"
        await station.wait_event("call_result", action="Heartbeat", ref="follow-up:TriggerMessage")
        assert session.heartbeats == 1


async def test_invalid_csms_call_is_a_peer_strict_violation_with_ocpp_rpc_spelling() -> None:
    """A CSMS CALL missing a required item is refused and counted. ocpp-rpc names the error
    `OccurenceConstraintViolation` (1.6 spelling) on 2.0.1 too, where the spec spells it
    `OccurrenceConstraintViolation`: our CSMS must accept both spellings."""
    async with python_csms() as csms, interop_station() as station:
        await station.connect(csms.url, "NODE-CS-4")
        session = await csms.session("NODE-CS-4")
        with pytest.raises(exceptions.OccurenceConstraintViolationError):
            await session.call(
                call.GetVariables(get_variable_data=[]),  # minItems is 1
                suppress=False,
                skip_schema_validation=True,
            )
        await station.sync()
        violations = station.strict_violations("peer")
        assert len(violations) == 1
        violation = violations[0]
        assert (violation.action, violation.kind, violation.identity) == (
            "GetVariables",
            "call",
            "NODE-CS-4",
        )
        assert violation.code == "OccurenceConstraintViolation"
        assert violation.errors[0]["keyword"] == "minItems"
        with pytest.raises(AssertionError, match="strict mode rejected"):
            await station.expect_no_strict_violations()


async def test_overridden_answer_and_error_reach_the_csms() -> None:
    async with python_csms() as csms, interop_station() as station:
        await station.connect(csms.url, "NODE-CS-5")
        session = await csms.session("NODE-CS-5")

        await station.set_handler("Reset", response={"status": "Scheduled"})
        reset = await session.call(call.Reset(type="OnIdle"), suppress=False)
        assert reset.status == "Scheduled"

        await station.set_handler(
            "SetChargingProfile", error={"code": "NotSupported", "description": "no profiles"}
        )
        profile = {
            "id": 1,
            "stack_level": 0,
            "charging_profile_purpose": "TxDefaultProfile",
            "charging_profile_kind": "Absolute",
            "charging_schedule": [
                {
                    "id": 1,
                    "start_schedule": "2026-01-01T00:00:00Z",
                    "charging_rate_unit": "A",
                    "charging_schedule_period": [{"start_period": 0, "limit": 16}],
                }
            ],
        }
        with pytest.raises(exceptions.NotSupportedError):
            await session.call(
                call.SetChargingProfile(evse_id=1, charging_profile=profile), suppress=False
            )

        await station.reset_handler("Reset")
        assert (await session.call(call.Reset(type="OnIdle"), suppress=False)).status == "Accepted"
        await station.expect_no_strict_violations()


async def test_invalid_harness_answer_is_a_local_violation_not_the_peers() -> None:
    """A wrong override is blamed on the harness (origin local), and the CSMS gets an
    InternalError instead of the bad payload."""
    async with python_csms() as csms, interop_station() as station:
        await station.connect(csms.url, "NODE-CS-6")
        session = await csms.session("NODE-CS-6")
        await station.set_handler("Reset", response={"status": "Maybe"})
        with pytest.raises(exceptions.InternalError):
            await session.call(call.Reset(type="Immediate"), suppress=False)
        await station.sync()
        assert station.strict_violations("peer") == []
        local = station.strict_violations("local")
        assert [(v.action, v.kind) for v in local] == [("Reset", "result")]
        await station.expect_no_strict_violations()  # peer-only by default


async def test_connect_to_a_closed_port_reports_connect_failed() -> None:
    async with python_csms() as csms:
        url = csms.url
    async with interop_station() as station:
        event = await station.try_connect(url, "NODE-CS-7")
        assert event["event"] == "connect_failed"
