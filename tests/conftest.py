"""Suite-wide diagnostics."""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
import traceback
from collections.abc import Iterator

import pytest

# A teardown still running after this long is stuck (the suite's timeout is 120 s): the
# asyncio tasks still pending are printed, so that a task that ignores its cancellation (which
# hangs pytest-asyncio's loop close) is named in the report instead of only the loop's select.
STUCK_TEARDOWN_S = 60.0


def _print_pending_tasks(nodeid: str) -> None:
    try:
        tasks = [o for o in gc.get_objects() if isinstance(o, asyncio.Task) and not o.done()]
    except Exception as exc:  # another thread changed the heap meanwhile: say so, no more
        print(f"teardown of {nodeid} stuck; tasks not listed ({exc!r})", file=sys.stderr)
        return
    print(f"teardown of {nodeid} stuck; {len(tasks)} asyncio tasks pending:", file=sys.stderr)
    for task in tasks:
        print(f"--- {task!r}", file=sys.stderr)
        with_frames = traceback.StackSummary.extract(
            (frame, frame.f_lineno) for frame in task.get_stack(limit=12)
        )
        print("".join(with_frames.format()), file=sys.stderr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    watchdog = threading.Timer(STUCK_TEARDOWN_S, _print_pending_tasks, args=(item.nodeid,))
    watchdog.daemon = True
    watchdog.start()
    try:
        yield
    finally:
        watchdog.cancel()
