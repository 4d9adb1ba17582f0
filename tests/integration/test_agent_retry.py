"""Retry policy from the device model: TransactionEvent attempts and intervals (E13), reconnect
back-off (OCPPCommCtrlr.RetryBackOff*), with explicit settings as a local override."""

from __future__ import annotations

import random
from pathlib import Path

from tests.integration.test_agent_offline import set_attempt_variable
from tests.integration.test_agent_transactions import set_variable
from tests.support.agent_harness import eventually, start_harness

CARD = {"id_token": "CARD-1", "type": "ISO14443"}


async def test_e13_callerror_resent_message_attempts_times_then_discarded(tmp_path: Path) -> None:
    # A retry wait long enough that the next message's second attempt comes after the CSMS
    # recovers (below), however slow the machine.
    h = await start_harness(tmp_path, transaction_message_retry_interval_s=0.5)
    try:
        await set_attempt_variable(h, "MessageAttempts", "2")
        h.csms.error_actions.add("TransactionEvent")
        h.evse.plug_in()
        await eventually(lambda: h.agent.transactions.evses[1].plugged)
        assert await h.agent.present_id_token(1, CARD) == "Accepted"
        await eventually(lambda: h.agent.outbox.discarded == 1, message="Started not discarded")
        events = [r for r in h.csms.received if r.action == "TransactionEvent"]
        assert events[0].payload["eventType"] == "Started"
        sends = [r for r in events if r.message_id == events[0].message_id]
        assert len(sends) == 2  # MessageAttempts = 2, a resend is the same message
        # Delivery goes on with the next message once the CSMS can process again.
        h.csms.error_actions.clear()
        h.evse.unplug()
        await h.csms.wait_for("TransactionEvent", lambda e: e["eventType"] == "Ended")
        await eventually(lambda: len(h.agent.outbox) == 0)
        assert h.agent.outbox.discarded == 1
    finally:
        await h.close()


async def test_e13_no_answer_counts_as_a_failed_attempt(tmp_path: Path) -> None:
    h = await start_harness(tmp_path, message_timeout_s=0.2)
    try:
        await set_attempt_variable(h, "MessageAttempts", "3")
        h.csms.silent_actions.add("TransactionEvent")
        h.evse.plug_in()
        await eventually(lambda: h.agent.transactions.evses[1].plugged)
        assert await h.agent.present_id_token(1, CARD) == "Accepted"
        await eventually(
            lambda: h.agent.outbox.discarded == 1, within_s=10, message="not discarded"
        )
        events = [r for r in h.csms.received if r.action == "TransactionEvent"]
        assert events[0].payload["eventType"] == "Started"
        assert len([r for r in events if r.message_id == events[0].message_id]) == 3
    finally:
        await h.close()


async def test_e13_attempts_and_interval_follow_the_device_model(tmp_path: Path) -> None:
    # No explicit retry settings: the device model (which the CSMS sets) decides.
    h = await start_harness(
        tmp_path, transaction_message_retry_interval_s=None, transaction_message_attempts=None
    )
    try:
        assert h.agent.message_attempts() == 3  # OCPP default in the device model
        assert h.agent.message_attempt_interval_s() == 60.0
        await set_attempt_variable(h, "MessageAttempts", "5")
        await set_attempt_variable(h, "MessageAttemptInterval", "7")
        assert h.agent.message_attempts() == 5
        assert h.agent.message_attempt_interval_s() == 7.0
    finally:
        await h.close()


async def test_e13_explicit_settings_override_the_device_model(tmp_path: Path) -> None:
    h = await start_harness(
        tmp_path, transaction_message_retry_interval_s=0.5, transaction_message_attempts=9
    )
    try:
        await set_attempt_variable(h, "MessageAttempts", "5")
        assert h.agent.message_attempts() == 9
        assert h.agent.message_attempt_interval_s() == 0.5
    finally:
        await h.close()


async def test_b_reconnect_back_off_follows_retry_back_off_variables(tmp_path: Path) -> None:
    h = await start_harness(tmp_path, reconnect_min_s=None, reconnect_max_s=None)
    try:
        await set_variable(h, "OCPPCommCtrlr", "RetryBackOffWaitMinimum", "4")
        await set_variable(h, "OCPPCommCtrlr", "RetryBackOffRandomRange", "2")
        await set_variable(h, "OCPPCommCtrlr", "RetryBackOffRepeatTimes", "3")
        h.agent._rng = random.Random(1)
        first = [h.agent.reconnect_delay(0) for _ in range(50)]
        assert all(4.0 <= d <= 6.0 for d in first)
        assert max(first) - min(first) > 0.5  # the random part is there
        assert all(8.0 <= h.agent.reconnect_delay(1) <= 10.0 for _ in range(20))
        # Doubling stops after RetryBackOffRepeatTimes: 4 * 2**3 = 32 s (+ up to 2 s).
        assert all(32.0 <= h.agent.reconnect_delay(k) <= 34.0 for k in (3, 4, 10, 100))
    finally:
        await h.close()


async def test_b_explicit_reconnect_settings_override_retry_back_off(tmp_path: Path) -> None:
    h = await start_harness(tmp_path, reconnect_min_s=0.05, reconnect_max_s=0.2)
    try:
        await set_variable(h, "OCPPCommCtrlr", "RetryBackOffWaitMinimum", "30")
        assert all(h.agent.reconnect_delay(k) <= 0.2 for k in range(10))
    finally:
        await h.close()
