"""Pure retry arithmetic: E13 resend waits of the outbox, RetryBackOff reconnect delays."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from ocpp.exceptions import InternalError

from chargepoint_firmware.ocpp_edge.connection import retry_backoff_delay
from chargepoint_firmware.ocpp_edge.outbox import Outbox
from chargepoint_firmware.storage import AgentStorage, QueuedMessage


def test_e13_resend_waits_grow_with_attempts_then_message_discarded(tmp_path: Path) -> None:
    storage = AgentStorage(tmp_path / "agent.sqlite3")
    waits: list[float] = []

    async def record_sleep(seconds: float) -> None:
        waits.append(seconds)

    outbox = Outbox(storage, sleep=record_sleep)
    outbox.put("TransactionEvent", {"n": 1})
    outbox.put("TransactionEvent", {"n": 2})
    sent: list[int] = []

    async def send(message: QueuedMessage) -> None:
        sent.append(int(message.payload["n"]))
        if message.payload["n"] == 1:
            raise InternalError("scripted")

    async def run() -> None:
        task = asyncio.ensure_future(
            outbox.deliver_forever(send, attempts=lambda: 4, retry_interval_s=lambda: 2.5)
        )
        await asyncio.wait_for(outbox.wait_empty(), 2)
        task.cancel()

    asyncio.run(run())
    storage.close()
    # MessageAttemptInterval x attempts so far, between the 4 attempts.
    assert waits == [2.5, 5.0, 7.5]
    assert sent == [1, 1, 1, 1, 2]
    assert outbox.discarded == 1 and outbox.delivered == 1


def test_retry_back_off_doubles_up_to_repeat_times() -> None:
    rng = random.Random(3)
    delays = [
        retry_backoff_delay(k, wait_minimum_s=3, random_range_s=0, repeat_times=2, rng=rng)
        for k in range(5)
    ]
    assert delays == [3.0, 6.0, 12.0, 12.0, 12.0]


def test_retry_back_off_random_part_within_range() -> None:
    rng = random.Random(5)
    delays = [
        retry_backoff_delay(0, wait_minimum_s=3, random_range_s=10, repeat_times=5, rng=rng)
        for _ in range(200)
    ]
    assert all(3.0 <= d <= 13.0 for d in delays)
    assert max(delays) > 10.0 and min(delays) < 6.0
