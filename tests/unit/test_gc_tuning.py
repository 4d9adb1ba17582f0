"""Issue 17: a serving node keeps what lives long out of the collector's walks (start-up's
objects, then the sessions of stations as they connect) and reclaims frozen garbage in a full
pass once an hour."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from csms import gc_schedule
from csms.gc_schedule import (
    SERVING_GC_THRESHOLDS,
    collect_everything,
    freeze_survivors,
    tune_garbage_collector,
)


class _Node:
    """A container that can be in a reference cycle and be weakly referenced."""

    def __init__(self) -> None:
        self.other: _Node | None = None


@pytest.fixture
def restored_collector() -> Iterator[None]:
    before = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


@pytest.mark.usefixtures("restored_collector")
def test_a_started_node_freezes_start_up_objects_and_raises_the_thresholds() -> None:
    built_at_start_up = [{"kept": i} for i in range(1000)]
    tune_garbage_collector()
    assert gc.get_threshold() == SERVING_GC_THRESHOLDS
    assert gc.get_freeze_count() >= len(built_at_start_up)
    # Frozen objects are out of every generation a collection walks.
    assert not any(o is built_at_start_up for o in gc.get_objects())


@pytest.mark.usefixtures("restored_collector")
def test_objects_made_after_start_up_are_frozen_by_the_next_young_pass() -> None:
    tune_garbage_collector()
    # Nodes, not dicts of ints: a collection untracks such dicts (nothing left to freeze).
    a_new_session = [_Node() for _ in range(1000)]
    assert any(o is a_new_session for o in gc.get_objects())
    frozen_before = gc.get_freeze_count()
    freeze_survivors()
    assert gc.get_freeze_count() >= frozen_before + len(a_new_session)
    assert not any(o is a_new_session for o in gc.get_objects())


@pytest.mark.usefixtures("restored_collector")
def test_a_frozen_cycle_that_became_garbage_is_reclaimed_by_the_full_pass_only() -> None:
    a, b = _Node(), _Node()
    a.other, b.other = b, a  # a cycle: reference counting alone never frees it
    gone = weakref.ref(a)
    freeze_survivors()  # a disconnected station's session, frozen while it was alive
    del a, b
    freeze_survivors()
    gc.collect()  # even an ordinary full collection does not walk frozen objects
    assert gone() is not None
    collect_everything()
    assert gone() is None


async def test_the_schedule_freezes_every_interval_and_collects_everything_when_due(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    now = [0.0]
    two_full_passes = asyncio.Event()

    def record(what: str) -> float:
        calls.append(what)
        now[0] += 1.0  # one second per pass of the schedule
        if calls.count("full") == 2:
            two_full_passes.set()
        return 0.0

    monkeypatch.setattr(gc_schedule, "freeze_survivors", lambda: record("freeze"))
    monkeypatch.setattr(gc_schedule, "collect_everything", lambda: record("full"))
    task = asyncio.create_task(
        gc_schedule.keep_long_lived_frozen(
            freeze_every_s=0.001, full_every_s=3.5, clock=lambda: now[0]
        )
    )
    await asyncio.wait_for(two_full_passes.wait(), timeout=10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # Full passes at 4 s (first due at 3.5 s) and 8 s (3.5 s after the first), freezes between.
    assert calls[:9] == ["freeze"] * 4 + ["full"] + ["freeze"] * 3 + ["full"]
