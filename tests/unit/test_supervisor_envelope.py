"""The safety supervisor applies the operating envelope (CSIP-AUS, issue 18) as a local limit:
charge within envelope_max_charge_w ("envelope_import"), discharge within
envelope_max_discharge_w ("envelope_export"), W -> A with the conservative power voltage, and
|current| growing no faster than envelope_ramp_pct_per_s of the EVSE's rated power per second.
Properties (hypothesis): the bounds hold in both directions, the envelope ramp holds, and an
envelope only ever tightens what the supervisor would command without it."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chargepoint_firmware.safety import SafetyConfig, SafetyInputs, SafetyState, supervise
from chargepoint_firmware.safety.supervisor import envelope_ramp_a_per_s
from tests.unit.test_safety_properties import Tick, configs, ticks
from tests.unit.test_safety_supervisor import CONFIG, RUNNING, decide, make_inputs

EPS = 1e-6


# --- bounds -----------------------------------------------------------------------------------


def test_envelope_export_bound_clamps_discharge() -> None:
    # 5 kW export at 380 V measured: 13.16 A, below every other discharge limit.
    decision = decide(requested_current_a=-40.0, envelope_max_discharge_w=5000.0)
    assert decision.current_a == pytest.approx(-5000.0 / 380.0)
    assert decision.limited_by == "envelope_export"
    assert decision.discharge_limit_a == pytest.approx(5000.0 / 380.0)


def test_envelope_import_bound_clamps_charge() -> None:
    decision = decide(requested_current_a=40.0, envelope_max_charge_w=3800.0)
    assert decision.current_a == pytest.approx(10.0)
    assert decision.limited_by == "envelope_import"
    assert decision.charge_limit_a == pytest.approx(10.0)


def test_envelope_is_asymmetric() -> None:
    # No import allowed, 5 kW export allowed: discharge runs, charge does not.
    env = {"envelope_max_charge_w": 0.0, "envelope_max_discharge_w": 5000.0}
    assert decide(requested_current_a=30.0, **env).current_a == 0.0
    assert decide(requested_current_a=30.0, **env).limited_by == "envelope_import"
    assert decide(requested_current_a=-5.0, **env).current_a == -5.0


def test_no_transfer_envelope_stops_both_directions() -> None:
    env = {"envelope_max_charge_w": 0.0, "envelope_max_discharge_w": 0.0}
    assert decide(requested_current_a=30.0, **env).current_a == 0.0
    assert decide(requested_current_a=-30.0, **env).current_a == 0.0


def test_envelope_uses_the_conservative_voltage_on_a_low_reading() -> None:
    # 0 V measured: the power voltage is min_voltage_v (150 V), never 0 V or 1 V.
    decision = decide(
        requested_current_a=-50.0,
        measured_voltage_v=0.0,
        vehicle_min_discharge_voltage_v=None,
        envelope_max_discharge_w=1500.0,
    )
    assert decision.current_a == 0.0  # min_voltage stops discharge at 0 V anyway
    decision = decide(requested_current_a=50.0, measured_voltage_v=0.0, envelope_max_charge_w=1500)
    assert decision.current_a == pytest.approx(10.0)  # 1500 W / 150 V


def test_envelope_looser_than_other_limits_changes_nothing() -> None:
    plain = decide(requested_current_a=-300.0)
    loose = decide(requested_current_a=-300.0, envelope_max_discharge_w=1e9)
    assert (loose.current_a, loose.limited_by) == (plain.current_a, plain.limited_by)


def test_negative_envelope_reads_as_zero() -> None:
    assert decide(requested_current_a=-30.0, envelope_max_discharge_w=-5.0).current_a == 0.0


def test_non_finite_envelope_latches_a_fault() -> None:
    decision = decide(requested_current_a=-30.0, envelope_max_discharge_w=math.nan)
    assert decision.current_a == 0.0
    assert "non_finite_input:envelope_max_discharge_w" in decision.latched_faults


# --- ramp -------------------------------------------------------------------------------------


def test_envelope_ramp_is_a_percentage_of_rated_power_per_second() -> None:
    # 40 kW rated discharge, 1 %/s = 400 W/s, at 380 V = 1.053 A/s (tighter than 20 A/s).
    state = SafetyState(last_command_a=-10.0, last_tick=99.0)
    decision = decide(state=state, requested_current_a=-40.0, envelope_ramp_pct_per_s=1.0)
    assert decision.current_a == pytest.approx(-10.0 - 400.0 / 380.0)
    assert decision.limited_by == "envelope_ramp"
    # Charging: 50 kW rated charge.
    state = SafetyState(last_command_a=10.0, last_tick=99.0)
    decision = decide(state=state, requested_current_a=40.0, envelope_ramp_pct_per_s=1.0)
    assert decision.current_a == pytest.approx(10.0 + 500.0 / 380.0)


def test_looser_envelope_ramp_leaves_the_configured_ramp() -> None:
    state = SafetyState(last_command_a=10.0, last_tick=99.9)
    decision = decide(state=state, requested_current_a=50.0, envelope_ramp_pct_per_s=100.0)
    assert decision.current_a == pytest.approx(12.0)  # 20 A/s x 0.1 s
    assert decision.limited_by == "ramp_rate"


def test_envelope_ramp_decrease_is_immediate() -> None:
    state = SafetyState(last_command_a=-30.0, last_tick=99.9)
    decision = decide(state=state, requested_current_a=-3.0, envelope_ramp_pct_per_s=0.1)
    assert decision.current_a == -3.0


def test_envelope_ramp_with_infinite_rated_power_uses_current_times_max_voltage() -> None:
    config = replace(CONFIG, max_discharge_power_w=math.inf)
    inputs = make_inputs(envelope_ramp_pct_per_s=1.0)
    # 100 A x 500 V = 50 kW; 1 % = 500 W/s at 380 V.
    assert envelope_ramp_a_per_s(config, inputs, False, 380.0) == pytest.approx(500.0 / 380.0)
    unrated = replace(config, max_discharge_current_a=math.inf)
    assert envelope_ramp_a_per_s(unrated, inputs, False, 380.0) is None


def test_ramp_over_ticks_never_faster_than_the_envelope() -> None:
    state = SafetyState(last_tick=0.0)
    rate = 0.5 / 100 * CONFIG.max_discharge_power_w / 380.0  # 0.5 %/s of 40 kW at 380 V
    for tick in range(1, 51):
        now = tick * 0.1
        decision = supervise(
            CONFIG,
            state,
            make_inputs(
                now=now,
                vehicle_last_frame_at=now,
                csms_last_seen=now,
                requested_current_a=-40.0,
                measured_current_a=state.last_command_a,
                envelope_ramp_pct_per_s=0.5,
            ),
        )
        state = decision.state
        assert -decision.current_a == pytest.approx(rate * now)
    assert decision.limited_by == "envelope_ramp"


# --- properties -------------------------------------------------------------------------------

envelopes = st.fixed_dictionaries(
    {
        "envelope_max_charge_w": st.none() | st.floats(0, 60_000),
        "envelope_max_discharge_w": st.none() | st.floats(0, 60_000),
        "envelope_ramp_pct_per_s": st.none() | st.floats(0.01, 100),
    }
)


def _tick_inputs(tick: Tick, now: float, envelope: dict[str, Any]) -> SafetyInputs:
    return SafetyInputs(
        now=now,
        vehicle_last_frame_at=None if tick.frame_age is None else now - tick.frame_age,
        csms_last_seen=None if tick.csms_age is None else now - tick.csms_age,
        **tick.fields,  # type: ignore[arg-type]
        **envelope,
    )


def _power_voltage(config: SafetyConfig, inputs: SafetyInputs) -> float:
    return max(inputs.measured_voltage_v, config.min_voltage_v, 1.0)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs(), st.lists(st.tuples(ticks, envelopes), min_size=1, max_size=40))
def test_property_command_never_exceeds_the_envelope_or_its_ramp(
    config: SafetyConfig, sequence: list[tuple[Tick, dict[str, Any]]]
) -> None:
    state = SafetyState()
    now = 1000.0
    previous: float | None = None
    for tick, envelope in sequence:
        now += tick.dt
        inputs = _tick_inputs(tick, now, envelope)
        last = state.last_command_a
        decision = supervise(config, state, inputs)
        current = decision.current_a
        volts = _power_voltage(config, inputs)
        # In W at the power voltage (>= the measured one): the bound holds for the real power.
        if current > 0 and inputs.envelope_max_charge_w is not None:
            assert current * volts <= inputs.envelope_max_charge_w * (1 + 1e-9) + EPS
        if current < 0 and inputs.envelope_max_discharge_w is not None:
            assert -current * volts <= inputs.envelope_max_discharge_w * (1 + 1e-9) + EPS
        ramp = envelope_ramp_a_per_s(config, inputs, current > 0, volts)
        if ramp is not None and current != 0:
            dt = 0.0 if previous is None else now - previous
            same = last == 0 or (last > 0) == (current > 0)
            base = abs(last) if same else 0.0
            assert abs(current) <= base + ramp * dt + EPS
        state = decision.state
        previous = now


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    configs(),
    ticks,
    envelopes,
    st.floats(-300, 300),
    st.none() | st.floats(0.01, 5),
)
def test_property_envelope_only_tightens(
    config: SafetyConfig,
    tick: Tick,
    envelope: dict[str, Any],
    last_command: float,
    since_last: float | None,
) -> None:
    now = 1000.0
    last_tick = None if since_last is None else now - since_last
    state = SafetyState(last_command_a=last_command if last_tick else 0.0, last_tick=last_tick)
    without = supervise(config, state, _tick_inputs(tick, now, {}))
    bounded = supervise(config, state, _tick_inputs(tick, now, envelope))
    # Same direction (or stopped) and never more: no other limit is ever loosened.
    assert abs(bounded.current_a) <= abs(without.current_a) + EPS
    assert bounded.current_a == 0 or (bounded.current_a > 0) == (without.current_a > 0)
    assert bounded.charge_limit_a <= without.charge_limit_a + EPS
    assert bounded.discharge_limit_a <= without.discharge_limit_a + EPS
    assert bounded.state.latched_faults == without.state.latched_faults


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs(), st.lists(ticks, min_size=1, max_size=30), envelopes)
def test_property_envelope_only_tightens_over_a_sequence(
    config: SafetyConfig, sequence: list[Tick], envelope: dict[str, Any]
) -> None:
    # Two supervisors fed the same ticks, one with the envelope: never more current, any tick.
    # (Compared while the free one has no latched fault: a current-deviation trip depends on
    # the history of commands, which the envelope changes; once tripped the free one is at 0.)
    free, bound = SafetyState(), SafetyState()
    now = 1000.0
    for tick in sequence:
        now += tick.dt
        a = supervise(config, free, _tick_inputs(tick, now, {}))
        b = supervise(config, bound, _tick_inputs(tick, now, envelope))
        if a.state.latched_faults:
            break
        assert abs(b.current_a) <= abs(a.current_a) + 1e-6
        assert b.current_a == 0 or (b.current_a > 0) == (a.current_a > 0)
        free, bound = a.state, b.state


def test_envelope_defaults_leave_existing_behaviour() -> None:
    assert decide(state=RUNNING, requested_current_a=30.0).current_a == 30.0
