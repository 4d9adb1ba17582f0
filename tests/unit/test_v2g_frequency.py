"""Frequency response: the local frequency-watt curve and the central under-frequency rule."""

from __future__ import annotations

import pytest

from csms.v2g.frequency import (
    EventState,
    UnderFrequencyEvent,
    UnderFrequencyRule,
    nem_curve,
)
from v2g_shared.freq_watt import FreqWattCurve, freq_watt


def test_nem_curve_deadband_slopes_and_ends() -> None:
    curve = nem_curve(max_discharge_w=7000, max_charge_w=7000)
    assert freq_watt(curve, 50.0) == 0.0
    assert freq_watt(curve, 49.86) == 0.0  # inside the normal operating band
    assert freq_watt(curve, 50.14) == 0.0
    assert freq_watt(curve, 49.0) == -7000.0
    assert freq_watt(curve, 48.0) == -7000.0  # flat beyond the last point
    assert freq_watt(curve, 49.425) == pytest.approx(-3500.0)
    assert freq_watt(curve, 51.5) == 7000.0


def test_curve_rejects_unordered_points() -> None:
    with pytest.raises(ValueError, match="strictly increase"):
        FreqWattCurve(points=((50.0, 0.0), (49.0, -1.0)))


def run(event: UnderFrequencyEvent, samples: list[tuple[float, float, float]]) -> list[float]:
    return [event.feed(t, hz, soc) for t, hz, soc in samples]


def test_seed_rule_under_49_8_for_5_s_discharges_5_kw_for_10_minutes() -> None:
    event = UnderFrequencyEvent()
    out = run(event, [(float(t), 49.7, 0.8) for t in range(0, 6)])
    assert out == [0.0] * 5 + [-5.0]  # triggers at t = 5 s
    assert event.state is EventState.ACTIVE
    assert event.feed(300.0, 50.0, 0.75) == -5.0  # keeps going after recovery
    assert event.feed(604.9, 50.0, 0.7) == -5.0
    assert event.feed(605.0, 50.0, 0.7) == 0.0  # 10 minutes after the trigger
    assert event.state is EventState.IDLE
    assert event.events_started == 1


def test_short_dip_does_not_trigger() -> None:
    event = UnderFrequencyEvent()
    out = run(event, [(0, 49.7, 0.8), (4, 49.7, 0.8), (4.5, 49.9, 0.8), (9, 49.7, 0.8)])
    assert out == [0.0] * 4
    assert event.state is EventState.ARMING  # the new dip started at t = 9


def test_low_soc_blocks_and_stops_the_event() -> None:
    event = UnderFrequencyEvent()
    assert run(event, [(float(t), 49.5, 0.5) for t in range(0, 8)]) == [0.0] * 8  # not > 50 %
    event = UnderFrequencyEvent()
    run(event, [(0, 49.5, 0.52), (5, 49.5, 0.52)])
    assert event.state is EventState.ACTIVE
    assert event.feed(60, 49.5, 0.50) == 0.0  # reached the stop SoC


def test_parameters_are_configurable_and_time_must_move_forward() -> None:
    rule = UnderFrequencyRule(
        threshold_hz=49.85, hold_s=1.0, discharge_kw=3.0, duration_s=60.0, min_soc=0.3, stop_soc=0.2
    )
    event = UnderFrequencyEvent(rule)
    assert run(event, [(0, 49.84, 0.4), (1, 49.84, 0.4), (61, 50.0, 0.4)]) == [0.0, -3.0, 0.0]
    with pytest.raises(ValueError, match="time order"):
        event.feed(10, 50.0, 0.4)
