"""The agent's link to the CSMS as the blocks see it: registration state and sending.

`CsmsLink` holds the current session (None while disconnected), the registration status of
the last BootNotification and whether the station is online (connected and Accepted). Blocks
send through it (`send_call` now, `send_soon` fire-and-forget) and start their background
tasks with `spawn`; the agent's connection loop sets the session and the states.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

import ocpp.exceptions
from ocpp.v201 import call
from websockets.exceptions import ConnectionClosed

from chargepoint_firmware.storage import QueuedMessage

log = logging.getLogger(__name__)


class Caller(Protocol):
    async def call(self, payload: Any, *args: Any, **kwargs: Any) -> Any: ...


class Sender(Protocol):
    """What a block needs to talk to the CSMS."""

    online: bool

    async def send_call(self, payload: Any) -> Any: ...

    def send_soon(self, payload: Any) -> None: ...

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]: ...


class CsmsLink:
    def __init__(self) -> None:
        self.session: Caller | None = None
        self.registration: str | None = None  # Accepted / Pending / Rejected of the last boot
        self.online = False  # connected and registration Accepted
        self.tasks: set[asyncio.Task[Any]] = set()
        # (sent payload, response) of every delivered queued TransactionEvent
        self.on_transaction_event_answer: Callable[[dict[str, Any], Any], None] = (
            lambda _sent, _response: None
        )

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())

    async def send_call(self, payload: Any) -> Any:
        """Send a CALL now (registration permitting); raises if there is no session."""
        session = self.session
        if session is None or self.registration == "Rejected":
            raise ConnectionError("no CSMS session")
        return await session.call(payload, suppress=False)

    def send_soon(self, payload: Any) -> None:
        """Fire-and-forget CALL when online (StatusNotification, NotifyEvent)."""
        if not self.online:
            return

        async def send() -> None:
            try:
                await self.send_call(payload)
            except (ConnectionError, ConnectionClosed, TimeoutError) as exc:
                log.warning("%s not delivered: %s", type(payload).__name__, exc)
            except ocpp.exceptions.OCPPError as exc:
                log.warning("%s answered with %s", type(payload).__name__, exc)

        self.spawn(send())

    async def send_queued(self, message: QueuedMessage) -> None:
        """One outbox message, with its own message id (E13 resends keep it)."""
        session = self.session
        if session is None:
            raise ConnectionError("no session")
        payload = getattr(call, message.action)(**message.payload)
        response = await session.call(payload, suppress=False, unique_id=message.message_id)
        if message.action == "TransactionEvent":
            self.on_transaction_event_answer(message.payload, response)
