"""Composite schedule: JSON scenarios, limit_at, OCPP output, and hypothesis properties."""

from __future__ import annotations

import itertools
import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from v2g_shared.schedule import (
    ChargingProfile,
    ChargingProfileKind,
    ChargingProfilePurpose,
    ChargingRateUnit,
    ChargingSchedule,
    ChargingSchedulePeriod,
    InstalledProfile,
    RecurrencyKind,
    Transaction,
    composite_schedule,
    composite_to_ocpp,
    limit_at,
    parse_datetime,
    profile_from_ocpp,
)

SCENARIOS = Path(__file__).parents[1] / "data" / "schedule_scenarios"
T0 = datetime(2026, 3, 2, tzinfo=UTC)


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    data["installed"] = [
        InstalledProfile(p["evse_id"], profile_from_ocpp(p["profile"])) for p in data["profiles"]
    ]
    data["tx"] = {
        int(evse): Transaction(t["id"], parse_datetime(t["started_at"]))
        for evse, t in data["transactions"].items()
    }
    return data


def _scenario_kwargs(data: dict[str, Any]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"unit": data["unit"]}
    if "nominal_voltage_v" in data:
        kwargs["nominal_voltage_v"] = data["nominal_voltage_v"]
    if "discharge_enabled" in data:
        kwargs["discharge_enabled"] = data["discharge_enabled"]
    return kwargs


def test_every_scenario_is_described_in_the_readme() -> None:
    readme = (SCENARIOS / "README.md").read_text()
    files = sorted(SCENARIOS.glob("*.json"))
    assert len(files) >= 20
    for path in files:
        assert f"`{path.name}`" in readme


@pytest.mark.parametrize("path", sorted(SCENARIOS.glob("*.json")), ids=lambda p: p.stem)
def test_scenario(path: Path) -> None:
    data = _load(path)
    start = parse_datetime(data["start"])
    kwargs = _scenario_kwargs(data)
    periods = composite_schedule(
        data["installed"],
        data["tx"],
        data["evse_ids"],
        evse_id=data["evse_id"],
        start=start,
        duration=data["duration"],
        **kwargs,
    )
    got = [(p.offset_s, p.limit) for p in periods]
    expected = [(float(o), None if v is None else float(v)) for o, v in data["expected"]]
    assert len(got) == len(expected), got
    for (got_offset, got_limit), (offset, limit) in zip(got, expected, strict=True):
        assert got_offset == offset
        assert (got_limit is None and limit is None) or got_limit == pytest.approx(limit)
    # limit_at agrees with the composite at the start of every period.
    for period in periods:
        value, _ = limit_at(
            data["installed"],
            data["tx"],
            data["evse_ids"],
            evse_id=data["evse_id"],
            now=period.start,
            **kwargs,
        )
        assert value == period.limit


# ---------- limit_at and helpers ----------


def _absolute(
    profile_id: int,
    purpose: ChargingProfilePurpose,
    periods: list[tuple[int, float]],
    *,
    start: datetime = T0,
    stack_level: int = 0,
    duration: int | None = None,
    kind: ChargingProfileKind = ChargingProfileKind.ABSOLUTE,
    recurrency: RecurrencyKind | None = None,
    transaction_id: str | None = None,
    valid_from: datetime | None = None,
    valid_to: datetime | None = None,
    unit: ChargingRateUnit = ChargingRateUnit.W,
) -> ChargingProfile:
    return ChargingProfile(
        id=profile_id,
        stack_level=stack_level,
        purpose=purpose,
        kind=kind,
        recurrency_kind=recurrency,
        transaction_id=transaction_id,
        valid_from=valid_from,
        valid_to=valid_to,
        schedules=(
            ChargingSchedule(
                id=profile_id,
                charging_rate_unit=unit,
                start_schedule=None if kind is ChargingProfileKind.RELATIVE else start,
                duration=duration,
                periods=tuple(ChargingSchedulePeriod(s, limit) for s, limit in periods),
            ),
        ),
    )


TXD = ChargingProfilePurpose.TX_DEFAULT_PROFILE
MAX = ChargingProfilePurpose.CHARGING_STATION_MAX_PROFILE


def test_limit_at_returns_value_and_next_change() -> None:
    profiles = [InstalledProfile(0, _absolute(1, TXD, [(0, 7000), (600, 7000), (1200, 3000)]))]
    value, change = limit_at(profiles, {}, [1], evse_id=1, now=T0 + timedelta(seconds=5))
    # The boundary at 600 s keeps 7 kW, so the next real change is at 1200 s.
    assert (value, change) == (7000, T0 + timedelta(seconds=1200))
    value, change = limit_at(profiles, {}, [1], evse_id=1, now=T0 + timedelta(seconds=1200))
    assert (value, change) == (3000, None)


def test_limit_at_before_an_absolute_schedule_starts() -> None:
    profiles = [InstalledProfile(0, _absolute(1, TXD, [(0, 5000)], start=T0 + timedelta(hours=1)))]
    assert limit_at(profiles, {}, [1], evse_id=1, now=T0) == (None, T0 + timedelta(hours=1))


def test_limit_at_finds_recurring_change_far_ahead() -> None:
    # A stack-1 Absolute profile hides a daily schedule for 20 days, then the daily one shows.
    daily = _absolute(
        1,
        TXD,
        [(0, 1000), (43200, 2000)],
        kind=ChargingProfileKind.RECURRING,
        recurrency=RecurrencyKind.DAILY,
    )
    cover = _absolute(2, TXD, [(0, 2000)], stack_level=1, duration=20 * 86400 + 3600)
    profiles = [InstalledProfile(0, daily), InstalledProfile(0, cover)]
    value, change = limit_at(profiles, {}, [1], evse_id=1, now=T0)
    assert value == 2000
    # At day 20 + 1 h the cover ends, the daily profile says 1000 until noon.
    assert change == T0 + timedelta(days=20, hours=1)
    value, change = limit_at(profiles, {}, [1], evse_id=1, now=T0 + timedelta(days=21))
    assert (value, change) == (1000, T0 + timedelta(days=21, hours=12))


def test_limit_at_with_equal_values_across_recurrences_never_changes() -> None:
    flat = _absolute(
        1, TXD, [(0, 1000)], kind=ChargingProfileKind.RECURRING, recurrency=RecurrencyKind.WEEKLY
    )
    assert limit_at([InstalledProfile(0, flat)], {}, [1], evse_id=1, now=T0) == (1000, None)


def test_k08_unknown_evse_raises() -> None:
    with pytest.raises(ValueError, match="unknown EVSE"):
        composite_schedule([], {}, [1], evse_id=3, start=T0, duration=60)
    with pytest.raises(ValueError, match="unknown EVSE"):
        limit_at([], {}, [1], evse_id=3, now=T0)


def test_k08_composite_to_ocpp_rounds_offsets_and_fills_unlimited() -> None:
    tx = {1: Transaction("tx-1", T0 + timedelta(seconds=10, milliseconds=500))}
    relative = _absolute(1, TXD, [(0, 1000), (60, 2000)], kind=ChargingProfileKind.RELATIVE)
    periods = composite_schedule(
        [InstalledProfile(0, relative)], tx, [1], evse_id=1, start=T0, duration=3600
    )
    payload = composite_to_ocpp(
        periods, evse_id=1, start=T0, duration=3600, unit="W", unlimited=50000
    )
    assert payload == {
        "evseId": 1,
        "duration": 3600,
        "scheduleStart": "2026-03-02T00:00:00.000Z",
        "chargingRateUnit": "W",
        "chargingSchedulePeriod": [
            {"startPeriod": 0, "limit": 50000},
            {"startPeriod": 10, "limit": 1000},
            {"startPeriod": 70, "limit": 2000},
        ],
    }


def test_station_bound_in_amps_converts_with_voltage() -> None:
    profiles = [
        InstalledProfile(0, _absolute(1, TXD, [(0, 20000)])),
        InstalledProfile(0, _absolute(2, MAX, [(0, 25)], unit=ChargingRateUnit.A)),
    ]
    periods = composite_schedule(
        profiles, {}, [1], evse_id=1, start=T0, duration=60, nominal_voltage_v=500
    )
    assert [(p.offset_s, p.limit) for p in periods] == [(0.0, 12500.0)]


# ---------- hypothesis properties ----------

PURPOSES = [
    ChargingProfilePurpose.TX_DEFAULT_PROFILE,
    ChargingProfilePurpose.TX_PROFILE,
    ChargingProfilePurpose.CHARGING_STATION_EXTERNAL_CONSTRAINTS,
]
LIMITS = st.integers(min_value=-20, max_value=20).map(lambda k: k * 1000.0)


@st.composite
def _profile(draw: st.DrawFn, profile_id: int) -> InstalledProfile:
    purpose = draw(st.sampled_from(PURPOSES))
    kind = draw(st.sampled_from(list(ChargingProfileKind)))
    starts = sorted(draw(st.sets(st.integers(1, 3 * 86400), max_size=5)))
    periods = [(s, draw(LIMITS)) for s in [0, *starts]]
    evse = (
        draw(st.sampled_from([0, 1, 2])) if purpose is not ChargingProfilePurpose.TX_PROFILE else 1
    )
    valid_from = draw(
        st.none() | st.integers(-86400, 3 * 86400).map(lambda s: T0 + timedelta(seconds=s))
    )
    valid_to = (
        None
        if valid_from is None or draw(st.booleans())
        else valid_from + timedelta(seconds=draw(st.integers(1, 2 * 86400)))
    )
    profile = _absolute(
        profile_id,
        purpose,
        periods,
        start=T0 + timedelta(seconds=draw(st.integers(-86400, 86400))),
        stack_level=draw(st.integers(0, 3)),
        duration=draw(st.none() | st.integers(1, 4 * 86400)),
        kind=kind,
        recurrency=draw(st.sampled_from(list(RecurrencyKind)))
        if kind is ChargingProfileKind.RECURRING
        else None,
        transaction_id="tx-1" if purpose is ChargingProfilePurpose.TX_PROFILE else None,
        valid_from=valid_from,
        valid_to=valid_to,
        unit=draw(st.sampled_from(list(ChargingRateUnit))),
    )
    return InstalledProfile(evse, profile)


@st.composite
def _station(draw: st.DrawFn) -> tuple[list[InstalledProfile], dict[int, Transaction], list[int]]:
    count = draw(st.integers(0, 5))
    profiles = [draw(_profile(i + 1)) for i in range(count)]
    # An optional single-period Absolute max profile: the bound the property checks.
    if draw(st.booleans()):
        max_periods = [(0, draw(LIMITS))]
        for s in sorted(draw(st.sets(st.integers(1, 3 * 86400), max_size=3))):
            max_periods.append((s, draw(LIMITS)))
        profiles.append(InstalledProfile(0, _absolute(99, MAX, max_periods, start=T0)))
    transactions = {}
    if draw(st.booleans()):
        started = T0 + timedelta(milliseconds=draw(st.integers(-86400_000, 86400_000)))
        transactions[1] = Transaction("tx-1", started)
    return profiles, transactions, [1, 2]


def _max_bound(profiles: list[InstalledProfile], t: datetime) -> float | None:
    """Independent evaluation of the (single, Absolute, from T0) max profile used above."""
    for installed in profiles:
        if installed.profile.purpose is MAX and t >= T0:
            elapsed = (t - T0).total_seconds()
            return [
                p.limit for p in installed.profile.schedule.periods if p.start_period <= elapsed
            ][-1]
    return None


PROPERTY_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
OFFSETS = st.integers(0, 4 * 86400 * 1000).map(lambda ms: T0 + timedelta(milliseconds=ms))


@PROPERTY_SETTINGS
@given(station=_station(), evse_id=st.sampled_from([0, 1, 2]), start=OFFSETS)
def test_property_composite_is_constant_per_period_agrees_with_limit_at_and_respects_max(
    station: tuple[list[InstalledProfile], dict[int, Transaction], list[int]],
    evse_id: int,
    start: datetime,
) -> None:
    profiles, transactions, evses = station
    duration = timedelta(days=2)
    periods = composite_schedule(
        profiles, transactions, evses, evse_id=evse_id, start=start, duration=duration
    )
    assert periods[0].start == start
    ends = [p.start for p in periods[1:]] + [start + duration]
    for period, end in zip(periods, ends, strict=True):
        assert period.start < end
        probes = {
            period.start,
            period.start + (end - period.start) / 2,
            end - timedelta(microseconds=1),
        }
        for t in probes:
            value, change = limit_at(profiles, transactions, evses, evse_id=evse_id, now=t)
            assert value == period.limit
            if end < start + duration:
                assert change == end  # the next period is a real change (periods are merged)
        bound = _max_bound(profiles, period.start)
        if bound is not None:
            assert period.limit is not None
            low, high = (-bound, bound) if bound >= 0 else (bound, 0.0)
            assert low - 1e-6 <= period.limit <= high + 1e-6
    for left, right in itertools.pairwise(periods):
        assert left.limit != right.limit


@PROPERTY_SETTINGS
@given(station=_station(), evse_id=st.sampled_from([0, 1, 2]), now=OFFSETS)
def test_property_next_change_is_after_now_and_limit_constant_until_then(
    station: tuple[list[InstalledProfile], dict[int, Transaction], list[int]],
    evse_id: int,
    now: datetime,
) -> None:
    profiles, transactions, evses = station
    value, change = limit_at(profiles, transactions, evses, evse_id=evse_id, now=now)
    if change is None:
        horizon = timedelta(days=10)
    else:
        assert change > now
        horizon = change - now
        after, _ = limit_at(profiles, transactions, evses, evse_id=evse_id, now=change)
        assert after != value
    periods = composite_schedule(
        profiles, transactions, evses, evse_id=evse_id, start=now, duration=horizon
    )
    assert [p.limit for p in periods] == [value]


@PROPERTY_SETTINGS
@given(station=_station(), now=OFFSETS)
def test_property_discharge_disabled_never_negative(
    station: tuple[list[InstalledProfile], dict[int, Transaction], list[int]], now: datetime
) -> None:
    profiles, transactions, evses = station
    for evse_id in (0, 1, 2):
        value, _ = limit_at(
            profiles, transactions, evses, evse_id=evse_id, now=now, discharge_enabled=False
        )
        assert value is None or value >= 0
        if evse_id == 0:
            assert value is None or not math.isnan(value)
