"""Durable, ordered delivery of TransactionEvent, MeterValues, SecurityEventNotification and
NotifyEvent.

Every such message is written to the storage queue first (whether the CSMS is reachable or
not) and a single delivery task sends them one by one, oldest first. A message leaves the queue
only after its CALLRESULT; a CALLERROR is retried `attempts` times, then the message is dropped
(logged), as OCPP's TransactionEvent MessageAttempts rule says. A timeout or a lost connection
keeps it at the head of the queue. The message id is stored with the message, so a resend after
a timeout carries the same id.
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
    def __init__(self, storage: AgentStorage) -> None:
        self.storage = storage
        self._wakeup = asyncio.Event()
        self._empty = asyncio.Event()
        self.delivered = 0

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
        self, send: SendQueued, *, attempts: int, retry_interval_s: float
    ) -> None:
        """Run while connected (cancelled when the connection goes)."""
        while True:
            self._wakeup.clear()
            message = self.storage.peek()
            if message is None:
                self._empty.set()
                await self._wakeup.wait()
                continue
            try:
                await send(message)
            except OCPPError as error:
                tried = self.storage.count_attempt(message.seq)
                if tried >= attempts:
                    log.error(
                        "dropping %s %s after %d CALLERRORs: %s",
                        message.action,
                        message.message_id,
                        tried,
                        error,
                    )
                    self.storage.remove(message.seq)
                else:
                    await asyncio.sleep(retry_interval_s * tried)
                continue
            except TimeoutError:
                log.warning("no answer to queued %s; keeping it", message.action)
                await asyncio.sleep(retry_interval_s)
                continue
            self.storage.remove(message.seq)
            self.delivered += 1
