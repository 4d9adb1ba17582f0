"""Departure prediction on synthetic histories with known patterns and noise."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import numpy as np
import pytest

from csms.v2g.departure import (
    DepartureModel,
    SessionRecord,
    circular_mean_minutes,
    predict_departure,
)
from csms.v2g.prices import AEST


def commuter_history(weeks: int, seed: int = 7) -> list[SessionRecord]:
    """Leaves 07:30 +/- 10 min on weekdays using ~25 % SoC, 10:00 +/- 30 min on Saturday using
    ~40 %, stays home on Sunday; plugs in around 18:00 the same day."""
    rng = np.random.default_rng(seed)
    start = date(2024, 7, 1)  # a Monday
    records: list[SessionRecord] = []
    plug_in = datetime.combine(start - timedelta(days=1), time(18, 0), tzinfo=AEST)
    soc_in = 0.5
    for k in range(weeks * 7):
        day = start + timedelta(days=k)
        wd = day.weekday()
        if wd == 6:
            continue  # Sunday: not driven, stays plugged in
        mean, spread, use = (7 * 60 + 30, 10, 0.25) if wd < 5 else (10 * 60, 30, 0.40)
        minutes = mean + rng.normal(0, spread)
        out = datetime.combine(day, time(0), tzinfo=AEST) + timedelta(minutes=float(minutes))
        records.append(SessionRecord(plug_in, out, soc_in, 0.9))
        soc_in = 0.9 - use - abs(rng.normal(0, 0.03))
        plug_in = datetime.combine(day, time(18), tzinfo=AEST) + timedelta(
            minutes=float(rng.normal(0, 20))
        )
    return records


def test_weekday_departure_and_needed_soc() -> None:
    history = commuter_history(weeks=8)
    now = datetime(2024, 9, 3, 19, 0, tzinfo=AEST)  # Tuesday evening
    p = predict_departure(history, now)
    assert p is not None
    assert p.basis == "weekday"
    assert p.departure.date() == date(2024, 9, 4)
    target = datetime(2024, 9, 4, 7, 30, tzinfo=AEST)
    assert abs(p.departure - target) <= timedelta(minutes=8)
    assert target - timedelta(minutes=30) <= p.earliest <= p.departure
    assert p.confidence >= 0.9  # +/- 10 min noise: nearly all within 30 min
    assert p.needed_soc is not None
    assert 0.45 <= p.needed_soc <= 0.55  # 20 % reserve + ~28 % (90th percentile of use)


def test_saturday_has_its_own_time_and_sunday_is_skipped() -> None:
    history = commuter_history(weeks=8)
    friday_evening = datetime(2024, 9, 6, 20, 0, tzinfo=AEST)
    p = predict_departure(history, friday_evening)
    assert p is not None
    assert p.departure.date() == date(2024, 9, 7)
    # 8 Saturdays with 30 min noise: the mean is good to 3 standard errors (3 x 30 / sqrt 8).
    tolerance = timedelta(minutes=3 * 30 / 8**0.5)
    assert abs(p.departure - datetime(2024, 9, 7, 10, 0, tzinfo=AEST)) <= tolerance
    assert p.confidence < 0.95  # wider spread on Saturdays
    saturday_evening = datetime(2024, 9, 7, 20, 0, tzinfo=AEST)
    p = predict_departure(history, saturday_evening)
    assert p is not None
    assert p.departure.date() == date(2024, 9, 9)  # Monday: it never leaves on Sundays


def test_falls_back_to_all_days_with_little_history() -> None:
    history = commuter_history(weeks=1)[:4]  # Mon-Thu once each
    now = datetime(2024, 7, 4, 20, 0, tzinfo=AEST)  # Thursday
    p = predict_departure(history, now, DepartureModel(min_samples=3))
    assert p is not None
    assert p.basis == "all_days"
    assert p.samples == 4
    assert p.departure.date() == date(2024, 7, 5)
    assert predict_departure(history[:2], now) is None


def test_circular_mean_wraps_midnight() -> None:
    assert circular_mean_minutes([23 * 60 + 50, 10]) == pytest.approx(0.0, abs=1e-6)
    assert circular_mean_minutes([60, 120]) == pytest.approx(90.0)
