"""Reservations (block H) against the test CSMS: ReserveNow, CancelReservation, use, expiry."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from ocpp.v201 import call

from chargepoint_firmware.ocpp_edge.timefmt import iso_ms
from tests.support.agent_fakes import ManualClock
from tests.support.agent_harness import Harness, eventually, start_harness

ALICE = {"id_token": "ALICE", "type": "ISO14443"}
BOB = {"id_token": "BOB", "type": "ISO14443"}


def expiry(h: Harness, seconds: float = 600) -> str:
    return iso_ms(h.clock.now() + timedelta(seconds=seconds))


async def reserve(
    h: Harness, reservation_id: int, evse_id: int | None, token: dict[str, str], **extra: object
) -> str:
    result = await h.call(
        call.ReserveNow(
            id=reservation_id,
            expiry_date_time=str(extra.pop("expiry", expiry(h))),
            id_token=token,
            evse_id=evse_id,
            **extra,
        )
    )
    return str(result.status)


def statuses(h: Harness, evse_id: int) -> list[str]:
    return [
        p["connectorStatus"] for p in h.csms.actions("StatusNotification") if p["evseId"] == evse_id
    ]


async def test_h01_reserve_now_marks_evse_reserved(tmp_path: Path) -> None:
    h = await start_harness(tmp_path)
    try:
        assert await reserve(h, 11, 1, ALICE) == "Accepted"
        await h.csms.wait_for("StatusNotification", lambda p: p["connectorStatus"] == "Reserved")
        assert h.agent.connector_status(1) == "Reserved"
        # The same EVSE cannot be reserved twice...
        assert await reserve(h, 12, 1, BOB) == "Occupied"
        # ...but the same reservation id replaces its reservation (H01.FR.02).
        assert await reserve(h, 11, 1, BOB) == "Accepted"
        assert [r.id_token["id_token"] for r in h.agent.reservations.all()] == ["BOB"]
    finally:
        await h.close()


async def test_h01_reserve_now_refused_for_occupied_faulted_unavailable(tmp_path: Path) -> None:
    h = await start_harness(tmp_path, evse_count=3)
    try:
        h.evses[1].plug_in()
        h.evses[2].trip("ground_fault")
        await eventually(
            lambda: h.agent.transactions.evses[1].plugged and h.agent.transactions.evses[2].faulted
        )
        answer = await h.call(
            call.ChangeAvailability(operational_status="Inoperative", evse={"id": 3})
        )
        assert answer.status == "Accepted"
        assert await reserve(h, 1, 1, ALICE) == "Occupied"
        assert await reserve(h, 2, 2, ALICE) == "Faulted"
        assert await reserve(h, 3, 3, ALICE) == "Unavailable"
        assert await reserve(h, 4, 9, ALICE) == "Rejected"  # no such EVSE
        assert await reserve(h, 5, None, ALICE) == "Occupied"  # no free EVSE at all
        assert await reserve(h, 6, 1, ALICE, connector_type="cCCS2") == "Rejected"
        assert h.agent.reservations.all() == []
    finally:
        await h.close()


async def test_h01_reservation_without_evse_takes_a_free_one(tmp_path: Path) -> None:
    h = await start_harness(tmp_path, evse_count=2)
    try:
        h.evses[1].plug_in()
        await eventually(lambda: h.agent.transactions.evses[1].plugged)
        assert await reserve(h, 7, None, ALICE) == "Accepted"
        assert h.agent.reservations.all()[0].evse_id == 2
    finally:
        await h.close()


async def test_h02_cancel_reservation(tmp_path: Path) -> None:
    h = await start_harness(tmp_path)
    try:
        assert await reserve(h, 21, 1, ALICE) == "Accepted"
        await h.csms.wait_for("StatusNotification", lambda p: p["connectorStatus"] == "Reserved")
        assert (await h.call(call.CancelReservation(reservation_id=21))).status == "Accepted"
        assert (await h.call(call.CancelReservation(reservation_id=21))).status == "Rejected"
        await eventually(lambda: statuses(h, 1)[-1] == "Available", message="not Available")
        assert h.agent.reservations.all() == []
    finally:
        await h.close()


async def test_h03_reserved_token_starts_with_reservation_id_others_refused(
    tmp_path: Path,
) -> None:
    h = await start_harness(tmp_path)
    try:
        assert await reserve(h, 31, 1, ALICE) == "Accepted"
        h.evse.plug_in()
        await eventually(lambda: h.agent.transactions.evses[1].plugged)
        assert await h.agent.present_id_token(1, BOB) == "NotAtThisTime"
        assert h.agent.transactions.evses[1].tx_id is None
        assert await h.agent.present_id_token(1, ALICE) == "Accepted"
        started = (
            await h.csms.wait_for("TransactionEvent", lambda e: e["eventType"] == "Started")
        )[0]
        assert started["reservationId"] == 31
        assert started["idToken"]["idToken"] == "ALICE"
        assert h.agent.reservations.all() == []  # used up
    finally:
        await h.close()


async def test_h03_group_token_may_use_the_reservation(tmp_path: Path) -> None:
    h = await start_harness(tmp_path)
    group = {"id_token": "FLEET", "type": "Central"}
    h.csms.authorize_answers["BOB"] = {"status": "Accepted", "group_id_token": group}
    try:
        assert await reserve(h, 32, 1, ALICE, group_id_token=group) == "Accepted"
        h.evse.plug_in()
        await eventually(lambda: h.agent.transactions.evses[1].plugged)
        assert await h.agent.present_id_token(1, BOB) == "Accepted"
        started = (
            await h.csms.wait_for("TransactionEvent", lambda e: e["eventType"] == "Started")
        )[0]
        assert started["reservationId"] == 32
    finally:
        await h.close()


async def test_h03_remote_start_on_reserved_evse(tmp_path: Path) -> None:
    h = await start_harness(tmp_path)
    try:
        assert await reserve(h, 33, 1, ALICE) == "Accepted"
        h.evse.plug_in()
        await eventually(lambda: h.agent.transactions.evses[1].plugged)
        refused = await h.call(
            call.RequestStartTransaction(id_token=BOB, remote_start_id=1, evse_id=1)
        )
        assert refused.status == "Rejected"
        accepted = await h.call(
            call.RequestStartTransaction(id_token=ALICE, remote_start_id=2, evse_id=1)
        )
        assert accepted.status == "Accepted"
        started = (
            await h.csms.wait_for("TransactionEvent", lambda e: e["eventType"] == "Started")
        )[0]
        assert started["reservationId"] == 33
    finally:
        await h.close()


async def test_h04_reservation_expires_with_status_update(tmp_path: Path) -> None:
    h = await start_harness(tmp_path, manual_clock=True)
    try:
        clock = h.clock
        assert isinstance(clock, ManualClock)
        assert await reserve(h, 41, 1, ALICE, expiry=expiry(h, 120)) == "Accepted"
        clock.advance(119)
        await asyncio.sleep(0.05)
        assert h.agent.reservations.all() != []
        clock.advance(1)
        update = (await h.csms.wait_for("ReservationStatusUpdate"))[0]
        assert update == {"reservationId": 41, "reservationUpdateStatus": "Expired"}
        await eventually(lambda: statuses(h, 1)[-1] == "Available", message="not Available")
    finally:
        await h.close()


async def test_h04_reservation_removed_when_evse_faults(tmp_path: Path) -> None:
    h = await start_harness(tmp_path)
    try:
        assert await reserve(h, 42, 1, ALICE) == "Accepted"
        h.evse.trip("emergency_stop")
        update = (await h.csms.wait_for("ReservationStatusUpdate"))[0]
        assert update == {"reservationId": 42, "reservationUpdateStatus": "Removed"}
        assert h.agent.reservations.all() == []
    finally:
        await h.close()


async def test_h01_reservation_survives_agent_restart(tmp_path: Path) -> None:
    h = await start_harness(tmp_path)
    assert await reserve(h, 51, 1, ALICE) == "Accepted"
    await h.stop_agent()
    h.agent.close()
    await h.csms.stop()
    h2 = await start_harness(tmp_path, csms=h.csms)
    try:
        assert [r.id for r in h2.agent.reservations.all()] == [51]
        await h2.csms.wait_for(
            "StatusNotification", lambda p: p["connectorStatus"] == "Reserved", count=2
        )
    finally:
        await h2.close()


async def test_h01_past_expiry_rejected(tmp_path: Path) -> None:
    h = await start_harness(tmp_path)
    try:
        assert await reserve(h, 61, 1, ALICE, expiry=expiry(h, -5)) == "Rejected"
    finally:
        await h.close()


async def test_h01_reservation_ctrlr_enabled_is_settable_over_ocpp(tmp_path: Path) -> None:
    h = await start_harness(tmp_path)
    try:
        component = {"name": "ReservationCtrlr"}
        got = await h.call(
            call.GetVariables(
                get_variable_data=[{"component": component, "variable": {"name": "Enabled"}}]
            )
        )
        assert got.get_variable_result[0]["attribute_status"] == "Accepted"
        set_result = await h.call(
            call.SetVariables(
                set_variable_data=[
                    {
                        "component": component,
                        "variable": {"name": "Enabled"},
                        "attribute_value": "false",
                    }
                ]
            )
        )
        assert set_result.set_variable_result[0]["attribute_status"] == "Accepted"
        assert await reserve(h, 21, 1, ALICE) == "Rejected"  # H01.FR.01: reservations disabled
    finally:
        await h.close()
