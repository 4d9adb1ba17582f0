"""Stopping asyncio tasks for sure.

On Python 3.11 `asyncio.wait_for` can swallow a cancellation when the awaited future completes
at the same moment (CPython gh-86296, fixed in 3.12): the `ocpp` library's `call()` waits for
its CALLRESULT that way, so a task cancelled just as an answer arrives may carry on. Cancel until
the task is really done.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any


async def cancel_and_wait(*tasks: asyncio.Future[Any]) -> None:
    for task in tasks:
        while not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=0.5)
        with contextlib.suppress(asyncio.CancelledError, Exception):
            task.result()


async def first_of(*waits: Coroutine[Any, Any, Any]) -> None:
    """Return when the first of `waits` is done; cancel the others."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
