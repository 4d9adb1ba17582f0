"""Stopping asyncio tasks for sure.

On Python 3.11 `asyncio.wait_for` can swallow a cancellation when the awaited future completes
at the same moment (CPython gh-86296, fixed in 3.12): the `ocpp` library's `call()` waits for
its CALLRESULT that way, so a task cancelled just as an answer arrives may carry on. Cancel until
the task is really done.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


async def cancel_and_wait(*tasks: asyncio.Future[Any]) -> None:
    for task in tasks:
        while not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=0.5)
        with contextlib.suppress(asyncio.CancelledError, Exception):
            task.result()
