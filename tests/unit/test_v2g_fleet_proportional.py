"""Issue 12 (fleet dispatch): the seed aggregator's proportional split is the default;
water-filling stays available."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csms.v2g.fleet import Flexibility, dispatch, proportional_split, water_fill

NOW = datetime(2024, 8, 5, 8, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def flex(vid: str, up: float, down: float) -> Flexibility:
    return Flexibility(vid, up, down, 0.0, 0.0, HOUR, NOW + HOUR)


def test_issue12_dispatch_default_is_proportional_to_available_power() -> None:
    # v2g.md: a vehicle near its reserve (b, 1 kW) gets a share by its headroom, not by max power
    fleet = [flex("a", 7, 7), flex("b", 7, 1), flex("c", 7, 4)]
    allocation = dispatch(-6.0, fleet)
    assert allocation.per_vehicle_kw == pytest.approx({"a": -3.5, "b": -0.5, "c": -2.0})
    assert allocation.delivered_kw == pytest.approx(-6.0)
    equal = dispatch(-6.0, fleet, method="water_filling")
    assert equal.per_vehicle_kw == pytest.approx({"a": -2.5, "b": -1.0, "c": -2.5})


def test_issue12_proportional_caps_and_redistributes_with_weights() -> None:
    # weights 1:1:8 -> c's 8 kW share is over its 2 kW cap; its 6 kW go 1:1 to a and b
    out = proportional_split(10.0, np.array([10.0, 10.0, 2.0]), np.array([1.0, 1.0, 8.0]))
    assert out == pytest.approx([4.0, 4.0, 2.0])


def test_issue12_proportional_shortfall_and_charge_direction() -> None:
    short = dispatch(-20.0, [flex("a", 7, 7), flex("b", 7, 1)])
    assert short.delivered_kw == pytest.approx(-8.0)
    assert short.shortfall_kw == pytest.approx(12.0)
    charge = dispatch(5.0, [flex("a", 3, 7), flex("b", 7, 1)])
    assert charge.per_vehicle_kw == pytest.approx({"a": 1.5, "b": 3.5})


def test_issue12_unknown_method_is_refused() -> None:
    with pytest.raises(ValueError, match="method"):
        dispatch(1.0, [flex("a", 1, 1)], method="greedy")


caps_st = st.lists(st.one_of(st.just(0.0), st.floats(1e-3, 500.0)), min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(caps=caps_st, frac=st.floats(0.0, 1.5), data=st.data())
def test_issue12_proportional_properties(
    caps: list[float], frac: float, data: st.DataObject
) -> None:
    c = np.array(caps)
    weights = data.draw(
        st.one_of(
            st.none(),
            st.lists(
                st.one_of(st.just(0.0), st.floats(1e-3, 100.0)),
                min_size=len(caps),
                max_size=len(caps),
            ),
        )
    )
    w = None if weights is None else np.array(weights)
    target = frac * float(c.sum())
    out = proportional_split(target, c, w)
    usable = c > 0 if w is None else (c > 0) & (w > 0)
    expected = min(target, float(c[usable].sum()))
    assert out.sum() == pytest.approx(expected, rel=1e-9, abs=1e-6)
    assert np.all(out >= 0.0) and np.all(out <= c + 1e-9)
    # proportional among the uncapped: out_i / w_i is one level for all of them
    ww = c if w is None else w
    free = usable & (out < c - 1e-9)
    if free.sum() >= 2:
        ratios = out[free] / ww[free]
        assert ratios.max() == pytest.approx(ratios.min(), rel=1e-6, abs=1e-9)
    # same answer as water-filling with the same weights (both are the capped proportional split)
    assert out == pytest.approx(water_fill(target, c, ww), rel=1e-6, abs=1e-6)
    # permutation invariance
    perm = np.array(data.draw(st.permutations(range(len(caps)))))
    again = proportional_split(target, c[perm], None if w is None else w[perm])
    assert again == pytest.approx(out[perm], rel=1e-9, abs=1e-9)


@settings(max_examples=100, deadline=None)
@given(
    ups=st.lists(st.tuples(st.floats(0, 50), st.floats(0, 50)), min_size=1, max_size=30),
    target=st.floats(-2000.0, 2000.0),
)
def test_issue12_dispatch_signs_and_limits(ups: list[tuple[float, float]], target: float) -> None:
    fleet = [flex(f"v{i}", u, d) for i, (u, d) in enumerate(ups)]
    allocation = dispatch(target, fleet)
    avail = sum(f.down_kw if target < 0 else f.up_kw for f in fleet)
    assert abs(allocation.delivered_kw) == pytest.approx(min(abs(target), avail), abs=1e-6)
    for f in fleet:
        p = allocation.per_vehicle_kw[f.vehicle_id]
        if target < 0:
            assert -f.down_kw - 1e-9 <= p <= 0.0
        else:
            assert 0.0 <= p <= f.up_kw + 1e-9
