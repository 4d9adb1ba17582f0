"""The under-frequency rule's state as a value (EventSnapshot): stored and restored between
every two samples (as the CSMS nodes do through the database, as JSON), the rule answers
exactly as one object fed the whole stream."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from csms.v2g.frequency import (
    EventSnapshot,
    EventState,
    UnderFrequencyEvent,
    UnderFrequencyRule,
)

RULE = UnderFrequencyRule(hold_s=5.0, duration_s=60.0, min_soc=0.5, stop_soc=0.5)

samples_st = st.lists(
    st.tuples(
        st.floats(min_value=0.0, max_value=30.0),  # seconds since the previous sample
        st.sampled_from([49.5, 49.79, 49.8, 50.0, 50.2]),
        st.floats(min_value=0.3, max_value=1.0),
    ),
    max_size=60,
)


@given(samples_st)
def test_restoring_between_every_sample_changes_nothing(
    samples: list[tuple[float, float, float]],
) -> None:
    whole = UnderFrequencyEvent(RULE)
    stored = EventSnapshot().as_dict()
    t = 1_780_000_000.0  # epoch seconds, as the service feeds them
    for dt, hz, soc in samples:
        t += dt
        piece = UnderFrequencyEvent(RULE, EventSnapshot.from_dict(json.loads(json.dumps(stored))))
        assert piece.feed(t, hz, soc) == whole.feed(t, hz, soc)
        assert piece.state is whole.state
        assert piece.events_started == whole.events_started
        stored = piece.snapshot().as_dict()
    assert EventSnapshot.from_dict(stored) == whole.snapshot()


def test_snapshot_carries_an_event_in_progress() -> None:
    event = UnderFrequencyEvent(RULE)
    for t in range(6):
        event.feed(float(t), 49.7, 0.8)
    snap = event.snapshot()
    assert snap == EventSnapshot(EventState.ACTIVE, 0.0, 65.0, 5.0, 1)
    assert event.active_until == 65.0 and event.last_t == 5.0
    restored = UnderFrequencyEvent(RULE, snap)
    assert restored.feed(6.0, 49.7, 0.8) == -RULE.discharge_kw
    assert restored.feed(65.0, 49.7, 0.8) == 0.0  # the duration is over: re-arms
    assert restored.state is EventState.ARMING and restored.active_until is None
    with pytest.raises(ValueError, match="time order"):
        UnderFrequencyEvent(RULE, snap).feed(4.0, 50.0, 0.8)


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"state": "burning", "since": 0, "until": 0, "last_t": None, "events_started": 0},
        {"state": "idle", "since": "x", "until": 0, "last_t": None, "events_started": 0},
        {"state": "idle", "since": 0, "until": 0, "last_t": None, "events_started": -1},
        {"state": "idle", "since": None, "until": 0, "last_t": None, "events_started": 0},
    ],
)
def test_from_dict_rejects_what_as_dict_never_writes(data: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        EventSnapshot.from_dict(data)
