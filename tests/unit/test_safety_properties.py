"""Safety supervisor invariants over random sequences of ticks (hypothesis).

For any sequence of requests and vehicle/grid/CSMS states the commanded current never exceeds
an applicable limit, never discharges at or below the SoC floor, never exports without grid
(unless islanded backup), stays 0 while a fault is latched until an explicit reset, and never
grows in magnitude faster than the ramp rate. Each limit is re-derived here from the inputs,
independently of the supervisor's own bookkeeping.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import TypeVar

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chargepoint_firmware.safety import (
    SafetyConfig,
    SafetyInputs,
    SafetyState,
    reset_faults,
    supervise,
)

EPS = 1e-6
T = TypeVar("T")

VEHICLE_FAULTS = ("battery_overvoltage", "shift_not_park", "normal_stop_request")


@st.composite
def configs(draw: st.DrawFn) -> SafetyConfig:
    min_v = draw(st.floats(0, 200))
    return SafetyConfig(
        max_charge_current_a=draw(st.floats(0, 200)),
        max_discharge_current_a=draw(st.floats(0, 200)),
        max_charge_power_w=draw(st.floats(0, 100_000) | st.just(math.inf)),
        max_discharge_power_w=draw(st.floats(0, 100_000) | st.just(math.inf)),
        min_voltage_v=min_v,
        max_voltage_v=draw(st.floats(300, 1000)),
        driving_reserve_soc_pct=draw(st.floats(0, 60)),
        backup_reserve_soc_pct=draw(st.floats(0, 40)),
        can_silence_timeout_s=(silence := draw(st.floats(0.1, 2))),
        can_silence_max_s=silence + draw(st.floats(0, 3)),
        offline_timeout_s=draw(st.sampled_from([0.0, 0.5, 2.0, 20.0])),
        offline_safe_limit_a=draw(st.floats(0, 50)),
        ramp_rate_a_per_s=draw(st.floats(0.1, 500)),
        islanded_backup_enabled=draw(st.booleans()),
        deviation_current_a=draw(st.floats(0, 400)),
        deviation_voltage_v=draw(st.floats(0, 50)),
        deviation_time_s=draw(st.floats(0, 10)),
        offline_allows_islanded_backup=draw(st.booleans()),
    )


@dataclass(frozen=True)
class Tick:
    dt: float
    frame_age: float | None  # None: no vehicle frame yet
    csms_age: float | None  # None: never seen
    reset: bool
    fields: dict[str, object]


def rare(one_in: int) -> st.SearchStrategy[bool]:
    """True about once in `one_in` draws."""
    return st.integers(1, one_in).map(lambda n: n == 1)


def mostly(usual: st.SearchStrategy[T], other: st.SearchStrategy[T]) -> st.SearchStrategy[T]:
    """`usual` about 9 times in 10, so that energy actually flows in most sequences."""
    return st.integers(1, 10).flatmap(lambda n: other if n == 1 else usual)


optional_pct = mostly(st.none() | st.just(0.0) | st.floats(0, 100), st.floats(0, 255))

ticks = st.builds(
    Tick,
    dt=st.sampled_from([0.0, 0.05, 0.1, 0.1, 0.1, 0.1, 0.5, 2.0]),
    frame_age=mostly(st.floats(0, 0.2), st.none() | st.floats(0, 2.5)),
    csms_age=mostly(st.floats(0, 30), st.none()),
    reset=rare(4),
    fields=st.fixed_dictionaries(
        {
            "requested_current_a": st.floats(-400, 400),
            "measured_voltage_v": mostly(st.floats(150, 500), st.floats(0, 1000)),
            "measured_current_a": st.floats(-400, 400),
            "soc_pct": mostly(st.floats(0, 100), st.none()),
            "vehicle_charge_request_a": st.floats(0, 255),
            "vehicle_max_discharge_current_a": st.floats(0, 255),
            "vehicle_min_discharge_voltage_v": st.none() | st.floats(0, 300),
            "vehicle_max_voltage_v": mostly(st.none() | st.floats(300, 1000), st.floats(0, 1000)),
            "vehicle_discharge_compatible": mostly(st.just(True), st.just(False)),
            "vehicle_min_soc_for_discharge_pct": optional_pct,
            "vehicle_max_soc_for_charge_pct": optional_pct,
            "vehicle_faults": mostly(
                st.just(frozenset[str]()),
                st.sampled_from(VEHICLE_FAULTS).map(lambda f: frozenset({f})),
            ),
            "departure_soc_floor_pct": mostly(st.none(), st.floats(0, 100)),
            "grid_present": st.booleans(),
            "islanded": st.booleans(),
            "csms_connected": st.booleans(),
            "emergency_stop": rare(50),
            "insulation_fault": rare(50),
            "vehicle_charging_enabled": mostly(st.just(True), st.just(False)),
        }
    ),
)


def soc_floor(config: SafetyConfig, inputs: SafetyInputs) -> float:
    floor = max(config.driving_reserve_soc_pct, config.backup_reserve_soc_pct)
    if inputs.vehicle_min_soc_for_discharge_pct:
        floor = max(floor, inputs.vehicle_min_soc_for_discharge_pct)
    if inputs.departure_soc_floor_pct is not None:
        floor = max(floor, inputs.departure_soc_floor_pct)
    return floor


def check_limits(config: SafetyConfig, inputs: SafetyInputs, current: float, offline: bool) -> None:
    voltage = inputs.measured_voltage_v
    if current > 0:
        assert inputs.requested_current_a >= current - EPS
        assert current <= config.max_charge_current_a + EPS
        assert current <= inputs.vehicle_charge_request_a + EPS
        if voltage > 0:
            assert current * voltage <= config.max_charge_power_w * (1 + 1e-9) + EPS
        threshold = config.max_voltage_v
        if inputs.vehicle_max_voltage_v:
            threshold = min(threshold, inputs.vehicle_max_voltage_v)
        assert voltage < threshold
        ceiling = inputs.vehicle_max_soc_for_charge_pct
        if inputs.soc_pct is not None and ceiling is not None and 0 < ceiling <= 100:
            assert inputs.soc_pct < ceiling
        if offline:
            assert current <= config.offline_safe_limit_a + EPS
    if current < 0:
        amps = -current
        assert -inputs.requested_current_a >= amps - EPS
        assert amps <= config.max_discharge_current_a + EPS
        assert amps <= inputs.vehicle_max_discharge_current_a + EPS
        if voltage > 0:
            assert amps * voltage <= config.max_discharge_power_w * (1 + 1e-9) + EPS
        assert inputs.vehicle_discharge_compatible
        assert inputs.soc_pct is not None and inputs.soc_pct > soc_floor(config, inputs)
        minimum = config.min_voltage_v
        if inputs.vehicle_min_discharge_voltage_v is not None:
            minimum = max(minimum, inputs.vehicle_min_discharge_voltage_v)
        assert voltage > minimum
        islanded_backup = config.islanded_backup_enabled and inputs.islanded
        assert inputs.grid_present or islanded_backup, "export without grid"
        if offline:
            assert islanded_backup and config.offline_allows_islanded_backup
    if current != 0:
        assert inputs.vehicle_last_frame_at is not None
        assert inputs.vehicle_charging_enabled


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs(), st.lists(ticks, min_size=1, max_size=40))
def test_property_supervisor_invariants_hold_for_any_tick_sequence(
    config: SafetyConfig, sequence: list[Tick]
) -> None:
    state = SafetyState()
    now = 1000.0
    previous_tick: float | None = None
    disconnected_since: float | None = None
    listening_since: float | None = None  # derived independently: the last controller stall
    for tick in sequence:
        now += tick.dt
        if tick.reset:
            state = reset_faults(state)
            assert state.latched_faults == frozenset()
        latched_before = state.latched_faults
        last_command = state.last_command_a
        if previous_tick is not None and now - previous_tick > config.can_silence_timeout_s / 2:
            listening_since = now
        csms_last_seen = None if tick.csms_age is None else now - tick.csms_age
        frame_at = None if tick.frame_age is None else now - tick.frame_age
        inputs = SafetyInputs(
            now=now,
            vehicle_last_frame_at=frame_at,
            csms_last_seen=csms_last_seen,
            **tick.fields,  # type: ignore[arg-type]
        )
        decision = supervise(config, state, inputs)
        current = decision.current_a
        assert math.isfinite(current)

        # offline, derived independently
        if inputs.csms_connected:
            disconnected_since = None
        elif csms_last_seen is not None:
            disconnected_since = csms_last_seen
        elif disconnected_since is None:
            disconnected_since = now
        offline = (
            disconnected_since is not None and now - disconnected_since > config.offline_timeout_s
        )

        check_limits(config, inputs, current, offline)

        # latched faults: 0 until reset, never silently cleared
        assert latched_before <= decision.state.latched_faults
        assert set(decision.new_faults) == decision.state.latched_faults - latched_before
        if decision.state.latched_faults:
            assert current == 0.0
            assert decision.limited_by.startswith("fault:")
        must_trip = (
            inputs.emergency_stop
            or inputs.insulation_fault
            or bool(inputs.vehicle_faults)
            or (
                frame_at is not None
                and (
                    now - max(frame_at, listening_since or frame_at) > config.can_silence_timeout_s
                    or now - frame_at > config.can_silence_max_s
                )
            )
        )
        if must_trip:
            assert current == 0.0
            assert decision.state.latched_faults

        # ramp: |current| grows at most ramp x dt; through zero on a change of direction
        dt = 0.0 if previous_tick is None else now - previous_tick
        same_direction = last_command == 0 or current == 0 or (last_command > 0) == (current > 0)
        base = abs(last_command) if same_direction else 0.0
        assert abs(current) <= base + config.ramp_rate_a_per_s * dt + EPS

        state = decision.state
        previous_tick = now


# Every float input (derived, so that a new field is covered without editing this list).
FLOAT_FIELDS = tuple(f.name for f in fields(SafetyInputs) if "float" in str(f.type))


@settings(max_examples=200, deadline=None)
@given(
    configs(),
    ticks,
    st.sampled_from(FLOAT_FIELDS),
    st.sampled_from([math.nan, math.inf, -math.inf]),
    st.floats(-200, 200),
)
def test_property_non_finite_input_never_passes_through(
    config: SafetyConfig, tick: Tick, field: str, bad: float, last_command: float
) -> None:
    now = 1000.0
    values: dict[str, object] = {
        "now": now,
        "vehicle_last_frame_at": now,
        "csms_last_seen": now,
        **tick.fields,
    }
    values[field] = bad
    state = SafetyState(last_command_a=last_command, last_tick=now - 0.1)
    decision = supervise(config, state, SafetyInputs(**values))  # type: ignore[arg-type]
    assert decision.current_a == 0.0
    assert f"non_finite_input:{field}" in decision.state.latched_faults
    assert math.isfinite(decision.state.last_command_a)


PERMISSIVE = SafetyConfig(
    max_charge_current_a=200.0,
    max_discharge_current_a=200.0,
    max_charge_power_w=math.inf,
    max_discharge_power_w=math.inf,
    min_voltage_v=100.0,
    max_voltage_v=1000.0,
    driving_reserve_soc_pct=10.0,
)


def permissive_inputs(now: float, requested: float, **overrides: object) -> SafetyInputs:
    values: dict[str, object] = {
        "now": now,
        "requested_current_a": requested,
        "measured_voltage_v": 380.0,
        "measured_current_a": 0.0,
        "soc_pct": 60.0,
        "vehicle_last_frame_at": now,
        "vehicle_charge_request_a": 255.0,
        "vehicle_max_discharge_current_a": 255.0,
        "vehicle_min_discharge_voltage_v": None,
        "vehicle_max_voltage_v": None,
        "vehicle_discharge_compatible": True,
        "vehicle_min_soc_for_discharge_pct": None,
        "vehicle_max_soc_for_charge_pct": None,
        "vehicle_faults": frozenset(),
        "departure_soc_floor_pct": None,
        "grid_present": True,
        "islanded": False,
        "csms_connected": True,
        "csms_last_seen": now,
        "emergency_stop": False,
        "insulation_fault": False,
        **overrides,
    }
    return SafetyInputs(**values)  # type: ignore[arg-type]


@given(
    st.floats(1, 200),
    st.floats(1, 200),
    st.booleans(),
    st.floats(0.1, 500),
    st.floats(0, 2),
)
def test_property_direction_change_goes_through_zero_then_ramps(
    last: float, request: float, charging_before: bool, rate: float, dt: float
) -> None:
    config = replace(PERMISSIVE, ramp_rate_a_per_s=rate)
    last_command = last if charging_before else -last
    requested = -request if charging_before else request
    state = SafetyState(last_command_a=last_command, last_tick=10.0)
    decision = supervise(config, state, permissive_inputs(10.0 + dt, requested))
    assert decision.current_a == 0 or (decision.current_a > 0) != charging_before
    assert abs(decision.current_a) <= min(request, rate * dt) + EPS


DISCHARGE_GATES: dict[str, st.SearchStrategy[dict[str, object]]] = {
    "grid_loss": st.fixed_dictionaries({"grid_present": st.just(False)}),
    "vehicle_not_discharge_compatible": st.fixed_dictionaries(
        {"vehicle_discharge_compatible": st.just(False)}
    ),
    "soc_floor": st.fixed_dictionaries({"soc_pct": st.floats(0, 10)}),
    "soc_unknown": st.fixed_dictionaries({"soc_pct": st.none()}),
    "vehicle_min_soc": st.floats(1, 100).flatmap(
        lambda floor: st.fixed_dictionaries(
            {"vehicle_min_soc_for_discharge_pct": st.just(floor), "soc_pct": st.floats(0, floor)}
        )
    ),
    "departure": st.floats(0, 100).flatmap(
        lambda floor: st.fixed_dictionaries(
            {"departure_soc_floor_pct": st.just(floor), "soc_pct": st.floats(0, floor)}
        )
    ),
    "min_voltage": st.floats(100, 400).flatmap(
        lambda minimum: st.fixed_dictionaries(
            {
                "vehicle_min_discharge_voltage_v": st.just(minimum),
                "measured_voltage_v": st.floats(0, minimum),
            }
        )
    ),
    "offline": st.fixed_dictionaries(
        {"csms_connected": st.just(False), "csms_last_seen": st.just(0.0)}
    ),
    "not_enabled": st.fixed_dictionaries({"vehicle_charging_enabled": st.just(False)}),
    "vehicle_limit_zero": st.fixed_dictionaries({"vehicle_max_discharge_current_a": st.just(0.0)}),
}


@given(
    st.sampled_from(sorted(DISCHARGE_GATES)).flatmap(
        lambda name: st.tuples(st.just(name), DISCHARGE_GATES[name])
    ),
    st.floats(0.01, 400),
    st.floats(-200, 0),
)
def test_property_any_single_closed_gate_forbids_discharge(
    gate: tuple[str, dict[str, object]], requested: float, last_command: float
) -> None:
    _, overrides = gate
    state = SafetyState(last_command_a=last_command, last_tick=1000.0 - 0.1)
    decision = supervise(PERMISSIVE, state, permissive_inputs(1000.0, -requested, **overrides))
    assert decision.current_a == 0.0
    # and with the gate open the same request does discharge
    open_gate = supervise(PERMISSIVE, state, permissive_inputs(1000.0, -requested))
    assert open_gate.current_a < 0
