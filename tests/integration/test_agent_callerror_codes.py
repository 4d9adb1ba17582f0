"""Issue 12 finding 1: any CALLERROR, known code or not (or malformed), is a failed attempt of
that message under the retry policy (E13); the connection stays up and later messages flow."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from ocpp.exceptions import OCPPError
from ocpp.v201 import call

from tests.integration.test_agent_offline import set_attempt_variable
from tests.support.agent_harness import Harness, eventually, start_harness
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


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# Every message type the agent queues in its outbox (`Outbox.put` callers: transactions,
# aligned/idle MeterValues, NotifyEvent for hardware problems, SecurityEventNotification,
# ReservationStatusUpdate), each with a payload of the shape the agent stores (snake_case).
# StatusNotification is not queued (sent at once, not retried): the direct-call test above.
QUEUED: dict[str, Any] = {
    "TransactionEvent": lambda: {
        "event_type": "Updated",
        "timestamp": _now(),
        "trigger_reason": "MeterValuePeriodic",
        "seq_no": 0,
        "transaction_info": {"transaction_id": "tx-callerror"},
        "evse": {"id": 1, "connector_id": 1},
    },
    "MeterValues": lambda: {
        "evse_id": 1,
        "meter_value": [
            {
                "timestamp": _now(),
                "sampled_value": [{"value": 1.0, "measurand": "Energy.Active.Import.Register"}],
            }
        ],
    },
    "NotifyEvent": lambda: {
        "generated_at": _now(),
        "seq_no": 0,
        "event_data": [
            {
                "event_id": 1,
                "timestamp": _now(),
                "trigger": "Delta",
                "actual_value": "true",
                "tech_code": "fault",
                "tech_info": "test",
                "event_notification_type": "HardWiredNotification",
                "component": {"name": "EVSE", "evse": {"id": 1}},
                "variable": {"name": "Problem"},
            }
        ],
    },
    "SecurityEventNotification": lambda: {
        "type": "SettingSystemTime",
        "timestamp": _now(),
        "tech_info": "test",
    },
    "ReservationStatusUpdate": lambda: {
        "reservation_id": 1,
        "reservation_update_status": "Expired",
    },
}


def _queue(h: Harness, action: str) -> str:
    with h.agent.storage.atomic():
        return h.agent.outbox.put(action, QUEUED[action]())


@pytest.mark.parametrize("action", list(QUEUED))
async def test_finding1_every_code_to_every_queued_message_type_is_a_failed_attempt(
    tmp_path: Path, action: str
) -> None:
    """One agent and one CSMS per message type; every OCPP-J 2.0.1 code, an unknown one and a
    malformed CALLERROR in turn: each message is sent exactly MessageAttempts (2) times with the
    same message id, then discarded (E13); the connection is never dropped; afterwards a
    message of the same type is delivered normally."""
    # A malformed CALLERROR cannot be matched to its CALL: it fails by the message timeout.
    h = await start_harness(
        tmp_path,
        transaction_message_attempts=2,
        transaction_message_retry_interval_s=0.02,
        message_timeout_s=0.3,
    )
    try:
        connections = len(h.csms.connections)
        h.csms.error_actions.add(action)
        for number, code in enumerate([*CODES, MALFORMED_CALLERROR], start=1):
            h.csms.error_code = code
            message_id = _queue(h, action)
            await eventually(
                lambda n=number: h.agent.outbox.discarded == n,
                within_s=10,
                message=f"{action} answered {code}: not discarded",
            )
            sends = [r for r in h.csms.received if r.message_id == message_id]
            assert [r.action for r in sends] == [action, action], (code, sends)
            assert len(h.csms.connections) == connections, f"{action}/{code} reconnected"
        assert h.agent.online
        h.csms.error_actions.clear()
        delivered = h.agent.outbox.delivered
        message_id = _queue(h, action)
        await eventually(lambda: h.agent.outbox.delivered == delivered + 1, within_s=5)
        assert [r.action for r in h.csms.received if r.message_id == message_id] == [action]
        assert len(h.csms.connections) == connections
        assert len(h.agent.outbox) == 0
    finally:
        await h.close()


async def test_finding1_every_code_to_a_status_notification_keeps_the_connection(
    tmp_path: Path,
) -> None:
    """StatusNotification is sent at once, not queued (`send_soon`): a CALLERROR of any code
    is logged, nothing escapes its task, the connection stays and the next one is delivered."""
    h = await start_harness(tmp_path, message_timeout_s=0.3)
    try:
        connections = len(h.csms.connections)
        await h.csms.wait_for("StatusNotification")  # the one after boot, answered normally
        await asyncio.wait_for(h.agent.drain(), 5)
        h.csms.error_actions.add("StatusNotification")

        def status() -> call.StatusNotification:
            return call.StatusNotification(
                timestamp=_now(), connector_status="Available", evse_id=1, connector_id=1
            )

        for code in [*CODES, MALFORMED_CALLERROR]:
            h.csms.error_code = code
            sent = len(h.csms.actions("StatusNotification"))
            before = set(h.agent.link.tasks)
            h.agent.link.send_soon(status())
            spawned = h.agent.link.tasks - before
            assert len(spawned) == 1
            done, _ = await asyncio.wait(spawned, timeout=5)
            assert done == spawned, f"{code}: send task still running"
            task = spawned.pop()
            assert not task.cancelled() and task.exception() is None, (code, task)
            assert len(h.csms.actions("StatusNotification")) == sent + 1
            assert len(h.csms.connections) == connections, f"{code}: reconnected"
            assert h.agent.online
        h.csms.error_actions.clear()
        answered = await h.agent.send_call(status())
        assert answered is not None
        assert len(h.csms.connections) == connections
    finally:
        await h.close()
