"""Finding 7 of issue 12: CAN plausibility faults in the safety supervisor and the pure
second-sender detector (vehicle limits against the charger's rating, SoC rate of change,
conflicting senders), each named and latched until an explicit reset."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chargepoint_firmware.safety import (
    FAULT_CONFLICTING_SENDER,
    FAULT_SOC_IMPLAUSIBLE,
    FAULT_VEHICLE_LIMITS_CHANGED,
    FAULT_VEHICLE_MAX_VOLTAGE,
    SafetyConfig,
    SafetyDecision,
    SafetyInputs,
    SafetyState,
    reset_faults,
    supervise,
)
from chargepoint_firmware.safety.senders import SenderConfig, SenderState, observe_frame

CONFIG = SafetyConfig(
    max_charge_current_a=125.0,
    max_discharge_current_a=100.0,
    max_charge_power_w=50_000.0,
    max_discharge_power_w=10_000.0,
    min_voltage_v=150.0,
    max_voltage_v=500.0,
    ramp_rate_a_per_s=1000.0,
)
BASE = SafetyInputs(
    now=0.0,
    requested_current_a=100.0,
    measured_voltage_v=380.0,
    measured_current_a=0.0,
    soc_pct=50.0,
    vehicle_last_frame_at=0.0,
    vehicle_charge_request_a=120.0,
    vehicle_max_discharge_current_a=0.0,
    vehicle_min_discharge_voltage_v=None,
    vehicle_max_voltage_v=435.0,
    vehicle_discharge_compatible=False,
    vehicle_min_soc_for_discharge_pct=None,
    vehicle_max_soc_for_charge_pct=None,
    vehicle_faults=frozenset(),
    departure_soc_floor_pct=None,
    grid_present=True,
    islanded=False,
    csms_connected=True,
    csms_last_seen=0.0,
    emergency_stop=False,
    insulation_fault=False,
    vehicle_capacity_wh=40_000.0,
)


def run(ticks: list[dict[str, object]], state: SafetyState | None = None) -> list[SafetyDecision]:
    """One tick per 100 ms; each dict overrides BASE; the vehicle frame is always fresh."""
    state = state or SafetyState()
    decisions = []
    for i, overrides in enumerate(ticks):
        now = 0.1 * (i + 1)
        inputs = replace(BASE, now=now, vehicle_last_frame_at=now, csms_last_seen=now)
        decision = supervise(CONFIG, state, replace(inputs, **overrides))  # type: ignore[arg-type]
        state = decision.state
        decisions.append(decision)
    return decisions


def test_finding7_consistent_vehicle_charges() -> None:
    decisions = run([{"soc_pct": 50.0 + 0.01 * i} for i in range(50)])
    assert all(not d.latched_faults for d in decisions)
    assert decisions[-1].current_a == 100.0


def test_finding7_vehicle_max_voltage_far_above_rating_trips() -> None:
    # 500 V charger: a 0x100 max of 550 V is within the margin, 551 V is not.
    assert not run([{"vehicle_max_voltage_v": 550.0}])[0].latched_faults
    decision = run([{"vehicle_max_voltage_v": 551.0}])[0]
    assert decision.new_faults == (FAULT_VEHICLE_MAX_VOLTAGE,)
    assert decision.current_a == 0.0


@pytest.mark.parametrize(
    "change", [{"vehicle_max_voltage_v": 440.0}, {"vehicle_capacity_wh": 62_000.0}]
)
def test_finding7_vehicle_limits_changed_mid_session_trips(change: dict[str, object]) -> None:
    decisions = run([{}, {}, change, {}])
    assert decisions[1].current_a > 0
    assert decisions[2].new_faults == (FAULT_VEHICLE_LIMITS_CHANGED,)
    assert decisions[3].current_a == 0.0  # latched, even though the value stays


def test_finding7_limits_may_differ_between_sessions() -> None:
    decisions = run([{}, {"vehicle_last_frame_at": None}, {"vehicle_max_voltage_v": 400.0}])
    assert not any(d.latched_faults for d in decisions)


def test_finding7_soc_flapping_0_100_every_100ms_trips() -> None:
    decisions = run([{"soc_pct": 0.0}, {"soc_pct": 100.0}, {"soc_pct": 0.0}])
    assert decisions[1].new_faults == (FAULT_SOC_IMPLAUSIBLE,)
    assert decisions[2].current_a == 0.0


def test_finding7_soc_absent_frames_and_first_frame_do_not_trip() -> None:
    # First value is only a baseline; None ("not used") in between keeps the reference.
    decisions = run([{"soc_pct": 80.0}, {"soc_pct": None}, {"soc_pct": 81.0}])
    assert not any(d.latched_faults for d in decisions)


def test_finding7_soc_before_0x100_is_not_a_baseline() -> None:
    # A 0x102 before the first 0x100 is scaled with the default reference (ZE1: 143 %), the
    # next with the vehicle's (57 %): a change of scale, not a jump.
    decisions = run(
        [{"soc_pct": 143.0, "vehicle_max_voltage_v": None}, {"soc_pct": 57.0}, {"soc_pct": 57.0}]
    )
    assert not any(d.latched_faults for d in decisions)


def test_finding7_conflicting_sender_trips_and_latches_until_reset() -> None:
    decisions = run([{}, {"conflicting_sender": True}, {}])
    assert decisions[1].new_faults == (FAULT_CONFLICTING_SENDER,)
    assert decisions[2].current_a == 0.0
    cleared = reset_faults(decisions[2].state)
    after = run([{}], state=replace(cleared, last_tick=None))
    assert after[0].latched_faults == frozenset()


# --- properties -------------------------------------------------------------------------------

rates = st.floats(-4.0, 4.0)  # %/s, below the 5 %/s bound


@settings(max_examples=200, deadline=None)
@given(start=st.floats(0, 100), slopes=st.lists(rates, min_size=1, max_size=40))
def test_finding7_property_consistent_vehicle_never_trips(
    start: float, slopes: list[float]
) -> None:
    soc, ticks = start, []
    for slope in slopes:
        soc += slope * 0.1
        ticks.append({"soc_pct": soc})
    assert all(not d.latched_faults for d in run(ticks))


@settings(max_examples=200, deadline=None)
@given(
    before=st.integers(0, 30),
    start=st.floats(0, 100),
    jump=st.floats(2.6, 100).flatmap(lambda j: st.sampled_from([j, -j])),
    after=st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=20),
    schedule=st.lists(st.floats(-200, 200), min_size=1, max_size=20),
)
def test_finding7_property_jump_trips_latches_and_commands_zero(
    before: int, start: float, jump: float, after: list[float], schedule: list[float]
) -> None:
    # A jump above 5 %/s x 0.1 s + 2 % within one 100 ms tick trips; whatever the SoC and the
    # schedule afterwards, the command stays 0 until reset.
    ticks: list[dict[str, object]] = [{"soc_pct": start}] * (before + 1)
    ticks.append({"soc_pct": start + jump})
    ticks += [
        {"soc_pct": s, "requested_current_a": r} for s, r in zip(after, schedule, strict=False)
    ]
    decisions = run(ticks)
    assert not any(d.latched_faults for d in decisions[: before + 1])
    assert FAULT_SOC_IMPLAUSIBLE in decisions[before + 1].new_faults
    for d in decisions[before + 1 :]:
        assert FAULT_SOC_IMPLAUSIBLE in d.latched_faults
        assert d.current_a == 0.0


# --- the second-sender detector ---------------------------------------------------------------

A = bytes([0, 0, 0, 20, 0x01, 0x9A, 50, 0])
B = bytes([0, 0, 0, 120, 0x01, 0x9A, 100, 0])


def feed(frames: list[tuple[float, int, bytes]]) -> SenderState:
    state = SenderState()
    for t, can_id, data in frames:
        state = observe_frame(SenderConfig(), state, t, can_id, data)
    return state


def test_finding7_second_sender_interleaved_0x102_is_detected() -> None:
    # Two 100 ms streams 30 ms apart with different content.
    frames = []
    for i in range(5):
        frames += [(0.1 * i, 0x102, A), (0.1 * i + 0.03, 0x102, B)]
    assert feed(frames).conflict


def test_finding7_one_vehicle_at_100ms_never_conflicts() -> None:
    # Changing content at the normal cycle, plus one jittered (early) frame.
    frames = [(0.1 * i, 0x102, bytes([0, 0, 0, i % 256, 1, 0x9A, 50, 0])) for i in range(200)]
    frames.append((19.93, 0x102, B))
    assert not feed(frames).conflict


def test_finding7_repeated_identical_frames_are_no_conflict() -> None:
    assert not feed([(0.01 * i, 0x100, A) for i in range(100)]).conflict


def test_finding7_other_ids_are_ignored() -> None:
    frames = [(0.01 * i, 0x108, A if i % 2 else B) for i in range(100)]
    assert not feed(frames).conflict


@settings(max_examples=200, deadline=None)
@given(
    payloads=st.lists(st.binary(min_size=8, max_size=8), min_size=1, max_size=100),
    jitter=st.lists(st.floats(-0.02, 0.02), min_size=100, max_size=100),
)
def test_finding7_property_one_sender_with_jitter_never_conflicts(
    payloads: list[bytes], jitter: list[float]
) -> None:
    # One sender at 100 ms +- 20 ms jitter, any content: frames stay >= 60 ms apart.
    times = [0.1 * i + j for i, j in enumerate(jitter[: len(payloads)])]
    frames = [(t, 0x102, p) for t, p in zip(times, payloads, strict=True)]
    assert not feed(frames).conflict


def test_finding7_sender_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError):
        SenderConfig(strikes=0)
    with pytest.raises(ValueError):
        SenderConfig(min_gap_s=0.0)
