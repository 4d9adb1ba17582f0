"""A station's rating from its device model (csms.domain.station_ratings), pure."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from csms.domain.envelopes import DEFAULT_RATED_W, MAX_RATED_W
from csms.domain.station_ratings import RatingFallback, station_rating

FALLBACK = RatingFallback(7400.0, 5000.0)


def test_station_wide_power_wins_over_the_evses() -> None:
    found = [
        ("EVSE", 1, {"maxLimit": 22000.0}),
        ("ChargingStation", None, {"maxLimit": 11000.0, "minLimit": -5000.0}),
    ]
    assert station_rating(found, FALLBACK) == (11000.0, 5000.0)


def test_evses_are_summed_and_a_negative_min_limit_is_the_discharge_rating() -> None:
    found = [
        ("EVSE", 1, {"maxLimit": 7400.0, "minLimit": -3000.0}),
        ("EVSE", 2, {"maxLimit": 7400.0, "minLimit": -3000.0}),
    ]
    assert station_rating(found, FALLBACK) == (14800.0, 6000.0)


def test_without_a_discharge_rating_discharge_is_the_charge_rating() -> None:
    assert station_rating([("EVSE", 1, {"maxLimit": 7400.0, "minLimit": 0})], FALLBACK) == (
        7400.0,
        7400.0,
    )


def test_nothing_reported_or_nothing_believable_gives_the_fallback() -> None:
    assert station_rating([], FALLBACK) == (7400.0, 5000.0)
    junk = [
        ("EVSE", 1, {"maxLimit": float("nan")}),
        ("EVSE", 2, {"maxLimit": 5e9}),
        ("EVSE", 3, {"maxLimit": True}),
        ("EVSE", None, {"maxLimit": 7000.0}),  # an EVSE without its id is not counted
        ("Connector", 1, {"maxLimit": 7000.0}),
        ("ChargingStation", None, None),
    ]
    assert station_rating(junk, FALLBACK) == (7400.0, 5000.0)
    assert RatingFallback() == RatingFallback(DEFAULT_RATED_W, DEFAULT_RATED_W)


@pytest.mark.parametrize("bad", [0.0, -1.0, math.inf, math.nan, MAX_RATED_W * 2])
def test_a_fallback_must_be_a_believable_rating(bad: float) -> None:
    with pytest.raises(ValueError, match="fallback rating"):
        RatingFallback(bad, 7400.0)


limits = st.one_of(
    st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-(10**12), 10**12)
)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["ChargingStation", "EVSE", "Connector"]),
            st.one_of(st.none(), st.integers(0, 4)),
            st.fixed_dictionaries({}, optional={"maxLimit": limits, "minLimit": limits}),
        ),
        max_size=8,
    )
)
def test_any_report_gives_a_believable_rating(variables: list) -> None:  # type: ignore[type-arg]
    """Whatever a station reports, its rating is positive, finite and at most MAX_RATED_W."""
    charge, discharge = station_rating(variables, FALLBACK)
    for value in (charge, discharge):
        assert math.isfinite(value) and 0 < value <= MAX_RATED_W
