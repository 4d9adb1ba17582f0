"""Issue 12 findings 2 and 3: reconnect after Reset, and refused credentials."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from ocpp.v201 import call

from tests.integration.test_agent_transactions import start_remote
from tests.support.agent_harness import eventually, start_harness
from tests.support.agent_test_csms import AgentTestCsms

PASSWORD = "right-password-0123"
WRONG = "wrong-password-0123"


async def test_finding3_wrong_password_one_diagnosis_per_streak_and_keeps_going(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    h = await start_harness(
        tmp_path,
        csms=AgentTestCsms(password=PASSWORD),
        wait_online=False,
        security={"profile": 1, "basic_auth_password": WRONG},
        auth_failure_backoff_max_s=1.0,  # the floor, so the test sees several attempts
    )
    try:
        await eventually(
            lambda: sum("cannot connect" in r.getMessage() for r in caplog.records) >= 3,
            within_s=10,
            message="agent stopped retrying",
        )
        diagnoses = [r for r in caplog.records if "refused the credentials" in r.getMessage()]
        assert len(diagnoses) == 1  # once per streak, not per attempt
        text = diagnoses[0].getMessage()
        assert "CP-TEST-1" in text
        assert "security profile 1" in text and "BasicAuthPassword" in text
        assert all(WRONG not in r.getMessage() for r in caplog.records)
    finally:
        await h.close()


async def test_finding3_auth_failure_backoff_grows_to_its_cap(tmp_path: Path) -> None:
    h = await start_harness(tmp_path, start_agent=False, auth_failure_backoff_max_s=600.0)
    try:
        agent = h.agent
        assert agent.auth_failure_delay(0) <= 30.0
        assert 60.0 <= agent.auth_failure_delay(2) <= 120.0
        assert 300.0 <= agent.auth_failure_delay(5) <= 600.0
        assert agent.auth_failure_delay(10_000) <= 600.0  # bounded whatever the streak
        assert "HTTP 404" in (agent.handshake_diagnosis(404) or "")
        assert agent.handshake_diagnosis(500) is None
    finally:
        await h.close()


async def test_finding2_reset_reconnect_waits_a_jittered_delay(tmp_path: Path) -> None:
    h = await start_harness(
        tmp_path, start_agent=False, reset_reconnect_min_s=1.0, reset_reconnect_max_s=3.0
    )
    try:
        delays = [h.agent.reset_reconnect_delay() for _ in range(50)]
        assert all(1.0 <= d <= 3.0 for d in delays)
        assert (
            len(set(delays)) > 1
        )  # jittered, so stations reset together do not reconnect together
    finally:
        await h.close()


async def test_finding2_reset_waits_for_the_ended_answer_before_closing(tmp_path: Path) -> None:
    # The CSMS answers TransactionEvent after 500 ms: the socket must stay open until then, so
    # the Ended is delivered once (without the wait it was cut off and resent after reconnect).
    h = await start_harness(tmp_path)
    try:
        tx_id = await start_remote(h)
        connections = len(h.csms.connections)
        h.csms.answer_delay_s["TransactionEvent"] = 0.5
        assert (await h.call(call.Reset(type="Immediate"))).status == "Accepted"
        await h.csms.wait_for("BootNotification", count=2)
        ended = [
            r
            for r in h.csms.received
            if r.action == "TransactionEvent" and r.payload["eventType"] == "Ended"
        ]
        assert ended[0].payload["transactionInfo"]["transactionId"] == tx_id
        assert len(ended) == 1  # answered on the first connection, never resent
        assert len(h.csms.connections) == connections + 1
        assert h.agent.outbox.discarded == 0
    finally:
        await h.close()
