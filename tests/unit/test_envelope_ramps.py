"""A DERControl's rampTms (IEEE 2030.5 DERControlBase.rampTms; CACTUS ALL-25, ALL-28): the
stations' bounds step from the previous ones to the new over the ramp time (pure parts)."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csms.domain.envelope_ramps import (
    MAX_RAMP_STEPS,
    linear,
    profile_bounds_at,
    ramp_periods,
    ramp_steps,
)
from csms.domain.envelopes import (
    MAX_RAMP_TIME_S,
    ChargerBounds,
    OperatingEnvelope,
    StationPeriod,
    envelope_profile,
    envelope_timeline,
    station_timelines,
)

T0 = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)


def value_at(steps: list[tuple[datetime, float]], t: datetime) -> float:
    found = steps[0][1]
    for moment, value in steps:
        if moment <= t:
            found = value
    return found


watts = st.floats(min_value=0, max_value=1e5, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(
    old=watts,
    new=watts,
    ramp_s=st.floats(min_value=0.5, max_value=MAX_RAMP_TIME_S),
    max_steps=st.integers(1, MAX_RAMP_STEPS),
    probes=st.lists(st.floats(min_value=0, max_value=1.2), min_size=1, max_size=40),
)
def test_ramp_steps_monotone_bounded_never_above_the_line_and_reach_new_at_the_end(
    old: float, new: float, ramp_s: float, max_steps: int, probes: list[float]
) -> None:
    end = T0 + timedelta(seconds=ramp_s)
    steps = ramp_steps(old, new, T0, end, max_steps)
    assert steps[0][0] == T0
    assert len(steps) <= max_steps + 1
    times = sorted(T0 + timedelta(seconds=ramp_s * p) for p in probes)
    values = [value_at(steps, t) for t in times]
    low, high = min(old, new), max(old, new)
    for t, v in zip(times, values, strict=True):
        assert low <= v <= high
        # Never looser than the straight line at any instant (tightening not slower).
        assert v <= linear(old, new, T0, end, t) + 1e-9 * max(1.0, high)
        if t >= end:
            assert v == new
    # Monotone in the ramp's direction.
    pairs = list(itertools.pairwise(values))
    if new >= old:
        assert all(a <= b for a, b in pairs)
        assert value_at(steps, T0) == old  # a loosening starts from the old limit
    else:
        assert all(a >= b for a, b in pairs)
        assert value_at(steps, T0) <= old
    assert value_at(steps, end) == new


def test_ramp_steps_without_a_change_or_time_are_the_new_value_at_once() -> None:
    assert ramp_steps(100.0, 100.0, T0, T0 + timedelta(seconds=60), 5) == [(T0, 100.0)]
    assert ramp_steps(100.0, 50.0, T0, T0, 5) == [(T0, 50.0)]


def envelope(start: datetime, export_w: float, ramp_s: float | None) -> OperatingEnvelope:
    return OperatingEnvelope(
        "home-1", "csip-aus", "DERC", False, start, start + timedelta(minutes=5), start,
        export_limit_w=export_w, import_limit_w=export_w, ramp_time_s=ramp_s,
    )  # fmt: skip


def station_periods(
    envelopes: list[OperatingEnvelope], now: datetime, rated: float = 7200.0
) -> list[StationPeriod]:
    return station_timelines(envelope_timeline(envelopes, now), [(rated, rated)])[0]


def bounds_at(periods: list[StationPeriod], t: datetime) -> ChargerBounds:
    found = periods[0].bounds
    for p in periods:
        if p.start <= t:
            found = p.bounds
    return found


def test_all_25_a_control_with_ramp_time_moves_from_the_held_bounds_over_60_s() -> None:
    """ALL-25 (a): 30 % of 7200 W with rampTms 6000 (60 s), from the 0 W default held."""
    periods = station_periods([envelope(T0, 2160.0, 60.0)], T0)
    ramped = ramp_periods(periods, current=ChargerBounds(0.0, 0.0))
    assert ramped[0].start == T0 and ramped[0].bounds == ChargerBounds(0.0, 0.0)
    assert 2 <= len(ramped) <= MAX_RAMP_STEPS + 2
    assert bounds_at(ramped, T0 + timedelta(seconds=60)) == ChargerBounds(2160.0, 2160.0)
    assert bounds_at(ramped, T0 + timedelta(seconds=59)).max_discharge_w < 2160.0
    # Half way it has not passed the straight line.
    half = bounds_at(ramped, T0 + timedelta(seconds=30))
    assert 0 < half.max_discharge_w <= 1080.0
    # rampTms replaces the default's setGradW for this transition (2030.5).
    with_rate = station_periods([replace(envelope(T0, 2160.0, 60.0), ramp_rate_pct_per_s=1.0)], T0)
    assert with_rate[0].ramp_rate_pct_per_s == 1.0
    stepped = ramp_periods(with_rate, current=ChargerBounds(0.0, 0.0))
    assert all(p.ramp_rate_pct_per_s is None for p in stepped if p.envelope is not None)
    # After the ramp the envelope's own period goes on unchanged, then the one after it.
    assert ramped[-2].end == periods[0].end and ramped[-1] == periods[-1]
    assert ramped[-2].bounds == periods[0].bounds


def test_a_tightening_ramp_is_never_slower_than_the_line() -> None:
    """ALL-28 (c) the other way: from 50 % to 10 % over 60 s."""
    periods = station_periods([envelope(T0, 720.0, 60.0)], T0)
    ramped = ramp_periods(periods, current=ChargerBounds(3600.0, 3600.0))
    for second in range(0, 61):
        t = T0 + timedelta(seconds=second)
        line = linear(3600.0, 720.0, T0, T0 + timedelta(seconds=60), t)
        assert 720.0 <= bounds_at(ramped, t).max_discharge_w <= line
    assert bounds_at(ramped, T0 + timedelta(seconds=60)).max_discharge_w == 720.0


def test_a_ramp_under_way_goes_on_from_where_the_station_is_and_ends_on_time() -> None:
    """Re-sent 30 s into a 60 s ramp (a reconnect): from the bounds held then, still done at
    start + 60 s, not 30 s later."""
    now = T0 + timedelta(seconds=30)
    periods = station_periods([envelope(T0, 2160.0, 60.0)], now)
    ramped = ramp_periods(periods, current=ChargerBounds(1000.0, 1000.0))
    assert ramped[0].start == now and ramped[0].bounds.max_discharge_w == 1000.0
    assert bounds_at(ramped, T0 + timedelta(seconds=60)).max_discharge_w == 2160.0
    # A ramp already over when re-sent: the envelope's bounds at once.
    later = station_periods([envelope(T0, 2160.0, 60.0)], T0 + timedelta(seconds=90))
    assert ramp_periods(later, current=ChargerBounds(1000.0, 1000.0)) == later


def test_a_later_control_ramps_from_the_period_before_it_and_is_cut_by_its_end() -> None:
    first = envelope(T0, 3600.0, None)
    second = OperatingEnvelope(
        "home-1", "csip-aus", "DERC2", False, T0 + timedelta(minutes=5),
        T0 + timedelta(minutes=5, seconds=20), T0, export_limit_w=720.0, ramp_time_s=60.0,
    )  # fmt: skip
    periods = station_periods([first, second], T0)
    ramped = ramp_periods(periods, current=ChargerBounds(7200.0, 7200.0))
    assert ramped[0].bounds == ChargerBounds(3600.0, 3600.0)  # no ramp of its own
    start2 = T0 + timedelta(minutes=5)
    during = [p for p in ramped if start2 <= p.start < start2 + timedelta(seconds=20)]
    assert during[0].start == start2
    values = [p.bounds.max_discharge_w for p in during]
    assert values == sorted(values, reverse=True) and all(720.0 <= v < 3600.0 for v in values)
    # The control ends after 20 s, before its ramp would: the next period's bounds apply then.
    after = bounds_at(ramped, start2 + timedelta(seconds=20))
    assert after == ChargerBounds(7200.0, 7200.0)


def test_no_ramp_without_the_held_bounds_or_without_a_ramp_time() -> None:
    periods = station_periods([envelope(T0, 2160.0, 60.0)], T0)
    assert ramp_periods(periods, current=None) == periods
    plain = station_periods([envelope(T0, 2160.0, None)], T0)
    assert ramp_periods(plain, current=ChargerBounds(0.0, 0.0)) == plain


@settings(max_examples=150, deadline=None)
@given(
    old=st.tuples(watts, watts),
    export_w=watts,
    ramp_s=st.floats(min_value=1, max_value=MAX_RAMP_TIME_S),
    max_steps=st.integers(1, 30),
    offset_s=st.floats(min_value=0, max_value=120),
)
def test_ramped_station_bounds_stay_between_old_and_new_and_arrive_on_time(
    old: tuple[float, float], export_w: float, ramp_s: float, max_steps: int, offset_s: float
) -> None:
    now = T0 + timedelta(seconds=offset_s)
    env = OperatingEnvelope(
        "home-1", "csip-aus", "D", False, T0, None, T0,
        export_limit_w=export_w, import_limit_w=export_w, ramp_time_s=ramp_s,
    )  # fmt: skip
    periods = station_periods([env], now)
    current = ChargerBounds(*old)
    ramped = ramp_periods(periods, current=current, max_steps=max_steps)
    target = periods[0].bounds
    assert ramped[0].start == now
    assert len(ramped) <= len(periods) + MAX_RAMP_STEPS + 1
    starts = [p.start for p in ramped]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    end = T0 + timedelta(seconds=ramp_s)
    for p in (p for p in ramped if p.envelope is env):  # not the horizon's tail after it
        for held, new, got in (
            (current.max_charge_w, target.max_charge_w, p.bounds.max_charge_w),
            (current.max_discharge_w, target.max_discharge_w, p.bounds.max_discharge_w),
        ):
            assert min(held, new) <= got <= max(held, new)
    if end > now:
        assert bounds_at(ramped, end) == target
    else:
        assert ramped == periods


def test_the_held_bounds_are_read_back_from_the_profile_sent() -> None:
    periods = station_periods([envelope(T0, 2160.0, 60.0)], T0)
    ramped = ramp_periods(periods, current=ChargerBounds(0.0, 0.0))
    payload = envelope_profile(ramped, site_id="home-1", now=T0, ocpp_2_1=False).payload
    assert profile_bounds_at(payload, T0 - timedelta(seconds=1)) is None  # before its start
    assert profile_bounds_at(payload, T0) == ChargerBounds(0.0, 0.0)
    assert profile_bounds_at(payload, T0 + timedelta(seconds=60)) == ChargerBounds(2160.0, 2160.0)
    mid = profile_bounds_at(payload, T0 + timedelta(seconds=30))
    assert mid is not None and mid == bounds_at(ramped, T0 + timedelta(seconds=30))


@pytest.mark.parametrize(
    "payload",
    [
        None,
        {},
        {"chargingProfile": {"id": 1}},
        {"chargingProfile": {"id": 62007, "chargingSchedule": []}},
        {
            "chargingProfile": {
                "id": 62007,
                "chargingSchedule": [
                    {
                        "startSchedule": "2026-12-07T01:00:00Z",
                        "chargingSchedulePeriod": [
                            {
                                "startPeriod": 0,
                                "limit": -5.0,
                                "customData": {
                                    "vendorId": "org.openv2g.envelope",
                                    "dischargeLimitW": 1.0,
                                },
                            }
                        ],
                    }
                ],
            }
        },
        {
            "chargingProfile": {
                "id": 62007,
                "chargingSchedule": [
                    {
                        "startSchedule": "2026-12-07T01:00:00Z",
                        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 5.0}],
                    }
                ],
            }
        },
    ],
)
def test_a_payload_that_is_not_a_sound_envelope_profile_gives_no_held_bounds(
    payload: dict[str, object] | None,
) -> None:
    assert profile_bounds_at(payload, T0 + timedelta(minutes=1)) is None


def test_envelope_ramp_time_is_bounded() -> None:
    with pytest.raises(ValueError, match="ramp_time_s"):
        envelope(T0, 100.0, 0.0)
    with pytest.raises(ValueError, match="ramp_time_s"):
        envelope(T0, 100.0, MAX_RAMP_TIME_S + 1)
    with pytest.raises(ValueError, match="ramp_time_s"):
        envelope(T0, 100.0, float("nan"))
    assert envelope(T0, 100.0, MAX_RAMP_TIME_S).ramp_time_s == MAX_RAMP_TIME_S
