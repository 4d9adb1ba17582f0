"""Tokens presented at the station (simulated RFID reader): authorization, local start and stop.

Agent.present_id_token against the test CSMS over a real websocket: Authorize online (C01),
local list / auth cache (C10/C13/C14, LocalPreAuthorize), offline rules (C12/C15), start per
TxStartPoint with the idToken in the TransactionEvent, stop by the same token (E07), and
StopTxOnInvalidId / MaxEnergyOnInvalidId when the CSMS rejects the token of a Started event.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

from ocpp.v201 import call

from tests.integration.test_agent_transactions import set_variable
from tests.support.agent_fakes import ManualClock
from tests.support.agent_harness import Harness, eventually, start_harness

CARD = {"id_token": "CARD-1", "type": "ISO14443"}


def started(h: Harness) -> list[dict[str, Any]]:
    return [e for e in h.csms.actions("TransactionEvent") if e["eventType"] == "Started"]


async def settled(h: Harness) -> None:
    """Everything the agent queued so far has reached the CSMS (instead of a fixed sleep, which
    passes vacuously on a slow machine): a TransactionEvent the last evaluation would have
    queued is visible to the assertion that follows."""
    await asyncio.wait_for(h.agent.drain(), 5)


def _periodic_energy_wh(event: dict[str, Any]) -> float:
    """The highest energy register value in a periodic TransactionEvent (-1 if none)."""
    if event.get("triggerReason") != "MeterValuePeriodic":
        return -1.0
    values = [
        float(sv["value"])
        for mv in event.get("meterValue", [])
        for sv in mv["sampledValue"]
        if sv.get("measurand", "Energy.Active.Import.Register") == "Energy.Active.Import.Register"
    ]
    return max(values, default=-1.0)


async def go_offline(h: Harness) -> None:
    await h.csms.stop()
    await eventually(lambda: not h.agent.online, message="agent still online")


async def send_local_list(h: Harness, token: str, status: str = "Accepted") -> None:
    result = await h.call(
        call.SendLocalList(
            version_number=1,
            update_type="Full",
            local_authorization_list=[
                {
                    "id_token": {"id_token": token, "type": "ISO14443"},
                    "id_token_info": {"status": status},
                }
            ],
        )
    )
    assert result.status == "Accepted"


async def test_c01_online_authorize_then_start_with_id_token(tmp_path: Path) -> None:
    h = await start_harness(tmp_path)
    try:
        h.evse.plug_in()
        assert await h.agent.present_id_token(1, CARD) == "Accepted"
        authorize = await h.csms.wait_for("Authorize")
        assert authorize[0]["idToken"] == {"idToken": "CARD-1", "type": "ISO14443"}
        event = (await h.csms.wait_for("TransactionEvent", lambda e: e["eventType"] == "Started"))[
            0
        ]
        # Default TxStartPoint PowerPathClosed: plugged + authorized.
        assert event["idToken"] == {"idToken": "CARD-1", "type": "ISO14443"}
        assert event["triggerReason"] == "Authorized"
        await eventually(lambda: h.evse.allowed, message="energy not allowed")
    finally:
        await h.close()


async def test_c01_token_presented_before_plug_in_starts_at_plug_in(tmp_path: Path) -> None:
    h = await start_harness(tmp_path)
    try:
        # camelCase IdTokenType (as a reader driver might pass it) is accepted too.
        assert await h.agent.present_id_token(1, {"idToken": "CARD-1", "type": "ISO14443"}) == (
            "Accepted"
        )
        # The token was evaluated (Authorize answered) and all it queued delivered.
        await h.csms.wait_for("Authorize")
        await settled(h)
        assert started(h) == []  # PowerPathClosed needs the EV too
        h.evse.plug_in()
        event = (await h.csms.wait_for("TransactionEvent", lambda e: e["eventType"] == "Started"))[
            0
        ]
        assert event["idToken"]["idToken"] == "CARD-1"
        assert event["triggerReason"] == "CablePluggedIn"
    finally:
        await h.close()


async def test_c01_blocked_token_starts_nothing(tmp_path: Path) -> None:
    h = await start_harness(tmp_path)
    try:
        h.evse.plug_in()
        status = await h.agent.present_id_token(1, {"id_token": "BLOCKED-7", "type": "ISO14443"})
        assert status == "Blocked"
        await h.csms.wait_for("Authorize")
        await settled(h)
        assert h.csms.actions("TransactionEvent") == []
        assert not h.evse.allowed
    finally:
        await h.close()


async def test_e07_same_token_stops_its_transaction_locally(tmp_path: Path) -> None:
    h = await start_harness(tmp_path)
    try:
        h.evse.plug_in()
        assert await h.agent.present_id_token(1, CARD) == "Accepted"
        start = (await h.csms.wait_for("TransactionEvent", lambda e: e["eventType"] == "Started"))[
            0
        ]
        authorizes = len(h.csms.actions("Authorize"))
        assert await h.agent.present_id_token(1, CARD) == "Accepted"
        ended = (await h.csms.wait_for("TransactionEvent", lambda e: e["eventType"] == "Ended"))[0]
        assert (
            ended["transactionInfo"]["transactionId"] == start["transactionInfo"]["transactionId"]
        )
        assert ended["transactionInfo"]["stoppedReason"] == "Local"
        assert ended["triggerReason"] == "StopAuthorized"
        assert len(h.csms.actions("Authorize")) == authorizes  # no Authorize needed to stop
        await eventually(lambda: not h.evse.allowed, message="energy still allowed")
    finally:
        await h.close()


async def test_c09_other_token_of_same_group_stops_transaction(tmp_path: Path) -> None:
    h = await start_harness(tmp_path)
    group = {"id_token": "FLEET-A", "type": "Central"}
    h.csms.authorize_answers["CARD-1"] = {"status": "Accepted", "group_id_token": group}
    h.csms.authorize_answers["CARD-2"] = {"status": "Accepted", "group_id_token": group}
    h.csms.authorize_answers["CARD-3"] = {"status": "Accepted"}
    try:
        h.evse.plug_in()
        assert await h.agent.present_id_token(1, CARD) == "Accepted"
        await h.csms.wait_for("TransactionEvent", lambda e: e["eventType"] == "Started")
        outsider = {"id_token": "CARD-3", "type": "ISO14443"}
        assert await h.agent.present_id_token(1, outsider) == "NotAtThisTime"
        colleague = {"id_token": "CARD-2", "type": "ISO14443"}
        assert await h.agent.present_id_token(1, colleague) == "Accepted"
        ended = (await h.csms.wait_for("TransactionEvent", lambda e: e["eventType"] == "Ended"))[0]
        assert ended["transactionInfo"]["stoppedReason"] == "Local"
    finally:
        await h.close()


async def test_c01_token_in_use_on_other_evse_is_concurrent_tx(tmp_path: Path) -> None:
    h = await start_harness(tmp_path, evse_count=2)
    try:
        h.evses[1].plug_in()
        assert await h.agent.present_id_token(1, CARD) == "Accepted"
        assert await h.agent.present_id_token(2, CARD) == "ConcurrentTx"
        assert h.agent.transactions.evses[2].id_token is None
    finally:
        await h.close()


async def test_e03_token_after_tx_started_on_ev_connected_is_reported_in_updated(
    tmp_path: Path,
) -> None:
    h = await start_harness(tmp_path)
    try:
        await set_variable(h, "TxCtrlr", "TxStartPoint", "EVConnected")
        h.evse.plug_in()
        first = (await h.csms.wait_for("TransactionEvent", lambda e: e["eventType"] == "Started"))[
            0
        ]
        assert "idToken" not in first
        assert not h.evse.allowed
        assert await h.agent.present_id_token(1, CARD) == "Accepted"
        updated = (
            await h.csms.wait_for("TransactionEvent", lambda e: e["triggerReason"] == "Authorized")
        )[0]
        assert updated["eventType"] == "Updated"
        assert updated["idToken"]["idToken"] == "CARD-1"
        assert (
            updated["transactionInfo"]["transactionId"] == first["transactionInfo"]["transactionId"]
        )
        await eventually(lambda: h.evse.allowed, message="energy not allowed")
    finally:
        await h.close()


async def test_c10_auth_cache_with_local_pre_authorize_skips_authorize(tmp_path: Path) -> None:
    h = await start_harness(tmp_path)
    try:
        assert await h.agent.present_id_token(1, CARD) == "Accepted"  # online: cached
        assert await h.agent.present_id_token(1, CARD) == "Accepted"  # withdraws it
        assert len(h.csms.actions("Authorize")) == 1
        await set_variable(h, "AuthCtrlr", "LocalPreAuthorize", "true")
        h.evse.plug_in()
        assert await h.agent.present_id_token(1, CARD) == "Accepted"
        await h.csms.wait_for("TransactionEvent", lambda e: e["eventType"] == "Started")
        assert len(h.csms.actions("Authorize")) == 1  # answered from the cache
    finally:
        await h.close()


async def test_c10_without_local_pre_authorize_the_csms_decides(tmp_path: Path) -> None:
    h = await start_harness(tmp_path)
    try:
        assert await h.agent.present_id_token(1, CARD) == "Accepted"
        assert await h.agent.present_id_token(1, CARD) == "Accepted"
        h.csms.authorize_answers["CARD-1"] = {"status": "Expired"}
        assert await h.agent.present_id_token(1, CARD) == "Expired"
        assert len(h.csms.actions("Authorize")) == 2
        # The cache follows the CSMS's latest answer.
        cached = h.agent.storage.cache_get("CARD-1", "ISO14443")
        assert cached is not None and cached["status"] == "Expired"
    finally:
        await h.close()


async def test_c13_local_list_with_local_pre_authorize(tmp_path: Path) -> None:
    h = await start_harness(tmp_path)
    try:
        await send_local_list(h, "LIST-1")
        await set_variable(h, "AuthCtrlr", "LocalPreAuthorize", "true")
        h.evse.plug_in()
        token = {"id_token": "LIST-1", "type": "ISO14443"}
        assert await h.agent.present_id_token(1, token) == "Accepted"
        await h.csms.wait_for("TransactionEvent", lambda e: e["eventType"] == "Started")
        assert h.csms.actions("Authorize") == []
    finally:
        await h.close()


async def test_c12_offline_local_list_token_starts_offline_transaction(tmp_path: Path) -> None:
    h = await start_harness(tmp_path)
    try:
        await send_local_list(h, "LIST-1")
        await send_local_list(h, "LIST-1")
        await go_offline(h)
        h.evse.plug_in()
        token = {"id_token": "LIST-1", "type": "ISO14443"}
        assert await h.agent.present_id_token(1, token) == "Accepted"
        await eventually(lambda: len(h.agent.outbox) >= 1, message="nothing queued")
        queued = [m.payload for m in h.agent.storage.pending() if m.action == "TransactionEvent"]
        assert queued[0]["event_type"] == "Started"
        assert queued[0]["offline"] is True
        assert queued[0]["id_token"]["id_token"] == "LIST-1"
        assert h.evse.allowed
    finally:
        await h.close()


async def test_c12_offline_unknown_token_refused(tmp_path: Path) -> None:
    h = await start_harness(tmp_path)
    try:
        await go_offline(h)
        h.evse.plug_in()
        assert await h.agent.present_id_token(1, CARD) == "Unknown"
        assert h.agent.transactions.evses[1].tx_id is None
        assert not h.evse.allowed
    finally:
        await h.close()


async def test_c12_local_authorize_offline_false_refuses_listed_token(tmp_path: Path) -> None:
    h = await start_harness(tmp_path)
    try:
        await send_local_list(h, "LIST-1")
        await set_variable(h, "AuthCtrlr", "LocalAuthorizeOffline", "false")
        await go_offline(h)
        h.evse.plug_in()
        token = {"id_token": "LIST-1", "type": "ISO14443"}
        assert await h.agent.present_id_token(1, token) == "Unknown"
        assert h.agent.transactions.evses[1].tx_id is None
    finally:
        await h.close()


async def test_c12_offline_blocked_in_local_list_is_blocked(tmp_path: Path) -> None:
    h = await start_harness(tmp_path)
    try:
        await send_local_list(h, "LIST-9", status="Blocked")
        await go_offline(h)
        token = {"id_token": "LIST-9", "type": "ISO14443"}
        assert await h.agent.present_id_token(1, token) == "Blocked"
    finally:
        await h.close()


async def test_c15_offline_unknown_token_then_csms_invalidates_stop_tx_on_invalid_id(
    tmp_path: Path,
) -> None:
    h = await start_harness(tmp_path)
    try:
        await set_variable(h, "AuthCtrlr", "OfflineTxForUnknownIdEnabled", "true")
        await go_offline(h)
        h.evse.plug_in()
        await eventually(lambda: h.agent.transactions.evses[1].plugged)
        assert await h.agent.present_id_token(1, CARD) == "Accepted"
        assert h.agent.transactions.evses[1].tx_id is not None
        h.csms.tx_token_status["CARD-1"] = "Invalid"
        await h.csms.start(port=h.csms.port)
        ended = (
            await h.csms.wait_for(
                "TransactionEvent", lambda e: e["eventType"] == "Ended", within_s=10
            )
        )[0]
        assert ended["triggerReason"] == "Deauthorized"
        assert ended["transactionInfo"]["stoppedReason"] == "DeAuthorized"
        await eventually(lambda: not h.evse.allowed, message="energy still allowed")
        cached = h.agent.storage.cache_get("CARD-1", "ISO14443")
        assert cached is not None and cached["status"] == "Invalid"
    finally:
        await h.close()


async def test_e05_max_energy_on_invalid_id_suspends_but_keeps_transaction(
    tmp_path: Path,
) -> None:
    h = await start_harness(tmp_path)
    try:
        await set_variable(h, "TxCtrlr", "StopTxOnInvalidId", "false")
        await set_variable(h, "TxCtrlr", "MaxEnergyOnInvalidId", "500")
        await set_variable(h, "SampledDataCtrlr", "TxUpdatedInterval", "1")
        h.csms.tx_token_status["CARD-1"] = "Invalid"
        h.evse.add_energy(import_wh=10_000.0)  # the register's value before this transaction
        h.evse.plug_in()
        assert await h.agent.present_id_token(1, CARD) == "Accepted"
        await eventually(
            lambda: h.agent.transactions.evses[1].invalid_energy_cap_wh is not None,
            message="Started not answered",
        )
        assert h.evse.allowed  # 500 Wh still allowed
        h.evse.add_energy(import_wh=300.0)
        # Wait for a periodic sample that saw the 300 Wh (each sample checks the cap first).
        await h.csms.wait_for("TransactionEvent", lambda e: _periodic_energy_wh(e) >= 10_300.0)
        assert h.evse.allowed  # 300 of 500 Wh delivered in this transaction
        h.evse.add_energy(import_wh=300.0)
        await eventually(lambda: not h.evse.allowed, message="energy not suspended")
        # The fake reports the EV as merely connected once energy is withheld.
        stopped = await h.csms.wait_for(
            "TransactionEvent",
            lambda e: (
                e["triggerReason"] == "ChargingStateChanged"
                and e["transactionInfo"].get("chargingState") == "EVConnected"
            ),
        )
        assert stopped[0]["eventType"] == "Updated"
        assert h.agent.transactions.evses[1].tx_id is not None  # not ended
        assert [e for e in h.csms.actions("TransactionEvent") if e["eventType"] == "Ended"] == []
    finally:
        await h.close()


async def test_e03_ev_connection_timeout_withdraws_local_authorization(tmp_path: Path) -> None:
    h = await start_harness(tmp_path, manual_clock=True)
    try:
        await set_variable(h, "TxCtrlr", "EVConnectionTimeOut", "30")
        assert await h.agent.present_id_token(1, CARD) == "Accepted"
        clock = h.clock
        assert isinstance(clock, ManualClock)
        deadline = clock.now() + timedelta(seconds=30)
        await eventually(lambda: deadline in clock.sleepers(), message="no timer")
        clock.advance(29)
        await asyncio.sleep(0.05)
        assert h.agent.transactions.evses[1].id_token is not None
        clock.advance(2)
        await eventually(
            lambda: h.agent.transactions.evses[1].id_token is None,
            message="authorization did not lapse",
        )
        h.evse.plug_in()
        await eventually(lambda: h.agent.transactions.evses[1].plugged, message="plug not seen")
        await settled(h)
        assert started(h) == []
    finally:
        await h.close()


async def test_e05_remote_started_token_unknown_to_csms_keeps_running(tmp_path: Path) -> None:
    h = await start_harness(tmp_path)
    h.csms.tx_token_status["REMOTE-1"] = "Unknown"
    h.csms.tx_token_status["REMOTE-2"] = "Blocked"
    try:
        h.evse.plug_in()
        await eventually(lambda: h.agent.transactions.evses[1].plugged)
        result = await h.call(
            call.RequestStartTransaction(
                id_token={"id_token": "REMOTE-1", "type": "Central"}, remote_start_id=1, evse_id=1
            )
        )
        assert result.status == "Accepted"
        await h.csms.wait_for("TransactionEvent", lambda e: e["eventType"] == "Started")
        await asyncio.wait_for(h.agent.drain(), 5)
        await asyncio.sleep(0.1)
        assert h.agent.transactions.evses[1].tx_id is not None
        assert h.evse.allowed
        # A refusal (not mere ignorance) of a remote-start token still stops it.
        h.agent.transactions.remote_stop(str(h.agent.transactions.evses[1].tx_id))
        await h.csms.wait_for("TransactionEvent", lambda e: e["eventType"] == "Ended")
        result = await h.call(
            call.RequestStartTransaction(
                id_token={"id_token": "REMOTE-2", "type": "Central"}, remote_start_id=2, evse_id=1
            )
        )
        assert result.status == "Accepted"
        ended = await h.csms.wait_for(
            "TransactionEvent", lambda e: e["eventType"] == "Ended", count=2
        )
        assert ended[1]["transactionInfo"]["stoppedReason"] == "DeAuthorized"
    finally:
        await h.close()


async def test_i02_cost_updated_kept_for_the_running_transaction(tmp_path: Path) -> None:
    h = await start_harness(tmp_path)
    try:
        h.evse.plug_in()
        assert await h.agent.present_id_token(1, CARD) == "Accepted"
        started = await h.csms.wait_for("TransactionEvent", lambda e: e["eventType"] == "Started")
        tx_id = started[0]["transactionInfo"]["transactionId"]
        await h.call(call.CostUpdated(total_cost=3.25, transaction_id=tx_id))
        assert h.agent.transactions.evses[1].running_cost == 3.25
        await h.call(call.CostUpdated(total_cost=9.0, transaction_id="not-here"))  # ignored
        assert h.agent.transactions.evses[1].running_cost == 3.25
    finally:
        await h.close()


async def test_c10_cache_entry_forgotten_after_life_time_without_use(tmp_path: Path) -> None:
    h = await start_harness(tmp_path, manual_clock=True)
    try:
        await set_variable(h, "AuthCacheCtrlr", "LifeTime", "3600")
        assert await h.agent.present_id_token(1, CARD) == "Accepted"  # online: cached
        assert await h.agent.present_id_token(1, CARD) == "Accepted"  # withdrawn
        await go_offline(h)
        clock = h.clock
        assert isinstance(clock, ManualClock)
        clock.advance(3000)
        assert await h.agent.present_id_token(1, CARD) == "Accepted"  # used: lifetime renewed
        assert await h.agent.present_id_token(1, CARD) == "Accepted"
        clock.advance(3000)  # 6000 s after caching, 3000 s after the last use
        assert await h.agent.present_id_token(1, CARD) == "Accepted"
        assert await h.agent.present_id_token(1, CARD) == "Accepted"
        clock.advance(3601)
        assert await h.agent.present_id_token(1, CARD) == "Unknown"
    finally:
        await h.close()
