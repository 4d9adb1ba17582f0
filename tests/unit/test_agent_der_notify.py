"""The agent's 2.1 DER notices, pure: NotifyDERStartStop from the controls in force before and
after, NotifyDERAlarm from grid readings with hysteresis (R)."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from chargepoint_firmware.blocks.smart_charging.der_notify import (
    GridAlarms,
    StartStop,
    start_stop_events,
)


def test_r_der_start_stop_started_stopped_and_superseded() -> None:
    assert start_stop_events({}, {"VoltWatt": "vw-1"}) == [StartStop("vw-1", True)]
    assert start_stop_events({"VoltWatt": "vw-1"}, {}) == [StartStop("vw-1", False)]
    assert start_stop_events({"LimitMaxDischarge": "a"}, {"LimitMaxDischarge": "b"}) == [
        StartStop("b", True, ("a",))
    ]
    same = {"FreqWatt": "fw", "VoltWatt": "vw"}
    assert start_stop_events(same, dict(same)) == []


@given(
    st.dictionaries(st.sampled_from(["FreqWatt", "VoltWatt", "LimitMaxDischarge"]), st.text()),
    st.dictionaries(st.sampled_from(["FreqWatt", "VoltWatt", "LimitMaxDischarge"]), st.text()),
)
def test_r_der_start_stop_names_every_change_once(
    before: dict[str, str], after: dict[str, str]
) -> None:
    events = start_stop_events(before, after)
    changed = {t for t in set(before) | set(after) if before.get(t) != after.get(t)}
    assert len(events) == len(changed)
    for event in events:
        if event.started:
            assert event.control_id in after.values()
        else:
            assert event.control_id in before.values()


def test_r_grid_alarm_raised_once_per_excursion_and_ended_past_the_hysteresis() -> None:
    alarms = GridAlarms()
    raised = alarms.update(270 / 230 * 100, 50.0)
    assert [(a.fault, a.control_type, a.ended) for a in raised] == [
        ("OverVoltage", "HVMustTrip", False)
    ]
    assert alarms.update(271 / 230 * 100, 50.0) == []  # still over: not again
    assert alarms.update(264.9 / 230 * 100, 50.0) == []  # inside, but within the hysteresis
    (ended,) = alarms.update(260 / 230 * 100, 50.0)
    assert ended.fault == "OverVoltage" and ended.ended
    (under,) = alarms.update(100.0, 46.5)
    assert under.fault == "UnderFrequency" and under.control_type == "LFMustTrip"
    assert alarms.update(None, None) == []  # not measured: no change
    assert alarms.update(float("nan"), float("nan")) == []


@given(st.lists(st.floats(40.0, 60.0), max_size=200))
def test_r_grid_alarms_alternate_raise_and_end(frequencies: list[float]) -> None:
    alarms = GridAlarms()
    seen: dict[str, list[bool]] = {}
    for hz in frequencies:
        for alarm in alarms.update(None, hz):
            seen.setdefault(alarm.fault, []).append(alarm.ended)
    for ended_flags in seen.values():
        assert ended_flags[0] is False
        assert all(a != b for a, b in itertools.pairwise(ended_flags))
