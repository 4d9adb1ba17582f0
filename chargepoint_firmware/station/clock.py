"""The one injectable clock of the agent: timestamps, meter intervals and the setpoint task.

Tests replace it with a manual clock (tests/support/agent_fakes.py) to move time by hand; the
websocket transport (pings, back-off, message timeouts) keeps real time.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """Aware UTC datetime."""

    async def sleep_until(self, when: datetime) -> None:
        """Return once now() >= when."""


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, when: datetime) -> None:
        while True:
            delay = (when - self.now()).total_seconds()
            if delay <= 0:
                return
            await asyncio.sleep(delay)


async def sleep_for(clock: Clock, seconds: float) -> None:
    await clock.sleep_until(clock.now() + timedelta(seconds=seconds))
