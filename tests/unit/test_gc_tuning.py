"""Issue 17: a serving node freezes what start-up built and collects young objects less often."""

from __future__ import annotations

import gc

from csms.app import SERVING_GC_THRESHOLDS, tune_garbage_collector


def test_a_started_node_freezes_start_up_objects_and_raises_the_thresholds() -> None:
    before = gc.get_threshold()
    built_at_start_up = [{"kept": i} for i in range(1000)]
    try:
        tune_garbage_collector()
        assert gc.get_threshold() == SERVING_GC_THRESHOLDS
        assert gc.get_freeze_count() >= len(built_at_start_up)
        # Frozen objects are out of every generation a collection walks.
        assert not any(o is built_at_start_up for o in gc.get_objects())
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
