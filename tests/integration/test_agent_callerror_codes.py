"""Issue 12 finding 1: any CALLERROR, known code or not (or malformed), is a failed attempt of
that message under the retry policy (E13); the connection stays up and later messages flow."""

from __future__ import annotations

from pathlib import Path

import pytest
from ocpp.exceptions import OCPPError
from ocpp.v201 import call

from tests.integration.test_agent_offline import set_attempt_variable
from tests.support.agent_harness import eventually, start_harness
from tests.support.agent_test_csms import MALFORMED_CALLERROR

CARD = {"id_token": "CARD-1", "type": "ISO14443"}

# Every OCPP-J 2.0.1 error code (section 4.3), an unknown one, and a CALLERROR too short to parse.
CODES = [
    "FormatViolation",
    "GenericError",
    "InternalError",
    "MessageTypeNotSupported",
    "NotImplemented",
    "NotSupported",
    "OccurrenceConstraintViolation",
    "OccurenceConstraintViolation",  # the 1.6 spelling some CSMSes still send
    "PropertyConstraintViolation",
    "ProtocolError",
    "RpcFrameworkError",
    "SecurityError",
    "TypeConstraintViolation",
    "Bogus",
]


@pytest.mark.parametrize("code", [*CODES, MALFORMED_CALLERROR])
async def test_finding1_transaction_event_callerror_is_a_failed_attempt(
    tmp_path: Path, code: str
) -> None:
    # A malformed CALLERROR cannot be matched to its CALL: it fails by the message timeout.
    h = await start_harness(
        tmp_path, transaction_message_retry_interval_s=0.3, message_timeout_s=0.5
    )
    try:
        await set_attempt_variable(h, "MessageAttempts", "2")
        h.csms.error_code = code
        h.csms.error_actions.add("TransactionEvent")
        connections = len(h.csms.connections)
        h.evse.plug_in()
        await eventually(lambda: h.agent.transactions.evses[1].plugged)
        assert await h.agent.present_id_token(1, CARD) == "Accepted"
        await eventually(
            lambda: h.agent.outbox.discarded == 1, within_s=10, message="Started not discarded"
        )
        events = [r for r in h.csms.received if r.action == "TransactionEvent"]
        assert events[0].payload["eventType"] == "Started"
        # MessageAttempts = 2: exactly two sends of the same message, then dropped (E13)
        assert len([r for r in events if r.message_id == events[0].message_id]) == 2
        # no reconnect, no resend storm
        assert len(h.csms.connections) == connections
        # later messages still flow on the same connection
        h.csms.error_actions.clear()
        h.evse.unplug()
        await h.csms.wait_for("TransactionEvent", lambda e: e["eventType"] == "Ended")
        await eventually(lambda: len(h.agent.outbox) == 0)
        assert h.agent.outbox.discarded == 1
        assert len(h.csms.connections) == connections
    finally:
        await h.close()


@pytest.mark.parametrize("code", ["RpcFrameworkError", "MessageTypeNotSupported", "Bogus"])
async def test_finding1_unknown_code_is_an_ocpp_error_and_keeps_the_connection(
    tmp_path: Path, code: str
) -> None:
    # Direct calls (Heartbeat, send_soon, Authorize...) see an OCPPError they already handle,
    # not the library's UnknownCallErrorCodeError that escaped every handler.
    h = await start_harness(tmp_path)
    try:
        h.csms.error_code = code
        h.csms.error_actions.add("Heartbeat")
        connections = len(h.csms.connections)
        with pytest.raises(OCPPError, match=code):
            await h.agent.send_call(call.Heartbeat())
        h.csms.error_actions.clear()
        await h.agent.send_call(call.Heartbeat())  # the same connection carries on
        assert len(h.csms.connections) == connections
    finally:
        await h.close()
