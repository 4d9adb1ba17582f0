"""Hypothesis properties: plans keep every limit, dispatch stays within headroom and sums
right, freq_watt is monotone where its curve is."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from csms.v2g.fleet import Flexibility, dispatch, water_fill
from csms.v2g.optimizer import PlanInputs, SiteLimits, optimize
from csms.v2g.prices import PriceSeries
from csms.v2g.vehicle import Vehicle, VehicleSession
from tests.unit.test_v2g_optimizer_numerics import (
    full_battery_before_a_negative_price,
    tiny_base_load_zero_import_limit,
)
from v2g_shared.freq_watt import FreqWattCurve, freq_watt

START = datetime(2024, 8, 5, tzinfo=UTC)
STEP = timedelta(minutes=30)
TOL = 1e-6

prices_st = st.floats(min_value=-100.0, max_value=2000.0, allow_nan=False)


@st.composite
def sites(draw: st.DrawFn) -> PlanInputs:
    n = draw(st.integers(min_value=2, max_value=16))
    imports = draw(st.lists(prices_st, min_size=n, max_size=n))
    exports = [p - draw(st.floats(0.0, 30.0)) for p in imports]
    sessions = []
    for i in range(draw(st.integers(min_value=1, max_value=3))):
        vehicle = Vehicle(
            f"ev{i}",
            capacity_kwh=draw(st.floats(10.0, 100.0)),
            max_charge_kw=draw(st.floats(0.0, 22.0)),
            max_discharge_kw=draw(st.floats(0.0, 22.0)),
            round_trip_efficiency=draw(st.floats(0.7, 1.0)),
            driving_reserve_soc=draw(st.floats(0.0, 0.5)),
            soc_max=draw(st.floats(0.8, 1.0)),
        )
        departure = START + timedelta(minutes=draw(st.integers(1, n * 30)))
        arrival = START + timedelta(minutes=draw(st.integers(0, 60)))
        sessions.append(
            VehicleSession(
                vehicle,
                soc=draw(st.floats(0.0, 1.0)),
                departure=max(departure, arrival + timedelta(minutes=1)),
                target_soc=draw(st.floats(0.0, 1.0)),
                arrival=arrival,
            )
        )
    base = draw(st.lists(st.floats(-5.0, 10.0), min_size=n, max_size=n))
    limits = SiteLimits(
        import_limit_kw=draw(st.none() | st.floats(0.0, 40.0)),
        export_limit_kw=draw(st.none() | st.floats(0.0, 40.0)),
    )
    now = START + timedelta(minutes=draw(st.integers(0, 20)))
    return PlanInputs(
        now,
        PriceSeries(START, STEP, tuple(imports), tuple(exports)),
        tuple(sessions),
        limits,
        tuple(base),
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sites())
@example(tiny_base_load_zero_import_limit(1e-7))
@example(full_battery_before_a_negative_price())
def test_plan_never_breaks_a_power_soc_or_site_limit(inputs: PlanInputs) -> None:
    plan = optimize(inputs)
    for session in inputs.sessions:
        v = session.vehicle
        vp = plan.vehicles[session.vehicle_id]
        power = np.asarray(vp.power_kw)
        soc = np.asarray(vp.soc_after)
        if power.size == 0:
            continue
        assert power.max() <= v.max_charge_kw + TOL
        assert power.min() >= -v.max_discharge_kw - TOL
        assert soc.max() <= max(v.soc_max, session.soc) + TOL
        assert soc.min() >= min(v.reserve_soc, session.soc) - TOL
        if session.soc < v.reserve_soc:
            assert power.min() >= -TOL  # below the reserve it only charges
        # SoC follows the shared model from the powers.
        energy = session.soc * v.capacity_kwh
        for p, h, s in zip(power, vp.hours, soc, strict=True):
            energy += p * h * v.charge_efficiency if p > 0 else p * h / v.discharge_efficiency
            assert abs(energy / v.capacity_kwh - s) <= 1e-5
        reachable = min(
            max(v.soc_max, session.soc),
            session.soc + v.charge_efficiency * v.max_charge_kw * sum(vp.hours) / v.capacity_kwh,
        )
        if inputs.site_limits.import_limit_kw is None and session.target_soc <= reachable - 1e-6:
            assert vp.target_met, vp.warnings
    assert inputs.site_base_kw is not None
    first = inputs.prices.index_at(inputs.now)
    base = np.asarray(inputs.site_base_kw[first : first + len(plan.site_net_kw)])
    net = np.asarray(plan.site_net_kw)
    if inputs.site_limits.import_limit_kw is not None:
        assert np.all(net <= np.maximum(inputs.site_limits.import_limit_kw, base) + 1e-5)
    if inputs.site_limits.export_limit_kw is not None:
        assert np.all(net >= -np.maximum(inputs.site_limits.export_limit_kw, -base) - 1e-5)


@settings(max_examples=200, deadline=None)
@given(
    st.floats(-500.0, 500.0),
    st.lists(st.tuples(st.floats(0.0, 50.0), st.floats(0.0, 50.0)), min_size=0, max_size=60),
)
def test_dispatch_within_headroom_and_sums_to_what_is_possible(
    target: float, headroom: list[tuple[float, float]]
) -> None:
    fleet = [
        Flexibility(f"v{i}", up, down, 0.0, 0.0, STEP, START)
        for i, (up, down) in enumerate(headroom)
    ]
    allocation = dispatch(target, fleet)
    total = sum(f.down_kw if target < 0 else f.up_kw for f in fleet)
    for f in fleet:
        kw = allocation.per_vehicle_kw[f.vehicle_id]
        if target < 0:
            assert -f.down_kw - TOL <= kw <= 0.0
        else:
            assert 0.0 <= kw <= f.up_kw + TOL
    expected = min(abs(target), total)
    assert abs(abs(allocation.delivered_kw) - expected) <= 1e-6 * max(1.0, expected)
    assert allocation.delivered_kw * target >= 0


@settings(max_examples=200, deadline=None)
@given(
    st.floats(0.0, 1e4),
    st.lists(st.floats(0.0, 100.0), max_size=40),
    st.lists(st.floats(0.01, 10.0), min_size=40, max_size=40),
)
def test_weighted_water_fill_one_level(
    target: float, caps: list[float], weights: list[float]
) -> None:
    c = np.asarray(caps)
    w = np.asarray(weights[: len(caps)])
    out = water_fill(target, c, w)
    assert np.all(out <= c + 1e-9) and np.all(out >= 0)
    assert abs(out.sum() - min(target, c.sum())) <= 1e-6 * max(1.0, target)
    # Vehicles not at their cap all sit at one level x weight.
    free = out < c - 1e-9
    if free.sum() >= 2:
        levels = out[free] / w[free]
        assert np.ptp(levels) <= 1e-6 * max(1.0, levels.max())


@st.composite
def monotone_curves(draw: st.DrawFn) -> FreqWattCurve:
    """Non-decreasing (Hz, W) points through (50 Hz, 0 W): W <= 0 below, >= 0 above."""
    below = sorted(set(draw(st.lists(st.floats(47.0, 49.99), min_size=1, max_size=4))))
    above = sorted(set(draw(st.lists(st.floats(50.01, 53.0), min_size=1, max_size=4))))
    low_w = sorted(draw(st.lists(st.floats(-1e4, 0.0), min_size=len(below), max_size=len(below))))
    high_w = sorted(draw(st.lists(st.floats(0.0, 1e4), min_size=len(above), max_size=len(above))))
    points = (*zip(below, low_w, strict=True), (50.0, 0.0), *zip(above, high_w, strict=True))
    return FreqWattCurve(points=points, deadband_hz=draw(st.floats(0.0, 0.5)))


@settings(max_examples=200, deadline=None)
@given(monotone_curves(), st.floats(45.0, 55.0), st.floats(45.0, 55.0))
def test_freq_watt_is_monotone_where_the_curve_is(curve: FreqWattCurve, a: float, b: float) -> None:
    lo, hi = min(a, b), max(a, b)
    assert freq_watt(curve, lo) <= freq_watt(curve, hi) + 1e-9
    ends = (curve.points[0][1], curve.points[-1][1])
    assert ends[0] - 1e-9 <= freq_watt(curve, lo) <= ends[1] + 1e-9
