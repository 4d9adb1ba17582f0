"""Operating envelopes (CSIP-AUS, issue 18), pure: the envelope in force and what it leaves the
site's chargers, property-tested."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from csms.domain.envelopes import (
    ChargerBounds,
    OperatingEnvelope,
    charger_bounds,
    envelope_at,
    envelopes_in_force,
    share,
)

T0 = datetime(2026, 12, 6, 17, 0, tzinfo=UTC)


def env(**values: object) -> OperatingEnvelope:
    base: dict[str, object] = {
        "site_id": "home-1",
        "source": "csip-aus",
        "control_id": "c1",
        "is_default": False,
        "start": T0,
        "end": T0 + timedelta(hours=1),
        "received_at": T0 - timedelta(minutes=5),
    }
    base.update(values)
    return OperatingEnvelope(**base)  # type: ignore[arg-type]


def test_envelope_in_force_control_over_default_and_newest_default() -> None:
    day_ago = T0 - timedelta(days=1)
    old_default = env(
        control_id="d1", is_default=True, end=None, export_limit_w=5000.0, start=day_ago,
        received_at=day_ago,
    )  # fmt: skip
    new_default = env(
        control_id="d2", is_default=True, end=None, export_limit_w=3000.0, start=day_ago,
        received_at=T0 - timedelta(hours=2),
    )  # fmt: skip
    control = env(export_limit_w=1500.0)
    schedule = [old_default, new_default, control]
    assert envelope_at(schedule, T0 + timedelta(minutes=30)) == control
    assert envelope_at(schedule, T0 + timedelta(hours=1)) == new_default  # control ended
    assert envelope_at([control], T0 - timedelta(seconds=1)) is None


_windows = st.lists(
    st.tuples(
        st.integers(-120, 120),  # start, minutes from T0
        st.one_of(st.none(), st.integers(1, 120)),  # duration in minutes, None: open-ended
        st.booleans(),  # a default control
        st.integers(0, 60),  # received, minutes before T0
    ),
    max_size=6,
)


@given(_windows, st.integers(-180, 240))
def test_the_envelopes_in_force_are_what_envelope_at_takes(
    windows: list[tuple[int, int | None, bool, int]], at_min: int
) -> None:
    """The announced state names the envelopes in force (issue 18): they are exactly what
    decides the envelope in force, so a boundary that changes it changes them."""
    schedule = [
        env(
            control_id=f"c{k}",
            is_default=default,
            start=T0 + timedelta(minutes=start),
            end=None if length is None else T0 + timedelta(minutes=start + length),
            received_at=T0 - timedelta(minutes=received),
            export_limit_w=1000.0 + k,
        )
        for k, (start, length, default, received) in enumerate(windows)
    ]
    t = T0 + timedelta(minutes=at_min)
    found = envelopes_in_force(schedule, t)
    assert all(e.covers(t) for e in found)
    assert (envelope_at(schedule, t) is None) == (not found)
    if found and not found[0].is_default:  # every control covering t, no default
        assert {e.control_id for e in found} == {
            e.control_id for e in schedule if not e.is_default and e.covers(t)
        }
    elif found:  # only when no control covers t: one default
        assert len(found) == 1 and envelope_at(schedule, t) == found[0]
        assert not any(not e.is_default and e.covers(t) for e in schedule)


def test_overlapping_controls_merge_to_the_tightest() -> None:
    a = env(export_limit_w=2000.0, import_limit_w=9000.0, energize=True)
    b = env(control_id="c2", export_limit_w=4000.0, import_limit_w=5000.0, energize=False)
    merged = envelope_at([a, b], T0)
    assert merged is not None
    assert (merged.export_limit_w, merged.import_limit_w, merged.energize) == (2000, 5000, False)


@pytest.mark.parametrize(
    "values",
    [
        {"export_limit_w": -1.0},
        {"import_limit_w": float("nan")},
        {"generation_limit_w": 1e12},
        {"ramp_rate_pct_per_s": 0.0},
        {"end": T0},
        {"start": datetime(2026, 12, 6)},
    ],
)
def test_bad_envelopes_are_refused(values: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        env(**values)


def test_export_limit_counts_the_household_and_no_transfer_stops_everything() -> None:
    envelope = env(export_limit_w=1500.0, import_limit_w=10_000.0)
    # The house draws 2 kW: the car may export 3.5 kW before the site exports 1.5 kW.
    assert charger_bounds(envelope, 7000, 7000, site_base_w=2000) == ChargerBounds(7000, 3500)
    # Solar exports 3 kW already: the car may not discharge at all; it may charge 7 kW.
    assert charger_bounds(envelope, 7000, 7000, site_base_w=-3000) == ChargerBounds(7000, 0)
    assert charger_bounds(envelope, 7000, 7000) == ChargerBounds(7000, 1500)
    assert charger_bounds(env(connect=False), 7000, 7000) == ChargerBounds(0, 0)
    assert charger_bounds(None, 7000, 5000) == ChargerBounds(7000, 5000)


limits = st.none() | st.floats(0, 50_000)


@given(
    export=limits,
    imp=limits,
    gen=limits,
    load=limits,
    base=st.none() | st.floats(-20_000, 20_000),
    rated=st.tuples(st.floats(0, 30_000), st.floats(0, 30_000)),
)
def test_the_site_never_exceeds_the_envelope_at_its_connection_point(
    export: float | None,
    imp: float | None,
    gen: float | None,
    load: float | None,
    base: float | None,
    rated: tuple[float, float],
) -> None:
    envelope = env(
        export_limit_w=export, import_limit_w=imp, generation_limit_w=gen, load_limit_w=load
    )
    bounds = charger_bounds(envelope, rated[0], rated[1], base)
    assert 0 <= bounds.max_charge_w <= rated[0]
    assert 0 <= bounds.max_discharge_w <= rated[1]
    b = base or 0.0
    if imp is not None and bounds.max_charge_w > 0:
        assert b + bounds.max_charge_w <= imp + 1e-6  # site import within the limit
    if export is not None and bounds.max_discharge_w > 0:
        assert bounds.max_discharge_w - b <= export + 1e-6  # site export within the limit
    if gen is not None:
        assert bounds.max_discharge_w <= gen
    if load is not None:
        assert bounds.max_charge_w <= load


@given(
    total=st.tuples(st.floats(0, 50_000), st.floats(0, 50_000)),
    ratings=st.lists(st.tuples(st.floats(0, 22_000), st.floats(0, 22_000)), min_size=1, max_size=8),
)
def test_shares_sum_within_the_site_and_each_within_its_station(
    total: tuple[float, float], ratings: list[tuple[float, float]]
) -> None:
    parts = share(ChargerBounds(*total), ratings)
    assert sum(p.max_charge_w for p in parts) <= total[0] + 1e-6
    assert sum(p.max_discharge_w for p in parts) <= total[1] + 1e-6
    for part, (charge, discharge) in zip(parts, ratings, strict=True):
        assert 0 <= part.max_charge_w <= charge + 1e-9
        assert 0 <= part.max_discharge_w <= discharge + 1e-9
