"""Durable, ordered delivery of TransactionEvent, MeterValues, SecurityEventNotification and
NotifyEvent.

Every such message is written to the storage queue first (whether the CSMS is reachable or
not) and a single delivery task sends them one by one, oldest first. A message leaves the queue
only after its CALLRESULT. A CALLERROR or no answer within the message timeout is an attempt
that failed (E13): the message is resent, with the same message id, after
MessageAttemptInterval x (attempts so far) seconds; after MessageAttempts failed attempts it is
discarded (logged) and delivery goes on with the next one. A lost connection is not an attempt:
the message stays at the head of the queue for the next connection.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from ocpp.exceptions import OCPPError

from chargepoint_firmware.storage import AgentStorage, QueuedMessage

log = logging.getLogger(__name__)

SendQueued = Callable[[QueuedMessage], Awaitable[Any]]


class Outbox:
    def __init__(
        self,
        storage: AgentStorage,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.storage = storage
        self._sleep = sleep  # injectable: tests observe the retry waits
        self._wakeup = asyncio.Event()
        self._empty = asyncio.Event()
        self.delivered = 0
        self.discarded = 0  # messages given up after MessageAttempts failures

    def put(self, action: str, payload: dict[str, Any]) -> str:
        """Queue a message (call inside storage.atomic() to tie it to a state change)."""
        message_id = str(uuid.uuid4())
        self.storage.enqueue(message_id, action, payload)
        self._empty.clear()
        self._wakeup.set()
        return message_id

    async def wait_empty(self) -> None:
        """Return once every queued message has been delivered (or dropped)."""
        if self.storage.peek() is None:
            return
        self._empty.clear()
        await self._empty.wait()

    def __len__(self) -> int:
        return self.storage.queue_length()

    async def deliver_forever(
        self,
        send: SendQueued,
        *,
        attempts: int | Callable[[], int],
        retry_interval_s: float | Callable[[], float],
    ) -> None:
        """Run while connected (cancelled when the connection goes).

        `attempts` and `retry_interval_s` may be callables, read at each failure, so that a
        change of the device model (SetVariables) applies to the message being retried.
        """
        while True:
            self._wakeup.clear()
            message = self.storage.peek()
            if message is None:
                self._empty.set()
                await self._wakeup.wait()
                continue
            try:
                await send(message)
            except (OCPPError, TimeoutError) as error:
                failure = "no answer" if isinstance(error, TimeoutError) else str(error)
                tried = self.storage.count_attempt(message.seq)
                allowed = max(1, attempts() if callable(attempts) else attempts)
                if tried >= allowed:
                    log.error(
                        "discarding %s %s after %d failed attempts (E13): %s",
                        message.action,
                        message.message_id,
                        tried,
                        failure,
                    )
                    self.storage.remove(message.seq)
                    self.discarded += 1
                else:
                    log.warning(
                        "%s %s attempt %d failed (%s); retrying",
                        message.action,
                        message.message_id,
                        tried,
                        failure,
                    )
                    interval = (
                        retry_interval_s() if callable(retry_interval_s) else retry_interval_s
                    )
                    await self._sleep(max(0.0, interval) * tried)
                continue
            self.storage.remove(message.seq)
            self.delivered += 1
