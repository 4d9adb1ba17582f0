"""Sleeping on the agent clock until a deadline, or until something changes first."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime

from chargepoint_firmware.station.clock import Clock


async def sleep_or_wake(clock: Clock, until: datetime, wake: asyncio.Event) -> None:
    """Sleep on `clock` until `until`, or until `wake` is set."""
    sleeper = asyncio.ensure_future(clock.sleep_until(until))
    waker = asyncio.ensure_future(wake.wait())
    try:
        await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sleeper, waker):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class ConfigChanges:
    """Waits that end early when the configuration changes (`notify()` from the device model's
    change listener)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._waiters: set[asyncio.Event] = set()

    def notify(self) -> None:
        for waiter in list(self._waiters):
            waiter.set()

    async def sleep(self, until: datetime) -> None:
        """Sleep on the agent clock until `until`, or until a configuration change."""
        changed = asyncio.Event()
        self._waiters.add(changed)
        try:
            await sleep_or_wake(self.clock, until, changed)
        finally:
            self._waiters.discard(changed)
