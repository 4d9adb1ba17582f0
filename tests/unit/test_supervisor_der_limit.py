"""The safety supervisor applies the OCPP 2.1 DER LimitMaxDischarge in force (R04; the CSMS sends
the site's envelope share as one on 2.1) as a local limit, like the envelope's export bound:
discharge within der_max_discharge_w ("der_limit_max_discharge"), W -> A with the conservative
power voltage. Properties (hypothesis): the bound holds on every tick of any sequence, it never
touches charging, and it only ever tightens what the supervisor would command without it."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chargepoint_firmware.safety import SafetyConfig, SafetyInputs, SafetyState, supervise
from tests.unit.test_safety_properties import Tick, configs, ticks
from tests.unit.test_safety_supervisor import decide

EPS = 1e-6


def test_der_limit_max_discharge_clamps_discharge() -> None:
    # 3.8 kW at 380 V measured: 10 A, below every other discharge limit.
    decision = decide(requested_current_a=-40.0, der_max_discharge_w=3800.0)
    assert decision.current_a == pytest.approx(-10.0)
    assert decision.limited_by == "der_limit_max_discharge"
    assert decision.discharge_limit_a == pytest.approx(10.0)


def test_der_limit_leaves_charging_alone() -> None:
    decision = decide(requested_current_a=30.0, der_max_discharge_w=0.0)
    assert decision.current_a == 30.0


def test_der_limit_and_envelope_the_tighter_wins() -> None:
    decision = decide(
        requested_current_a=-40.0, der_max_discharge_w=3800.0, envelope_max_discharge_w=1900.0
    )
    assert decision.current_a == pytest.approx(-5.0)
    assert decision.limited_by == "envelope_export"
    decision = decide(
        requested_current_a=-40.0, der_max_discharge_w=1900.0, envelope_max_discharge_w=3800.0
    )
    assert decision.current_a == pytest.approx(-5.0)
    assert decision.limited_by == "der_limit_max_discharge"


def test_zero_percent_stops_discharge() -> None:
    assert decide(requested_current_a=-30.0, der_max_discharge_w=0.0).current_a == 0.0


def test_non_finite_der_limit_latches_a_fault() -> None:
    decision = decide(requested_current_a=-30.0, der_max_discharge_w=math.inf)
    assert decision.current_a == 0.0
    assert "non_finite_input:der_max_discharge_w" in decision.latched_faults


der_limits = st.fixed_dictionaries({"der_max_discharge_w": st.none() | st.floats(0, 60_000)})


def _tick_inputs(tick: Tick, now: float, extra: dict[str, Any]) -> SafetyInputs:
    return SafetyInputs(
        now=now,
        vehicle_last_frame_at=None if tick.frame_age is None else now - tick.frame_age,
        csms_last_seen=None if tick.csms_age is None else now - tick.csms_age,
        **tick.fields,  # type: ignore[arg-type]
        **extra,
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs(), st.lists(st.tuples(ticks, der_limits), min_size=1, max_size=40))
def test_property_discharge_never_exceeds_the_der_limit(
    config: SafetyConfig, sequence: list[tuple[Tick, dict[str, Any]]]
) -> None:
    state = SafetyState()
    now = 1000.0
    for tick, limit in sequence:
        now += tick.dt
        inputs = _tick_inputs(tick, now, limit)
        decision = supervise(config, state, inputs)
        volts = max(inputs.measured_voltage_v, config.min_voltage_v, 1.0)
        if decision.current_a < 0 and inputs.der_max_discharge_w is not None:
            assert -decision.current_a * volts <= inputs.der_max_discharge_w * (1 + 1e-9) + EPS
        state = decision.state


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs(), st.lists(ticks, min_size=1, max_size=30), der_limits)
def test_property_der_limit_only_tightens_over_a_sequence(
    config: SafetyConfig, sequence: list[Tick], limit: dict[str, Any]
) -> None:
    # Two supervisors fed the same ticks, one with the DER limit: never more current and
    # never the other direction.
    free, bound = SafetyState(), SafetyState()
    now = 1000.0
    for tick in sequence:
        now += tick.dt
        a = supervise(config, free, _tick_inputs(tick, now, {}))
        b = supervise(config, bound, _tick_inputs(tick, now, limit))
        if a.state.latched_faults:
            break
        assert abs(b.current_a) <= abs(a.current_a) + 1e-6
        assert b.current_a == 0 or (b.current_a > 0) == (a.current_a > 0)
        free, bound = a.state, b.state
