"""Property: the outbox delivers every queued message once, in order, whatever the CSMS does
(answers, times out, answers with a CALLERROR) and however often the agent restarts; a message
that fails ATTEMPTS times (timeouts and CALLERRORs alike, E13) is discarded, nothing else is."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from ocpp.exceptions import GenericError

from chargepoint_firmware.ocpp_edge.outbox import Outbox, SendQueued
from chargepoint_firmware.storage import AgentStorage, QueuedMessage

ATTEMPTS = 3


class ScriptDone(Exception):
    """The scripted CSMS has nothing more to say: stop this delivery run."""


async def deliver_until_idle(outbox: Outbox, send: SendQueued) -> None:
    """One connected period: deliver until the queue is empty or the script ends."""
    deliver = asyncio.ensure_future(
        outbox.deliver_forever(send, attempts=ATTEMPTS, retry_interval_s=0.0)
    )
    idle = asyncio.ensure_future(outbox.wait_empty())
    await asyncio.wait({deliver, idle}, return_when=asyncio.FIRST_COMPLETED)
    for task in (deliver, idle):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, ScriptDone):
            await task


@settings(max_examples=40, deadline=None)
@given(
    batches=st.lists(st.integers(min_value=0, max_value=5), min_size=1, max_size=5),
    outcomes=st.lists(st.sampled_from(["ok", "ok", "timeout", "error"]), max_size=40),
)
def test_outbox_delivers_in_order_exactly_once(batches: list[int], outcomes: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "agent.sqlite3"
        queued: list[int] = []
        answered: list[int] = []  # CALLRESULTs, in order
        errors: dict[int, int] = {}
        script = list(outcomes)
        counter = 0
        for batch in batches:  # each batch: a (re)started agent queues, then delivers
            storage = AgentStorage(db)
            outbox = Outbox(storage)
            for _ in range(batch):
                outbox.put("TransactionEvent", {"n": counter})
                queued.append(counter)
                counter += 1

            async def send(message: QueuedMessage) -> None:
                n = int(message.payload["n"])
                if not script:
                    raise ScriptDone
                outcome = script.pop(0)
                if outcome == "timeout":
                    errors[n] = errors.get(n, 0) + 1
                    raise TimeoutError
                if outcome == "error":
                    errors[n] = errors.get(n, 0) + 1
                    raise GenericError("scripted")
                answered.append(n)

            asyncio.run(deliver_until_idle(outbox, send))
            storage.close()  # the agent stops (or dies) here

        dropped = {n for n, count in errors.items() if count >= ATTEMPTS}
        remaining = [m.payload["n"] for m in AgentStorage(db).pending()]
        assert len(answered) == len(set(answered)), "a message was answered twice"
        assert answered == sorted(answered), "out of order"
        assert set(answered).isdisjoint(dropped)
        # Nothing lost: every queued message was answered, dropped after its attempts, or waits.
        assert sorted([*answered, *dropped, *remaining]) == queued
        assert remaining == sorted(remaining)
        if remaining:
            assert remaining[0] > max(answered, default=-1)
