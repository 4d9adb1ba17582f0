"""SIGINT/SIGTERM as an asyncio stop event, for every long-running command (csms serve, csms demo,
chargepoint run, chargepoint simulate)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable


def install_stop_signals(stop: asyncio.Event) -> Callable[[], None]:
    """SIGINT and SIGTERM set `stop` (where the loop supports signal handlers); returns the
    function that removes those handlers again."""
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
            installed.append(signum)

    def remove() -> None:
        for signum in installed:
            loop.remove_signal_handler(signum)

    return remove
