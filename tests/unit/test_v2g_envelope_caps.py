"""Issue 18: V2G plans within the site's operating envelope (csms/v2g/envelope_caps.py and the
optimizer's caps), property-tested: a plan never leaves its station's envelope share."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from csms.v2g.envelope_caps import clip_plan, narrowed_session, within_caps
from csms.v2g.optimizer import PlanInputs, optimize
from csms.v2g.prices import PriceSeries
from csms.v2g.vehicle import PowerCap, Vehicle, VehicleSession, tightest

START = datetime(2026, 12, 6, 6, 0, tzinfo=UTC)
STEP = timedelta(minutes=30)


def leaf(**fields: float) -> Vehicle:
    values: dict[str, float] = {"capacity_kwh": 40.0, "max_charge_kw": 7.0}
    values.update(fields)
    return Vehicle("leaf", max_discharge_kw=7.0, round_trip_efficiency=0.9, **values)


@st.composite
def capped_sites(draw: st.DrawFn) -> PlanInputs:
    n = draw(st.integers(min_value=2, max_value=12))
    imports = draw(st.lists(st.floats(-50.0, 500.0), min_size=n, max_size=n))
    exports = [p - draw(st.floats(0.0, 20.0)) for p in imports]
    sessions = []
    for i in range(draw(st.integers(1, 2))):
        caps = []
        at = START - timedelta(minutes=draw(st.integers(0, 30)))
        for _ in range(draw(st.integers(1, 4))):
            length = draw(st.none() | st.integers(1, 6 * 60))
            end = None if length is None else at + timedelta(minutes=length)
            caps.append(PowerCap(at, end, draw(st.floats(0.0, 22.0)), draw(st.floats(0.0, 22.0))))
            if end is None:
                break
            at = end + timedelta(minutes=draw(st.integers(0, 60)))
        sessions.append(
            VehicleSession(
                replace(leaf(), vehicle_id=f"ev{i}"),
                soc=draw(st.floats(0.0, 1.0)),
                departure=START + timedelta(minutes=draw(st.integers(31, n * 30))),
                target_soc=draw(st.floats(0.0, 1.0)),
                power_caps=tuple(caps),
            )
        )
    now = START + timedelta(minutes=draw(st.integers(0, 20)))
    prices = PriceSeries(START, STEP, tuple(imports), tuple(exports))
    return PlanInputs(now, prices, tuple(sessions))


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(capped_sites())
def test_a_plan_never_leaves_the_envelope(inputs: PlanInputs) -> None:
    plan = optimize(inputs)
    for session in inputs.sessions:
        vehicle_plan = plan.vehicles[session.vehicle_id]
        assert within_caps(vehicle_plan, session.power_caps)
        # The guard leaves not even round-off beyond a cap.
        assert within_caps(clip_plan(vehicle_plan, session), session.power_caps, tolerance_kw=0)


def test_the_export_cap_binds_a_discharge_into_the_peak() -> None:
    dear = (10.0, 10.0, 80.0, 80.0, 80.0, 10.0)
    session = VehicleSession(leaf(), soc=0.9, departure=START + 6 * STEP, target_soc=0.5)
    prices = PriceSeries(START, STEP, dear, tuple(p * 0.95 for p in dear))
    free = optimize(PlanInputs(START, prices, (session,))).vehicles["leaf"]
    assert min(free.power_kw) == pytest.approx(-7.0)
    cap = PowerCap(START + 2 * STEP, START + 4 * STEP, 7.0, 1.5)
    capped = replace(session, power_caps=(cap,))
    bound = optimize(PlanInputs(START, prices, (capped,))).vehicles["leaf"]
    assert bound.power_kw[2] == pytest.approx(-1.5) and bound.power_kw[3] == pytest.approx(-1.5)
    assert bound.power_kw[4] == pytest.approx(-7.0)  # after the cap: the car's own limit


@given(
    powers=st.lists(st.floats(-7.0, 7.0), min_size=1, max_size=8),
    charge=st.floats(0.0, 7.0),
    discharge=st.floats(0.0, 7.0),
)
def test_clip_plan_brings_any_plan_within_its_caps(
    powers: list[float], charge: float, discharge: float
) -> None:
    n = len(powers)
    session = VehicleSession(
        leaf(),
        soc=0.5,
        departure=START + n * STEP,
        target_soc=0.5,
        power_caps=(PowerCap(START + STEP, None, charge, discharge),),
    )
    prices = PriceSeries(START, STEP, (10.0,) * n, (5.0,) * n)
    free = replace(session, power_caps=())
    plan = optimize(PlanInputs(START, prices, (free,))).vehicles["leaf"]
    forced = replace(plan, power_kw=tuple(powers))
    clipped = clip_plan(forced, session)
    assert within_caps(clipped, session.power_caps, tolerance_kw=0)
    if within_caps(forced, session.power_caps, tolerance_kw=0):
        assert clipped is forced  # nothing to cut: the plan as it was
    else:
        assert "clipped to the site's operating envelope" in clipped.warnings


def test_tightest_and_narrowed_session() -> None:
    caps = (
        PowerCap(START, START + STEP, 5.0, 2.0),
        PowerCap(START + STEP, None, 3.0, 4.0),
    )
    assert tightest(caps, START, START + STEP) == (5.0, 2.0)
    assert tightest(caps, START, START + 2 * STEP) == (3.0, 2.0)  # overlapping both
    assert tightest(caps, START - STEP, START) is None  # touching is not overlapping
    session = VehicleSession(leaf(), 0.5, START + 4 * STEP, 0.8, power_caps=caps)
    narrowed = narrowed_session(session, START, START + 2 * STEP)
    assert (narrowed.vehicle.max_charge_kw, narrowed.vehicle.max_discharge_kw) == (3.0, 2.0)
    assert narrowed_session(session, START - 2 * STEP, START) is session
