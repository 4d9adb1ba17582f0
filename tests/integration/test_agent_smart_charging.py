"""Smart charging on the agent: K01 validation, durable profiles, setpoints at period boundaries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ocpp.v201 import call

from tests.integration.test_agent_transactions import set_variable, start_remote
from tests.support.agent_fakes import ManualClock
from tests.support.agent_harness import Harness, eventually, start_harness

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def tx_default_profile(periods: list[tuple[int, float]], profile_id: int = 1) -> dict[str, Any]:
    return {
        "id": profile_id,
        "stack_level": 0,
        "charging_profile_purpose": "TxDefaultProfile",
        "charging_profile_kind": "Absolute",
        "charging_schedule": [
            {
                "id": 1,
                "start_schedule": "2026-01-01T12:00:00.000Z",
                "charging_rate_unit": "W",
                "charging_schedule_period": [
                    {"start_period": start, "limit": limit} for start, limit in periods
                ],
            }
        ],
    }


def clock(h: Harness) -> ManualClock:
    assert isinstance(h.clock, ManualClock)
    return h.clock


async def test_k01_negative_limit_becomes_discharge_setpoint_at_the_boundary(
    tmp_path: Path,
) -> None:
    h = await start_harness(tmp_path, manual_clock=True)
    try:
        profile = tx_default_profile([(0, 7000.0), (600, -5000.0), (1200, 3000.0)])
        result = await h.call(call.SetChargingProfile(evse_id=1, charging_profile=profile))
        assert result.status == "Accepted"
        await eventually(lambda: any(sp.limit == 7000.0 for _, sp in h.evse.setpoints))
        at, first = h.evse.setpoints[-1]
        assert at == T0
        assert first.unit == "W"
        assert first.valid_until == T0 + timedelta(seconds=600)

        clock(h).advance(599.0)
        await eventually(lambda: T0 + timedelta(seconds=600) in clock(h).sleepers())
        assert h.evse.setpoints[-1][1].limit == 7000.0  # nothing changes before the boundary

        clock(h).advance(1.0)
        await eventually(lambda: h.evse.setpoints[-1][1].limit == -5000.0)
        at, discharge = h.evse.setpoints[-1]
        assert at == T0 + timedelta(seconds=600)  # exactly at the period boundary
        assert discharge.valid_until == T0 + timedelta(seconds=1200)

        composite = await h.call(
            call.GetCompositeSchedule(duration=1200, evse_id=1, charging_rate_unit="W")
        )
        assert composite.status == "Accepted"
        periods = composite.schedule["charging_schedule_period"]
        assert [(p["start_period"], p["limit"]) for p in periods] == [(0, -5000), (600, 3000)]

        clock(h).advance(600.0)
        await eventually(lambda: h.evse.setpoints[-1][1].limit == 3000.0)
        assert h.evse.setpoints[-1][0] == T0 + timedelta(seconds=1200)
        assert h.evse.setpoints[-1][1].valid_until is None
    finally:
        await h.close()


async def test_v2x_negative_limit_rejected_when_discharge_convention_is_off(
    tmp_path: Path,
) -> None:
    h = await start_harness(tmp_path, manual_clock=True)
    try:
        await set_variable(h, "V2XCtrlr", "NegativeLimitIsDischarge", "false")
        profile = tx_default_profile([(0, -5000.0)])
        result = await h.call(call.SetChargingProfile(evse_id=1, charging_profile=profile))
        assert result.status == "Rejected"
        assert result.status_info["reason_code"] == "InvalidValue"
        assert all(sp.limit is None for _, sp in h.evse.setpoints)
    finally:
        await h.close()


async def test_k01_fr31_first_start_period_must_be_zero_rejected(tmp_path: Path) -> None:
    h = await start_harness(tmp_path, manual_clock=True)
    try:
        profile = tx_default_profile([(60, 7000.0)])
        result = await h.call(call.SetChargingProfile(evse_id=1, charging_profile=profile))
        assert result.status == "Rejected"
        assert "K01.FR.31" in result.status_info["additional_info"]
    finally:
        await h.close()


async def test_k05_k09_get_and_clear_charging_profiles_survive_restart(tmp_path: Path) -> None:
    h = await start_harness(tmp_path, manual_clock=True)
    try:
        profile = tx_default_profile([(0, 11000.0)], profile_id=42)
        result = await h.call(call.SetChargingProfile(evse_id=1, charging_profile=profile))
        assert result.status == "Accepted"
        # The profile is durable: a restarted agent publishes the same setpoint.
        await h.stop_agent()
        h.agent.close()
        from chargepoint_firmware.wiring import build_agent

        h.agent = build_agent(h.agent.settings, h.evses, clock=h.clock)
        h.evse.setpoints.clear()
        h.start_agent()
        await eventually(lambda: h.agent.online)
        await eventually(lambda: any(sp.limit == 11000.0 for _, sp in h.evse.setpoints))

        got = await h.call(
            call.GetChargingProfiles(request_id=5, charging_profile={"stack_level": 0})
        )
        assert got.status == "Accepted"
        reports = await h.csms.wait_for("ReportChargingProfiles")
        assert reports[0]["requestId"] == 5
        assert reports[0]["evseId"] == 1
        assert reports[0]["chargingLimitSource"] == "CSO"
        assert reports[0]["chargingProfile"][0]["id"] == 42
        count = await h.call(
            call.GetVariables(
                get_variable_data=[
                    {
                        "component": {"name": "SmartChargingCtrlr"},
                        "variable": {"name": "Entries", "instance": "ChargingProfiles"},
                    }
                ]
            )
        )
        assert count.get_variable_result[0]["attribute_value"] == "1"
        none = await h.call(
            call.GetChargingProfiles(request_id=6, charging_profile={"stack_level": 3})
        )
        assert none.status == "NoProfiles"

        cleared = await h.call(call.ClearChargingProfile(charging_profile_id=42))
        assert cleared.status == "Accepted"
        await eventually(lambda: h.evse.setpoints[-1][1].limit is None)
        again = await h.call(call.ClearChargingProfile(charging_profile_id=42))
        assert again.status == "Unknown"
    finally:
        await h.close()


async def test_f01_request_start_with_tx_profile_installs_it_for_the_transaction(
    tmp_path: Path,
) -> None:
    h = await start_harness(tmp_path)
    try:
        h.evse.plug_in()
        await h.csms.wait_for("StatusNotification", lambda p: p["connectorStatus"] == "Occupied")
        profile = {
            "id": 77,
            "stack_level": 1,
            "charging_profile_purpose": "TxProfile",
            "charging_profile_kind": "Relative",
            "charging_schedule": [
                {
                    "id": 1,
                    "charging_rate_unit": "A",
                    "charging_schedule_period": [{"start_period": 0, "limit": -20.0}],
                }
            ],
        }
        result = await h.call(
            call.RequestStartTransaction(
                id_token={"id_token": "V2G", "type": "Central"},
                remote_start_id=3,
                evse_id=1,
                charging_profile=profile,
            )
        )
        assert result.status == "Accepted"
        started = await h.csms.wait_for("TransactionEvent", lambda e: e["eventType"] == "Started")
        tx_id = started[0]["transactionInfo"]["transactionId"]
        await eventually(lambda: bool(h.evse.setpoints) and h.evse.setpoints[-1][1].limit == -20.0)
        assert h.evse.setpoints[-1][1].unit == "A"
        got = await h.call(
            call.GetChargingProfiles(
                request_id=8, charging_profile={"charging_profile_purpose": "TxProfile"}
            )
        )
        assert got.status == "Accepted"
        reports = await h.csms.wait_for("ReportChargingProfiles")
        assert reports[0]["chargingProfile"][0]["transactionId"] == tx_id
        await h.call(call.RequestStopTransaction(transaction_id=tx_id))
        await h.csms.wait_for("TransactionEvent", lambda e: e["eventType"] == "Ended")
        # The TxProfile applied to that transaction only.
        await eventually(lambda: h.evse.setpoints[-1][1].limit is None)
        assert h.agent.smart.store.installed(77) is None
    finally:
        await h.close()


async def test_k01_tx_profile_without_transaction_rejected(tmp_path: Path) -> None:
    h = await start_harness(tmp_path)
    try:
        await start_remote(h)
        profile = tx_default_profile([(0, 5000.0)], profile_id=9)
        profile["charging_profile_purpose"] = "TxProfile"
        profile["transaction_id"] = "not-running"
        result = await h.call(call.SetChargingProfile(evse_id=1, charging_profile=profile))
        assert result.status == "Rejected"
        assert result.status_info["reason_code"] == "TxNotFound"
    finally:
        await h.close()


async def test_v2x_emergency_backup_data_transfer_holds_discharge(tmp_path: Path) -> None:
    from chargepoint_firmware.blocks.smart_charging.v2x_local import (
        BACKUP_MESSAGE_ID,
        BACKUP_VENDOR_ID,
    )

    h = await start_harness(tmp_path, manual_clock=True)
    try:
        profile = tx_default_profile([(0, -5000.0)])
        assert (
            await h.call(call.SetChargingProfile(evse_id=1, charging_profile=profile))
        ).status == "Accepted"
        await eventually(lambda: h.evse.setpoints[-1][1].limit == -5000.0)
        on = await h.call(
            call.DataTransfer(
                vendor_id=BACKUP_VENDOR_ID, message_id=BACKUP_MESSAGE_ID, data='{"enabled": true}'
            )
        )
        assert on.status == "Accepted"
        await eventually(lambda: h.evse.setpoints[-1][1].limit == 0.0)
        assert h.evse.setpoints[-1][1].source == "emergency_backup"
        off = await h.call(
            call.DataTransfer(
                vendor_id=BACKUP_VENDOR_ID, message_id=BACKUP_MESSAGE_ID, data='{"enabled": false}'
            )
        )
        assert off.status == "Accepted"
        await eventually(lambda: h.evse.setpoints[-1][1].limit == -5000.0)
        unknown = await h.call(call.DataTransfer(vendor_id=BACKUP_VENDOR_ID, message_id="Nope"))
        assert unknown.status == "UnknownMessageId"
    finally:
        await h.close()
