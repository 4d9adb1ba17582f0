"""Our charge-point agent against a third-party CSMS: Node `ocpp-rpc` 2.2.1 in strict mode
(tests/interop/server.js), Basic auth (security profile 1). Every message our agent sends is
checked by ocpp-rpc against the OCA 2.0.1 schemas (date-time formats included); every CALL the
Node CSMS sends is one ocpp-rpc considers valid, so our agent must answer it: with a CALLRESULT
when it supports the action, with the spec CALLERROR (NotSupported) when it does not."""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from chargepoint_firmware.hardware.chademo_evse import ChademoEvseConfig
from chargepoint_firmware.hardware.sim_vehicle import Battery, SimVehicleConfig
from chargepoint_firmware.wiring import build_agent
from tests.support.agent_fakes import FakeEvse
from tests.support.agent_harness import agent_settings, eventually
from tests.support.api_payloads import EXAMPLE_REQUESTS
from tests.support.chademo_sim import running_sim
from tests.support.csms_pki import make_pki
from tests.support.interop import InteropCsms, interop_csms
from tests.support.interop_fixtures import (
    AGENT_ID,
    AGENT_PASSWORD,
    RunningAgent,
    agent_for_interop,
    call_unvalidated,
    harness_action_lists,
    interop_csms_tls,
    iso_now,
    set_slow_handler,
)

pytestmark = pytest.mark.timeout(120)

OCCURRENCE_CODES = {"OccurrenceConstraintViolation", "OccurenceConstraintViolation"}

# The CSMS-initiated actions our agent implements; every other 2.0.1 action must be refused
# with NotSupported (OCPP-J 2.0.1 §4.3: "recognized but not supported by the receiver").
AGENT_SUPPORTED = frozenset(
    {
        "RequestStartTransaction",
        "RequestStopTransaction",
        "GetTransactionStatus",
        "Reset",
        "ChangeAvailability",
        "UnlockConnector",
        "TriggerMessage",
        "GetVariables",
        "SetVariables",
        "GetBaseReport",
        "GetReport",
        "SetChargingProfile",
        "GetChargingProfiles",
        "ClearChargingProfile",
        "GetCompositeSchedule",
        "ClearCache",
        "SendLocalList",
        "ReserveNow",
        "CancelReservation",
        "CostUpdated",
        "GetLocalListVersion",
        "DataTransfer",
        "GetLog",
        "UpdateFirmware",
    }
)


@dataclass
class Rig:
    csms: InteropCsms
    running: RunningAgent

    async def call(self, action: str, payload: dict[str, Any]) -> Any:
        return await self.csms.call(AGENT_ID, action, payload)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    # The agent starts after the Node CSMS is up, and stops first.
    async with (
        interop_csms(password=AGENT_PASSWORD, heartbeat_interval=300) as csms,
        agent_for_interop(tmp_path / "agent", csms.url) as running,
    ):
        connected = await csms.wait_for_station(AGENT_ID)
        assert connected["protocol"] == "ocpp2.0.1"
        assert connected["had_password"] is True
        await csms.wait_for_call("BootNotification", identity=AGENT_ID)
        await csms.wait_for_call("StatusNotification", identity=AGENT_ID)
        yield Rig(csms, running)
        # Nothing either side sent, over the whole test, broke the 2.0.1 schemas.
        await csms.expect_no_strict_violations(origin=None)


def variable(component: str, name: str, value: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"component": {"name": component}, "variable": {"name": name}}
    if value is not None:
        item["attributeValue"] = value
    return item


async def test_b01_wrong_password_is_refused_and_the_agent_keeps_trying(tmp_path: Path) -> None:
    async with interop_csms(password="a-different-password-1") as csms:
        settings = {
            "security": {"profile": 1, "basic_auth_password": AGENT_PASSWORD},
            # Refused credentials back off from 30 s; the floor lets the test see retries.
            "auth_failure_backoff_max_s": 1.0,
        }
        with pytest.raises(AssertionError, match="never came online"):
            async with agent_for_interop(
                tmp_path / "agent", csms.url, online_within_s=2.0, **settings
            ):
                pass  # pragma: no cover - the agent must not get online
        refused = [e for e in csms.events if e.get("event") == "auth_rejected"]
        assert len(refused) >= 2  # it retried with backoff
        assert all(e["identity"] == AGENT_ID and e["had_password"] for e in refused)


async def test_b01_e_k01_boot_status_transaction_and_discharge_profile(rig: Rig) -> None:
    """Boot and status (seen in the fixture), a remote-started transaction with periodic meter
    values, a negative-limit TxProfile reaching the EVSE, a composite schedule, a remote stop."""
    csms, evse = rig.csms, rig.running.evse
    boot = csms.received_calls("BootNotification", AGENT_ID)[0]["payload"]
    assert boot["reason"] in ("PowerUp", "Unknown", "ApplicationReset", "RemoteReset")
    status = csms.received_calls("StatusNotification", AGENT_ID)[0]["payload"]
    assert status["evseId"] == 1 and status["connectorStatus"] == "Available"

    interval = await rig.call(
        "SetVariables",
        {"setVariableData": [variable("SampledDataCtrlr", "TxUpdatedInterval", "1")]},
    )
    assert interval.result["setVariableResult"][0]["attributeStatus"] == "Accepted"

    evse.plug_in()
    since = len(csms.events)
    start = await rig.call(
        "RequestStartTransaction",
        {
            "idToken": {"idToken": "INTEROP-TAG-1", "type": "Central"},
            "remoteStartId": 77,
            "evseId": 1,
        },
    )
    assert start.result["status"] == "Accepted"
    started = await csms.wait_event(
        "received_call",
        since=since,
        action="TransactionEvent",
        identity=AGENT_ID,
    )
    assert started["payload"]["eventType"] == "Started"
    assert started["payload"]["transactionInfo"]["remoteStartId"] == 77
    tx_id = started["payload"]["transactionInfo"]["transactionId"]

    status_of_tx = await rig.call("GetTransactionStatus", {"transactionId": tx_id})
    assert status_of_tx.result["ongoingIndicator"] is True

    profile = {
        "evseId": 1,
        "chargingProfile": {
            "id": 900,
            "stackLevel": 0,
            "chargingProfilePurpose": "TxProfile",
            "chargingProfileKind": "Relative",
            "transactionId": tx_id,
            "chargingSchedule": [
                {
                    "id": 1,
                    "chargingRateUnit": "W",
                    "chargingSchedulePeriod": [{"startPeriod": 0, "limit": -4000.0}],
                }
            ],
        },
    }
    assert (await rig.call("SetChargingProfile", profile)).result["status"] == "Accepted"
    await eventually(lambda: bool(evse.setpoints) and evse.setpoints[-1][1].limit == -4000.0)
    composite = await rig.call(
        "GetCompositeSchedule", {"duration": 600, "evseId": 1, "chargingRateUnit": "W"}
    )
    assert composite.result["status"] == "Accepted"
    periods = composite.result["schedule"]["chargingSchedulePeriod"]
    assert periods[0]["limit"] == -4000.0

    evse.add_energy(import_wh=250.0)

    def metered(event: dict[str, Any]) -> bool:
        if event.get("event") != "received_call" or event.get("action") != "TransactionEvent":
            return False
        values = event["payload"].get("meterValue") or []
        return event["payload"]["eventType"] == "Updated" and any(
            s.get("measurand", "Energy.Active.Import.Register") == "Energy.Active.Import.Register"
            and s["value"] == 250.0
            for mv in values
            for s in mv["sampledValue"]
        )

    await csms.wait_for(metered, timeout_s=10, what="an Updated TransactionEvent with 250 Wh")

    since = len(csms.events)
    stop = await rig.call("RequestStopTransaction", {"transactionId": tx_id})
    assert stop.result["status"] == "Accepted"

    def ended(event: dict[str, Any]) -> bool:
        return (
            event.get("event") == "received_call"
            and event.get("action") == "TransactionEvent"
            and event["payload"]["eventType"] == "Ended"
        )

    end = await csms.wait_for(ended, since=since, what="TransactionEvent Ended")
    assert end["payload"]["transactionInfo"]["transactionId"] == tx_id
    assert end["payload"]["transactionInfo"]["stoppedReason"] == "Remote"
    seq_nos = [
        e["payload"]["seqNo"]
        for e in csms.received_calls("TransactionEvent", AGENT_ID)
        if e["payload"]["transactionInfo"]["transactionId"] == tx_id
    ]
    assert seq_nos == list(range(len(seq_nos)))
    assert csms.received_calls("StatusNotification", AGENT_ID)[-1]["payload"]["evseId"] == 1


def every_action_request() -> dict[str, dict[str, Any]]:
    """A valid request for every CSMS-initiated 2.0.1 action, chosen so that the whole loop
    leaves the agent connected (no station-wide reset)."""
    requests = copy.deepcopy(EXAMPLE_REQUESTS)
    requests["Reset"] = {"type": "OnIdle", "evseId": 1}
    requests["GetLog"] = {
        "logType": "DiagnosticsLog",
        "requestId": 8,
        "log": {"remoteLocation": "https://logs.example/upload"},
    }
    return requests


async def test_every_csms_initiated_action_gets_a_result_or_not_supported(rig: Rig) -> None:
    """All 40 CSMS-initiated 2.0.1 actions from the third-party CSMS: the supported ones get a
    CALLRESULT that passes ocpp-rpc's .conf schema, the rest get NotSupported."""
    _, csms_side = harness_action_lists()
    requests = every_action_request()
    assert sorted(requests) == sorted(csms_side)
    assert set(csms_side) >= AGENT_SUPPORTED
    problems: dict[str, str] = {}
    answers: dict[str, dict[str, Any]] = {}
    # State first (a list, a profile, a variable), then the rest, so readers see it.
    first = ["SendLocalList", "SetChargingProfile", "SetVariables"]
    for action in first + [a for a in csms_side if a not in first]:
        outcome = await rig.call(action, copy.deepcopy(requests[action]))
        if action in AGENT_SUPPORTED:
            if not outcome.ok:
                problems[action] = f"{outcome.error_code}: {outcome.error_description}"
            else:
                answers[action] = outcome.result
        elif outcome.error_code != "NotSupported":
            problems[action] = f"expected NotSupported, got {outcome.error_code or outcome.payload}"
    assert problems == {}

    # Answers that say the agent did what was asked.
    assert answers["SendLocalList"]["status"] == "Accepted"
    assert answers["SetChargingProfile"]["status"] == "Accepted"  # 7400 W, then -5000 W
    assert answers["ClearChargingProfile"]["status"] == "Accepted"  # profile 7 was there
    assert answers["GetVariables"]["getVariableResult"][0]["attributeValue"] == "120"
    assert answers["SetVariables"]["setVariableResult"][0]["attributeStatus"] == "Accepted"
    assert answers["ChangeAvailability"]["status"] == "Accepted"
    assert answers["DataTransfer"]["status"] == "UnknownVendorId"
    assert answers["RequestStopTransaction"]["status"] == "Rejected"  # no transaction tx-1
    assert answers["GetLog"]["status"] == "Accepted"

    # The loop ran GetLocalListVersion before SendLocalList; now the list has version 4.
    version = await rig.call("GetLocalListVersion", {})
    assert version.result["versionNumber"] == 4

    # Follow-ups the agent sends after its answers, all schema-valid (checked at teardown).
    csms = rig.csms
    await csms.wait_for_call("NotifyReport", identity=AGENT_ID)
    await csms.wait_event("received_call", action="LogStatusNotification", identity=AGENT_ID)
    firmware = await csms.wait_for(
        lambda e: (
            e.get("action") == "FirmwareStatusNotification"
            and e["payload"]["status"] == "Installed"
        ),
        what="FirmwareStatusNotification Installed",
    )
    assert firmware["payload"]["requestId"] == 6
    # ChangeAvailability Inoperative on EVSE 1 is reported (G03), and can be undone.
    await csms.wait_for(
        lambda e: (
            e.get("action") == "StatusNotification"
            and e["payload"]["connectorStatus"] == "Unavailable"
        ),
        what="StatusNotification Unavailable",
    )
    back = await rig.call(
        "ChangeAvailability", {"operationalStatus": "Operative", "evse": {"id": 1}}
    )
    assert back.result["status"] == "Accepted"


async def test_b11_reset_immediate_reboots_and_boots_again(rig: Rig) -> None:
    csms = rig.csms
    since = len(csms.events)
    reset = await rig.call("Reset", {"type": "Immediate"})
    assert reset.result["status"] == "Accepted"
    boot = await csms.wait_event(
        "received_call", since=since, action="BootNotification", identity=AGENT_ID, timeout_s=15
    )
    assert boot["payload"]["reason"] == "RemoteReset"
    await csms.wait_event("station_connected", since=since, identity=AGENT_ID)


async def test_f06_triggered_messages_are_sent_after_the_answer(rig: Rig) -> None:
    csms = rig.csms
    for requested in ("Heartbeat", "StatusNotification", "MeterValues"):
        since = len(csms.events)
        payload: dict[str, Any] = {"requestedMessage": requested}
        if requested == "StatusNotification":
            payload["evse"] = {"id": 1, "connectorId": 1}
        elif requested == "MeterValues":
            payload["evse"] = {"id": 1}
        outcome = await rig.call("TriggerMessage", payload)
        assert outcome.result["status"] == "Accepted", requested
        await csms.wait_event("received_call", since=since, action=requested, identity=AGENT_ID)
    # F06.FR.17: a BootNotification trigger once the boot was Accepted is Rejected.
    boot = await rig.call("TriggerMessage", {"requestedMessage": "BootNotification"})
    assert boot.result["status"] == "Rejected"
    unknown = await rig.call("TriggerMessage", {"requestedMessage": "SignV2GCertificate"})
    assert unknown.result["status"] in ("NotImplemented", "Rejected")


@pytest.mark.parametrize(
    ("action", "payload", "expected_codes"),
    [
        pytest.param("Reset", {}, OCCURRENCE_CODES, id="missing-required"),
        pytest.param(
            "GetVariables",
            {"getVariableData": [{"component": {"name": 5}, "variable": {"name": "X"}}]},
            {"TypeConstraintViolation"},
            id="wrong-type",
        ),
        pytest.param(
            "Reset", {"type": "Sideways"}, {"PropertyConstraintViolation"}, id="enum-value"
        ),
        pytest.param("ClearCache", {"extra": True}, {"FormatViolation"}, id="additional-property"),
        pytest.param(
            "RequestStopTransaction",
            {"transactionId": "T" * 37},
            {"PropertyConstraintViolation", "FormatViolation"},
            id="too-long",
        ),
        pytest.param("Explode", {}, {"NotImplemented"}, id="unknown-action"),
    ],
)
async def test_malformed_call_from_the_csms_gets_the_spec_callerror(
    rig: Rig, action: str, payload: dict[str, Any], expected_codes: set[str]
) -> None:
    """OCPP-J 2.0.1 part 4 §4.3 error codes, from our agent to a third-party CSMS (the same
    cases and codes as our CSMS in test_interop_csms.py): a missing field is an occurrence
    violation, a wrong JSON type a TypeConstraintViolation, a well-typed but invalid value (enum)
    a PropertyConstraintViolation; a string over its maxLength is the right type, so not a
    TypeConstraintViolation."""
    outcome = await call_unvalidated(rig.csms, action, payload, identity=AGENT_ID)
    assert not outcome.ok, f"{action} {payload} was accepted: {outcome.payload}"
    assert outcome.error_code in expected_codes, (outcome.error_code, outcome.error_description)
    # OCPP-J §4.2.3: errorDescription is at most 255 characters.
    assert len(outcome.error_description) <= 255, outcome.error_description
    # Still connected and answering.
    assert (await rig.call("ClearCache", {})).ok


def boot_answer(status: str, interval: int) -> dict[str, Any]:
    return {"currentTime": iso_now(), "interval": interval, "status": status}


async def test_b02_pending_boot_answers_requests_and_boots_again_on_trigger(
    tmp_path: Path,
) -> None:
    """Pending (B02): the agent retries the boot after the interval, answers the CSMS's
    GetVariables meanwhile, boots at once on TriggerMessage(BootNotification), and goes
    online when Accepted."""
    async with interop_csms(
        password=AGENT_PASSWORD, heartbeat_interval=1, boot_status="Pending"
    ) as csms:
        settings = agent_settings(
            tmp_path / "agent",
            csms.url,
            station_id=AGENT_ID,
            security={"profile": 1, "basic_auth_password": AGENT_PASSWORD},
        )
        evse = FakeEvse(1)
        agent = build_agent(settings, {1: evse})
        task = asyncio.create_task(agent.run())
        try:
            await csms.wait_for_call("BootNotification", identity=AGENT_ID)
            since = len(csms.events)
            await csms.wait_event(
                "received_call", since=since, action="BootNotification", timeout_s=5
            )  # retried after the 1 s interval
            assert not agent.online
            got = await csms.call(
                AGENT_ID,
                "GetVariables",
                {"getVariableData": [variable("OCPPCommCtrlr", "HeartbeatInterval")]},
            )
            assert got.result["getVariableResult"][0]["attributeStatus"] == "Accepted"
            await csms.set_handler("BootNotification", response=boot_answer("Accepted", 300))
            since = len(csms.events)
            trigger = await csms.call(
                AGENT_ID, "TriggerMessage", {"requestedMessage": "BootNotification"}
            )
            assert trigger.result["status"] == "Accepted"
            await csms.wait_event("received_call", since=since, action="BootNotification")
            await eventually(lambda: agent.online, within_s=5)
            await csms.wait_event("received_call", since=since, action="StatusNotification")
            # Until Accepted nothing but BootNotification was sent (B02.FR.02).
            before = csms.events[:since]
            sent_before = {e["action"] for e in before if e.get("event") == "received_call"}
            assert sent_before == {"BootNotification"}
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            agent.close()
        await csms.expect_no_strict_violations(origin=None)


async def test_b03_rejected_boot_sends_nothing_else_until_the_interval(tmp_path: Path) -> None:
    """Rejected (B03): only BootNotifications, spaced by the interval; accepted later."""
    async with interop_csms(
        password=AGENT_PASSWORD, heartbeat_interval=1, boot_status="Rejected"
    ) as csms:
        settings = agent_settings(
            tmp_path / "agent",
            csms.url,
            station_id=AGENT_ID,
            security={"profile": 1, "basic_auth_password": AGENT_PASSWORD},
        )
        agent = build_agent(settings, {1: FakeEvse(1)})
        task = asyncio.create_task(agent.run())
        try:
            first = await csms.wait_for_call("BootNotification", identity=AGENT_ID)
            second = await csms.wait_event(
                "received_call",
                since=csms.events.index(first) + 1,
                action="BootNotification",
                timeout_s=5,
            )
            assert second["t"] - first["t"] >= 0.9  # not before the 1 s interval
            calls = {e["action"] for e in csms.events if e.get("event") == "received_call"}
            assert calls == {"BootNotification"}
            await csms.set_handler("BootNotification", response=boot_answer("Accepted", 300))
            await eventually(lambda: agent.online, within_s=5)
            await csms.wait_for_call("StatusNotification", identity=AGENT_ID)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            agent.close()
        await csms.expect_no_strict_violations(origin=None)


async def test_e12_transaction_events_queued_while_the_csms_is_down_are_delivered(
    tmp_path: Path,
) -> None:
    """The third-party CSMS goes away mid-transaction; the agent queues the transaction's
    events (offline=true), and delivers them in order to the CSMS that comes back on the same
    port, schema-valid and with an unbroken seqNo."""
    first = InteropCsms(password=AGENT_PASSWORD)
    await first.start()
    port = first.port
    second: InteropCsms | None = None
    try:
        async with agent_for_interop(tmp_path / "agent", first.url) as running_agent:
            evse = running_agent.evse
            await first.wait_for_call("StatusNotification", identity=AGENT_ID)
            interval = await first.call(
                AGENT_ID,
                "SetVariables",
                {"setVariableData": [variable("SampledDataCtrlr", "TxUpdatedInterval", "1")]},
            )
            assert interval.result["setVariableResult"][0]["attributeStatus"] == "Accepted"
            evse.plug_in()
            start = await first.call(
                AGENT_ID,
                "RequestStartTransaction",
                {"idToken": {"idToken": "OFFLINE-1", "type": "Central"}, "remoteStartId": 5},
            )
            assert start.result["status"] == "Accepted"
            started = await first.wait_for_call("TransactionEvent", identity=AGENT_ID)
            tx_id = started["payload"]["transactionInfo"]["transactionId"]
            await first.expect_no_strict_violations(origin=None)

            await first.stop()  # the CSMS disappears
            await eventually(lambda: not running_agent.agent.online, within_s=5)
            offline_since = datetime.now(UTC)
            evse.add_energy(import_wh=400.0)
            await asyncio.sleep(1.3)  # at least one periodic sample while offline
            evse.unplug()  # the transaction ends while offline
            await asyncio.sleep(0.3)

            second = InteropCsms(password=AGENT_PASSWORD)
            second.args[second.args.index("--port") + 1] = str(port)
            await second.start()
            assert second.port == port
            await second.wait_for_station(AGENT_ID, timeout_s=10)

            def ended(event: dict[str, Any]) -> bool:
                return (
                    event.get("event") == "received_call"
                    and event.get("action") == "TransactionEvent"
                    and event["payload"]["eventType"] == "Ended"
                )

            await second.wait_for(ended, timeout_s=10, what="the queued TransactionEvent Ended")
            delivered = [
                e["payload"]
                for e in second.received_calls("TransactionEvent", AGENT_ID)
                if e["payload"]["transactionInfo"]["transactionId"] == tx_id
            ]
            periodic = [
                sample["value"]
                for p in delivered
                if p["triggerReason"] == "MeterValuePeriodic"
                for mv in p["meterValue"]
                for sample in mv["sampledValue"]
                if sample.get("measurand") == "Energy.Active.Import.Register"
            ]
            assert 400 in periodic  # sampled while offline, delivered later
            assert delivered[-1]["eventType"] == "Ended"
            # Events the agent made once it knew the link was down carry offline=true (one made
            # just before it noticed, e.g. a periodic sample, rightly does not).
            made_offline = [
                p for p in delivered if datetime.fromisoformat(p["timestamp"]) >= offline_since
            ]
            assert len(made_offline) >= 2
            assert all(p.get("offline") is True for p in made_offline)
            before = [
                e["payload"]["seqNo"]
                for e in first.received_calls("TransactionEvent", AGENT_ID)
                if e["payload"]["transactionInfo"]["transactionId"] == tx_id
            ]
            after = [p["seqNo"] for p in delivered]
            if before and after and before[-1] == after[0]:
                # The first CSMS got that event but stopped before answering it: the agent
                # rightly sent it again with the same seqNo (at-least-once, E13). Only this one
                # repeat, at the crash, is allowed.
                after = after[1:]
            seq_nos = before + after
            assert seq_nos == list(range(len(seq_nos)))
            await second.expect_no_strict_violations(origin=None)
    finally:
        await first.stop()
        if second is not None:
            await second.stop()


def sampled(payload: dict[str, Any], measurand: str) -> float | None:
    for mv in payload.get("meterValue", []):
        for sv in mv["sampledValue"]:
            if sv.get("measurand") == measurand:
                return float(sv["value"])
    return None


async def test_k01_discharge_from_a_third_party_csms_down_to_the_chademo_car(
    tmp_path: Path,
) -> None:
    """The whole chain driven by software nobody here wrote: ocpp-rpc CSMS -> SetChargingProfile
    (negative limit) + RequestStartTransaction -> our agent -> CHAdeMO over a python-can virtual
    bus -> simulated car discharging; the export register comes back in TransactionEvents."""
    vehicle = SimVehicleConfig(permission_delay_s=0.2, time_scale=200.0)
    config = ChademoEvseConfig(max_discharge_current_a=12.0)
    async with (
        running_sim(config, battery=Battery(soc_pct=80.0), vehicle_config=vehicle) as sim_rig,
        interop_csms(password=AGENT_PASSWORD) as csms,
    ):
        settings = agent_settings(
            tmp_path / "agent",
            csms.url,
            station_id=AGENT_ID,
            security={"profile": 1, "basic_auth_password": AGENT_PASSWORD},
        )
        agent = build_agent(settings, {1: sim_rig.sim.evse})
        task = asyncio.create_task(agent.run())

        def connector(status: str) -> Any:
            return lambda e: (
                e.get("action") == "StatusNotification"
                and e["payload"]["connectorStatus"] == status
            )

        try:
            await csms.wait_for(connector("Available"), what="Available")
            sim_rig.sim.vehicle.plug_in()
            await csms.wait_for(connector("Occupied"), what="Occupied")
            profile = {
                "id": 5,
                "stackLevel": 0,
                "chargingProfilePurpose": "TxDefaultProfile",
                "chargingProfileKind": "Relative",
                "chargingSchedule": [
                    {
                        "id": 1,
                        "chargingRateUnit": "W",
                        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": -3000.0}],
                    }
                ],
            }
            answer = await csms.call(
                AGENT_ID, "SetChargingProfile", {"evseId": 1, "chargingProfile": profile}
            )
            assert answer.result["status"] == "Accepted"
            start = await csms.call(
                AGENT_ID,
                "RequestStartTransaction",
                {
                    "idToken": {"idToken": "V2G-1", "type": "Central"},
                    "remoteStartId": 1,
                    "evseId": 1,
                },
            )
            assert start.result["status"] == "Accepted"
            await eventually(lambda: sim_rig.sim.evse.status().current_a <= -5.0, within_s=10)
            await asyncio.sleep(0.5)
            tx_id = agent.transactions.evses[1].tx_id
            assert tx_id is not None
            stop = await csms.call(AGENT_ID, "RequestStopTransaction", {"transactionId": tx_id})
            assert stop.result["status"] == "Accepted"
            ended = await csms.wait_for(
                lambda e: (
                    e.get("action") == "TransactionEvent" and e["payload"]["eventType"] == "Ended"
                ),
                timeout_s=10,
                what="TransactionEvent Ended",
            )
            exported = sampled(ended["payload"], "Energy.Active.Export.Register")
            assert exported is not None and exported > 10.0
            assert ended["payload"]["transactionInfo"]["stoppedReason"] == "Remote"
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            agent.close()
        await csms.expect_no_strict_violations(origin=None)


async def test_agent_answers_the_csms_while_its_own_call_is_pending(rig: Rig) -> None:
    """One outstanding CALL per direction: while the third-party CSMS sits on the agent's
    StatusNotification, the agent still answers the CSMS's GetVariables."""
    csms = rig.csms
    await set_slow_handler(csms, "StatusNotification", {}, delay_s=1.5)
    since = len(csms.events)
    trigger = await rig.call(
        "TriggerMessage",
        {"requestedMessage": "StatusNotification", "evse": {"id": 1, "connectorId": 1}},
    )
    assert trigger.result["status"] == "Accepted"
    await csms.wait_event("received_call", since=since, action="StatusNotification")
    got = await rig.call(
        "GetVariables",
        {"getVariableData": [variable("OCPPCommCtrlr", "HeartbeatInterval")]},
    )
    assert got.result["getVariableResult"][0]["attributeStatus"] == "Accepted"
    got_at = max(
        i
        for i, e in enumerate(csms.events)
        if e.get("event") == "call_result" and e.get("action") == "GetVariables"
    )
    slow_answer = await csms.wait_event("sent_result", since=since, timeout_s=5)
    assert csms.events.index(slow_answer) > got_at  # GetVariables came back first
    await csms.reset_handler("StatusNotification")


async def test_agent_ignores_a_late_answer_after_its_timeout(tmp_path: Path) -> None:
    """The third-party CSMS answers the agent's Heartbeat after the agent's message timeout: the
    agent drops the late CALLRESULT (no CALLERROR back) and carries on."""
    async with (
        interop_csms(password=AGENT_PASSWORD) as csms,
        agent_for_interop(tmp_path / "agent", csms.url, message_timeout_s=0.5),
    ):
        await csms.wait_for_call("StatusNotification", identity=AGENT_ID)
        await set_slow_handler(csms, "Heartbeat", {"currentTime": iso_now()}, delay_s=1.0)
        since = len(csms.events)
        trigger = await csms.call(AGENT_ID, "TriggerMessage", {"requestedMessage": "Heartbeat"})
        assert trigger.result["status"] == "Accepted"
        await csms.wait_event("received_call", since=since, action="Heartbeat")
        await csms.wait_event("sent_result", since=since, timeout_s=5)  # the late answer
        await csms.reset_handler("Heartbeat")
        since = len(csms.events)
        again = await csms.call(AGENT_ID, "TriggerMessage", {"requestedMessage": "Heartbeat"})
        assert again.result["status"] == "Accepted"
        await csms.wait_event("received_call", since=since, action="Heartbeat")
        await csms.expect_no_strict_violations(origin=None)  # includes: no bad_message
        assert not any(e.get("event") == "station_disconnected" for e in csms.events)


VENDOR_DATA = {"vendorId": "org.thirdparty", "build": 417, "flags": ["a", "b"]}


async def test_custom_data_from_a_third_party_csms_is_accepted(rig: Rig) -> None:
    """Every 2.0.1 object may carry `customData` (a vendorId plus anything): a profile and a
    variable request that use it, at the top and nested, work as without it."""
    profile = {
        "evseId": 1,
        "chargingProfile": {
            "id": 31,
            "stackLevel": 2,
            "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Absolute",
            "chargingSchedule": [
                {
                    "id": 1,
                    "startSchedule": iso_now(),
                    "chargingRateUnit": "W",
                    "chargingSchedulePeriod": [
                        {"startPeriod": 0, "limit": -2500.0, "customData": VENDOR_DATA}
                    ],
                    "customData": VENDOR_DATA,
                }
            ],
            "customData": VENDOR_DATA,
        },
        "customData": VENDOR_DATA,
    }
    answer = await rig.call("SetChargingProfile", profile)
    assert answer.result["status"] == "Accepted"
    composite = await rig.call(
        "GetCompositeSchedule",
        {"duration": 300, "evseId": 1, "chargingRateUnit": "W", "customData": VENDOR_DATA},
    )
    assert composite.result["schedule"]["chargingSchedulePeriod"][0]["limit"] == -2500.0
    got = await rig.call(
        "GetVariables",
        {
            "getVariableData": [
                {
                    "component": {"name": "OCPPCommCtrlr", "customData": VENDOR_DATA},
                    "variable": {"name": "HeartbeatInterval", "customData": VENDOR_DATA},
                    "customData": VENDOR_DATA,
                }
            ],
            "customData": VENDOR_DATA,
        },
    )
    assert got.result["getVariableResult"][0]["attributeStatus"] == "Accepted"
    start = await rig.call(
        "RequestStartTransaction",
        {
            "idToken": {"idToken": "CD-1", "type": "Central", "customData": VENDOR_DATA},
            "remoteStartId": 9,
            "customData": VENDOR_DATA,
        },
    )
    assert start.ok, start.error_description


async def test_k09_get_charging_profiles_reports_the_discharge_profile(rig: Rig) -> None:
    """GetChargingProfiles from the third-party CSMS: Accepted, then ReportChargingProfiles with
    the stored negative-limit profile, valid in ocpp-rpc strict mode."""
    csms = rig.csms
    profile = copy.deepcopy(EXAMPLE_REQUESTS["SetChargingProfile"])
    assert (await rig.call("SetChargingProfile", profile)).result["status"] == "Accepted"
    since = len(csms.events)
    asked = await rig.call(
        "GetChargingProfiles",
        {"requestId": 12, "chargingProfile": {"chargingProfilePurpose": "TxDefaultProfile"}},
    )
    assert asked.result["status"] == "Accepted"
    report = await csms.wait_event(
        "received_call", since=since, action="ReportChargingProfiles", identity=AGENT_ID
    )
    payload = report["payload"]
    assert payload["requestId"] == 12
    assert payload["evseId"] == 1
    [reported] = payload["chargingProfile"]
    assert reported["id"] == profile["chargingProfile"]["id"]
    periods = reported["chargingSchedule"][0]["chargingSchedulePeriod"]
    assert [p["limit"] for p in periods] == [7400.0, -5000.0]
    none = await rig.call(
        "GetChargingProfiles",
        {
            "requestId": 13,
            "chargingProfile": {"chargingProfilePurpose": "ChargingStationMaxProfile"},
        },
    )
    assert none.result["status"] == "NoProfiles"


async def test_b05_heartbeat_interval_set_by_the_csms_is_used(rig: Rig) -> None:
    csms = rig.csms
    changed = await rig.call(
        "SetVariables",
        {"setVariableData": [variable("OCPPCommCtrlr", "HeartbeatInterval", "1")]},
    )
    assert changed.result["setVariableResult"][0]["attributeStatus"] == "Accepted"
    since = len(csms.events)
    first = await csms.wait_event("received_call", since=since, action="Heartbeat", timeout_s=15)
    second = await csms.wait_event(
        "received_call", since=csms.events.index(first) + 1, action="Heartbeat", timeout_s=15
    )
    # About 1 s apart: not faster than asked, and nowhere near the 300 s of the boot answer.
    assert 0.8 <= second["t"] - first["t"] < 30.0


async def test_a02_security_profile_2_tls_and_basic_auth(tmp_path: Path) -> None:
    """Profile 2 against the third-party CSMS: wss with the CSMS's certificate checked against
    the configured CA, plus Basic auth."""
    pki = make_pki(tmp_path / "pki")
    async with interop_csms_tls(
        pki.server.cert_file, pki.server.key_file, password=AGENT_PASSWORD
    ) as (csms, url):
        security = {
            "profile": 2,
            "basic_auth_password": AGENT_PASSWORD,
            "ca_file": pki.ca.cert_file,
        }
        async with agent_for_interop(tmp_path / "agent", url, security=security):
            connected = await csms.wait_for_station(AGENT_ID)
            assert connected["tls"] is True
            assert connected["had_password"] is True
            await csms.wait_for_call("BootNotification", identity=AGENT_ID)
            got = await csms.call(
                AGENT_ID,
                "GetVariables",
                {"getVariableData": [variable("SecurityCtrlr", "SecurityProfile")]},
            )
            assert got.result["getVariableResult"][0]["attributeValue"] == "2"
        await csms.expect_no_strict_violations(origin=None)


async def test_a03_security_profile_3_client_certificate(tmp_path: Path) -> None:
    """Profile 3: mutual TLS; the CSMS sees the agent's certificate with CN = station id."""
    pki = make_pki(tmp_path / "pki")
    client = pki.client(AGENT_ID)
    async with interop_csms_tls(
        pki.server.cert_file, pki.server.key_file, client_ca_file=pki.ca.cert_file
    ) as (csms, url):
        security = {
            "profile": 3,
            "ca_file": pki.ca.cert_file,
            "client_cert_file": client.cert_file,
            "client_key_file": client.key_file,
        }
        async with agent_for_interop(tmp_path / "agent", url, security=security):
            connected = await csms.wait_for_station(AGENT_ID)
            assert connected["tls"] is True
            assert connected["client_cn"] == AGENT_ID
            assert connected["had_password"] is False
            await csms.wait_for_call("BootNotification", identity=AGENT_ID)
        await csms.expect_no_strict_violations(origin=None)


async def test_a02_a_csms_certificate_from_another_ca_is_refused(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    async with interop_csms_tls(
        pki.server.cert_file, pki.server.key_file, password=AGENT_PASSWORD
    ) as (csms, url):
        security = {
            "profile": 2,
            "basic_auth_password": AGENT_PASSWORD,
            "ca_file": pki.other_ca.cert_file,
        }
        with pytest.raises(AssertionError, match="never came online"):
            async with agent_for_interop(
                tmp_path / "agent", url, online_within_s=2.0, security=security
            ):
                pass  # pragma: no cover - the agent must not get online
        assert not [e for e in csms.events if e.get("event") == "station_connected"]


async def test_agent_reconnects_after_the_csms_closes_the_socket(rig: Rig) -> None:
    """The third-party CSMS drops the connection: the agent reconnects without a new boot
    (it was not reset) and answers again."""
    csms = rig.csms
    boots = len(csms.received_calls("BootNotification", AGENT_ID))
    since = len(csms.events)
    await csms.disconnect(AGENT_ID)
    await csms.wait_event("station_connected", since=since, identity=AGENT_ID, timeout_s=10)
    await eventually(lambda: rig.running.agent.online, within_s=5)
    got = await rig.call(
        "GetVariables", {"getVariableData": [variable("OCPPCommCtrlr", "HeartbeatInterval")]}
    )
    assert got.result["getVariableResult"][0]["attributeStatus"] == "Accepted"
    assert len(csms.received_calls("BootNotification", AGENT_ID)) == boots


TRIGGERABLE_BY_SPEC = (
    "BootNotification",
    "LogStatusNotification",
    "FirmwareStatusNotification",
    "Heartbeat",
    "MeterValues",
    "SignChargingStationCertificate",
    "StatusNotification",
    "TransactionEvent",
    "SignCombinedCertificate",
    "SignV2GCertificate",
    "PublishFirmwareStatusNotification",
)


async def test_f06_every_trigger_value_gets_a_valid_answer_and_follow_up(rig: Rig) -> None:
    """TriggerMessage with every MessageTriggerEnum value of 2.0.1: a valid answer; when
    Accepted, the requested message follows (strict-valid, checked at teardown)."""
    csms = rig.csms
    rig.running.evse.plug_in()
    start = await rig.call(
        "RequestStartTransaction",
        {"idToken": {"idToken": "TRIG-1", "type": "Central"}, "remoteStartId": 3, "evseId": 1},
    )
    assert start.result["status"] == "Accepted"
    await csms.wait_for_call("TransactionEvent", identity=AGENT_ID)
    follow_up_action = {
        "SignChargingStationCertificate": "SignCertificate",
        "SignCombinedCertificate": "SignCertificate",
        "SignV2GCertificate": "SignCertificate",
    }
    statuses: dict[str, str] = {}
    for requested in TRIGGERABLE_BY_SPEC:
        since = len(csms.events)
        payload: dict[str, Any] = {"requestedMessage": requested}
        if requested in ("MeterValues", "TransactionEvent"):
            payload["evse"] = {"id": 1}
        outcome = await rig.call("TriggerMessage", payload)
        statuses[requested] = outcome.result["status"]
        if statuses[requested] == "Accepted":
            await csms.wait_event(
                "received_call",
                since=since,
                action=follow_up_action.get(requested, requested),
                identity=AGENT_ID,
            )
    assert set(statuses.values()) <= {"Accepted", "Rejected", "NotImplemented"}
    assert statuses["BootNotification"] == "Rejected"  # F06.FR.17: already Accepted
    for requested in ("Heartbeat", "MeterValues", "StatusNotification", "TransactionEvent"):
        assert statuses[requested] == "Accepted", (requested, statuses)
