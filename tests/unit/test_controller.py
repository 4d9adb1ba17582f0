"""The pure CHAdeMO charger state machine: every transition and timeout (docs/chademo.md)."""

from __future__ import annotations

from typing import TypeVar

import pytest

from chargepoint_firmware.chademo import controller as c
from chargepoint_firmware.chademo.controller import (
    ChargerState,
    ControllerConfig,
    ControllerState,
    Direction,
    InsulationResult,
    VehicleView,
    session_state,
)
from chargepoint_firmware.chademo.frames import (
    ChargerCapabilities,
    ChargerDischargeStatus,
    ChargerDischargeTime,
    ChargerStatus,
    VehicleDischargeEstimate,
    VehicleDischargeLimits,
    VehicleStatus,
    encode,
)
from chargepoint_firmware.interfaces import SessionState
from tests.support.chademo_sim import EV_LIMITS, Harness, ev_status

RUNNING = {"charging_enabled": True, "ev_contactor_open": False}


T = TypeVar("T")


def frame_of(command: c.ControllerCommand, kind: type[T]) -> T:
    found = [f for f in command.frames if isinstance(f, kind)]
    assert len(found) == 1, f"expected one {kind.__name__} in {command.frames}"
    return found[0]


def tick_until(h: Harness, state: ChargerState, limit_s: float = 30.0) -> None:
    start = h.now
    while h.at is not state:
        assert h.now - start < limit_s, f"stuck in {h.at}, wanted {state}"
        h.tick()


# --- start sequence ------------------------------------------------------------------------------


def test_plug_then_authorization_switches_d1_on() -> None:
    h = Harness(authorized=False)
    command = h.tick()
    assert h.at is ChargerState.PLUGGED and not command.d1
    assert h.events() == [("plugged_in", "")]
    for _ in range(5):
        assert not h.tick().d1  # no d1 without a transaction's authorization
    h.authorized = True
    command = h.tick()
    assert h.at is ChargerState.HANDSHAKE and command.d1 and not command.d2


def test_charger_stays_silent_until_the_ev_sends_first() -> None:
    h = Harness()
    h.tick()
    assert h.tick().frames == ()  # d1 on, nothing heard yet
    h.send(EV_LIMITS, ev_status())
    command = h.tick()
    assert h.at is ChargerState.WAIT_CHARGE_PERMISSION
    kinds = [type(f) for f in command.frames]
    assert kinds == [
        ChargerCapabilities,
        ChargerStatus,
        ChargerDischargeStatus,
        ChargerDischargeTime,
    ]
    status = frame_of(command, ChargerStatus)
    assert status.stop_control and not status.charger_delivering and status.discharge_compatible
    capabilities = frame_of(command, ChargerCapabilities)
    assert capabilities.available_output_voltage_v == 500
    assert capabilities.available_output_current_a == 15
    assert capabilities.threshold_voltage_v == 435  # min(EV max 435, charger 500)
    for frame in command.frames:
        assert len(encode(frame)[1]) == 8


def test_no_0x208_0x209_when_the_charger_is_not_discharge_capable() -> None:
    h = Harness(config=ControllerConfig(discharge_capable=False))
    h.tick()
    h.tick()
    h.send(EV_LIMITS, ev_status())
    command = h.tick()
    assert [type(f) for f in command.frames] == [ChargerCapabilities, ChargerStatus]
    assert not frame_of(command, ChargerStatus).discharge_compatible


def test_compatibility_check_ev_target_above_charger_voltage_is_an_error_stop() -> None:
    h = Harness(config=ControllerConfig(max_voltage_v=400))
    h.tick()
    h.tick()
    h.send(EV_LIMITS, ev_status())  # target 410 V > 400 V available
    command = h.tick()
    assert h.at is ChargerState.STOPPING
    assert h.state.stop_reason == "ev_target_voltage_above_charger" and h.state.error_stop
    assert frame_of(command, ChargerStatus).battery_incompatible
    assert command.output_current_a == 0.0


def test_a_stop_before_the_charge_permission_never_locks_the_connector() -> None:
    h = Harness(config=ControllerConfig(max_voltage_v=400))
    h.tick()
    h.tick()
    h.send(EV_LIMITS, ev_status())  # incompatible: target 410 V > 400 V available
    for _ in range(50):
        command = h.tick()
        assert not command.lock, f"locked in {h.at}"
        if h.at is ChargerState.ENDED:
            break
        h.send(EV_LIMITS, ev_status())
    assert h.at is ChargerState.ENDED
    assert h.state.stop_reason == "ev_target_voltage_above_charger"


def test_t_time_8s_without_charge_permission_is_an_error_stop() -> None:
    h = Harness()
    h.tick()
    h.tick()
    d1_at = h.now
    h.send(EV_LIMITS, ev_status())
    while h.now - d1_at <= c.T_EV_CHARGE_PERMISSION_S:
        h.send(EV_LIMITS, ev_status())
        h.tick()
        if h.now - d1_at < c.T_EV_CHARGE_PERMISSION_S - 0.05:
            assert h.at is ChargerState.WAIT_CHARGE_PERMISSION
    assert h.at is ChargerState.STOPPING
    assert h.state.stop_reason == "charge_permission_timeout"


def test_handshake_times_out_when_the_vehicle_never_talks() -> None:
    h = Harness()
    h.tick()
    h.tick()
    tick_until(h, ChargerState.STOPPING, limit_s=c.T_EV_CHARGE_PERMISSION_S + 0.5)
    assert h.state.stop_reason == "handshake_timeout"
    assert h.now - h.state.d1_at > c.T_EV_CHARGE_PERMISSION_S  # type: ignore[operator]


def _to_locking(h: Harness) -> None:
    h.tick()
    h.tick()
    h.send(EV_LIMITS, ev_status())
    h.tick()
    h.send(ev_status(charging_enabled=True))
    command = h.tick()
    assert h.at is ChargerState.LOCKING and command.lock and command.d1 and not command.d2


def test_connector_lock_feedback_timeout() -> None:
    h = Harness()
    _to_locking(h)
    for _ in range(int(c.T_CONNECTOR_LOCK_S / 0.1) - 1):
        h.send(ev_status(charging_enabled=True))
        h.tick()
    assert h.at is ChargerState.LOCKING
    h.send(ev_status(charging_enabled=True))
    h.tick(0.2)
    assert h.at is ChargerState.STOPPING and h.state.stop_reason == "connector_lock_failed"


def test_voltage_on_the_terminals_before_the_insulation_test_aborts() -> None:
    h = Harness()
    _to_locking(h)
    h.locked = True
    h.voltage_v = 12.0  # >= 10 V: something is feeding the cable
    h.tick()
    assert h.at is ChargerState.STOPPING
    assert h.state.stop_reason == "voltage_before_insulation_test"


@pytest.mark.parametrize(
    ("result", "dt", "reason"),
    [
        (InsulationResult.FAILED, 0.1, "insulation_fault"),
        (InsulationResult.RUNNING, c.T_INSULATION_TEST_S + 0.1, "insulation_test_timeout"),
    ],
)
def test_insulation_test_failure_and_timeout(
    result: InsulationResult, dt: float, reason: str
) -> None:
    h = Harness()
    _to_locking(h)
    h.locked = True
    command = h.tick()
    assert h.at is ChargerState.INSULATION_TEST and command.insulation_test
    h.insulation = result
    h.send(ev_status(charging_enabled=True))
    h.tick(dt)
    assert h.at is ChargerState.STOPPING and h.state.stop_reason == reason
    assert h.state.charger_malfunction


def test_d2_only_after_the_terminals_fall_below_20v() -> None:
    h = Harness()
    _to_locking(h)
    h.locked = True
    h.tick()
    h.insulation = InsulationResult.PASSED
    h.voltage_v = 480.0
    h.send(ev_status(charging_enabled=True))
    command = h.tick()
    assert h.at is ChargerState.INSULATION_DECAY and not command.d2
    h.voltage_v = 25.0
    h.send(ev_status(charging_enabled=True))
    assert not h.tick().d2
    h.voltage_v = 19.0
    h.send(ev_status(charging_enabled=True))
    command = h.tick()
    assert h.at is ChargerState.WAIT_EV_CONTACTOR_CLOSE and command.d2 and command.d1


def test_voltage_not_decaying_after_the_insulation_test_is_an_error() -> None:
    h = Harness()
    _to_locking(h)
    h.locked = True
    h.tick()
    h.insulation = InsulationResult.PASSED
    h.voltage_v = 480.0
    h.tick()
    decay_from = h.now
    while h.at is ChargerState.INSULATION_DECAY:
        h.send(ev_status(charging_enabled=True))
        h.tick()
    assert h.now - decay_from == pytest.approx(c.T_INSULATION_DECAY_S + 0.1, abs=0.11)
    assert h.at is ChargerState.STOPPING
    assert h.state.stop_reason == "voltage_after_insulation_test"


def test_a_stop_before_d2_never_switches_d2_on() -> None:
    # d2 lets the EV close its contactors: not while shutting down after an insulation fault.
    h = Harness()
    _to_locking(h)
    h.locked = True
    h.tick()
    h.insulation = InsulationResult.FAILED
    for _ in range(50):
        h.send(ev_status(charging_enabled=True))
        command = h.tick()
        assert not command.d2, f"d2 on in {h.at}"
        h.locked = command.lock  # the lock follows its command
        if h.at is ChargerState.ENDED:
            break
    assert h.at is ChargerState.ENDED and h.state.stop_reason == "insulation_fault"


def test_d2_deadline_20s_from_permission_holds_even_when_each_step_is_in_time() -> None:
    h = Harness()
    _to_locking(h)
    permission_at = h.state.permission_at
    assert permission_at is not None

    def hold_until(since_permission_s: float) -> None:
        while h.now - permission_at < since_permission_s - 1e-9:
            h.send(ev_status(charging_enabled=True))
            h.tick()

    hold_until(9.5)  # lock feedback inside its own 10 s
    h.locked = True
    h.tick()
    assert h.at is ChargerState.INSULATION_TEST
    hold_until(18.5)  # the test passes inside its own 10 s
    h.insulation = InsulationResult.PASSED
    h.voltage_v = 480.0
    h.send(ev_status(charging_enabled=True))
    h.tick()
    assert h.at is ChargerState.INSULATION_DECAY
    hold_until(c.T_D2_AFTER_PERMISSION_S - 0.15)  # decaying, inside its own 2 s
    assert h.at is ChargerState.INSULATION_DECAY
    h.voltage_v = 5.0  # decayed just as the 20 s since the permission run out
    h.send(ev_status(charging_enabled=True))
    command = h.tick(0.2)
    assert h.now - permission_at > c.T_D2_AFTER_PERMISSION_S
    assert not command.d2
    assert h.at is ChargerState.STOPPING and h.state.stop_reason == "d2_deadline"


def _to_contactor_wait(h: Harness) -> None:
    _to_locking(h)
    h.locked = True
    h.tick()
    h.insulation = InsulationResult.PASSED
    h.tick()
    h.send(ev_status(charging_enabled=True))
    h.tick()
    assert h.at is ChargerState.WAIT_EV_CONTACTOR_CLOSE


def test_ev_contactor_must_close_within_4s_of_d2() -> None:
    h = Harness()
    _to_contactor_wait(h)
    for _ in range(int(c.T_EV_CONTACTOR_CLOSE_S / 0.1) - 1):
        h.send(ev_status(charging_enabled=True))
        h.tick()
    assert h.at is ChargerState.WAIT_EV_CONTACTOR_CLOSE
    h.send(ev_status(charging_enabled=True))
    h.tick(0.2)
    assert h.at is ChargerState.STOPPING
    assert h.state.stop_reason == "ev_contactor_close_timeout"


@pytest.mark.parametrize("battery_voltage_v", [375.0, 0.0])
def test_finding6_ev_current_request_timeout_counts_from_battery_voltage(
    battery_voltage_v: float,
) -> None:
    # Real chargers stopped 7.8-7.9 s after the battery voltage appeared; with no voltage the
    # timer still starts T_BATTERY_VOLTAGE_S after the contactor report (bounded).
    h = Harness()
    _to_contactor_wait(h)
    h.send(ev_status(**RUNNING))
    h.tick()
    assert h.at is ChargerState.WAIT_CURRENT_REQUEST
    idle_s = 0.0 if battery_voltage_v else c.T_BATTERY_VOLTAGE_S
    h.voltage_v = battery_voltage_v
    for _ in range(int((idle_s + c.T_EV_CURRENT_REQUEST_S) / 0.1) - 1):
        h.send(ev_status(**RUNNING))
        h.tick()
    assert h.at is ChargerState.WAIT_CURRENT_REQUEST
    h.send(ev_status(**RUNNING))
    h.tick(0.3)
    assert h.at is ChargerState.STOPPING
    assert h.state.stop_reason == "ev_current_request_timeout"


def test_the_full_start_sequence_reaches_charging_with_the_right_flags() -> None:
    h = Harness()
    h.to_energy_transfer()
    assert h.at is ChargerState.CHARGING
    assert ("energy_transfer_started", "charge") in h.events()
    visited = [state for _, state in h.state.history]
    assert visited == [
        ChargerState.PLUGGED,
        ChargerState.HANDSHAKE,
        ChargerState.WAIT_CHARGE_PERMISSION,
        ChargerState.LOCKING,
        ChargerState.INSULATION_TEST,
        ChargerState.INSULATION_DECAY,
        ChargerState.WAIT_EV_CONTACTOR_CLOSE,
        ChargerState.WAIT_CURRENT_REQUEST,
        ChargerState.CHARGING,
    ]
    command = h.commands[-1]
    status = frame_of(command, ChargerStatus)
    assert status.charger_delivering and not status.stop_control and status.connector_locked
    assert command.d1 and command.d2 and command.lock


# --- energy transfer -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_a", "allowed_a", "max_a", "expected", "bound"),
    [
        (15, 20.0, 15.0, 15.0, "ev_request"),
        (10, 20.0, 15.0, 10.0, "ev_request"),
        (15, 6.0, 15.0, 6.0, "safety"),
        (30, 40.0, 12.0, 12.0, "evse_max_charge"),
        (15, -5.0, 15.0, 0.0, "safety"),  # safety says discharge: no charge current
    ],
)
def test_charge_current_is_min_of_request_available_and_safety(
    request_a: int, allowed_a: float, max_a: float, expected: float, bound: str
) -> None:
    h = Harness(config=ControllerConfig(max_charge_current_a=max_a), allowed_a=allowed_a)
    h.to_energy_transfer(ev_status(**RUNNING, charging_current_request_a=request_a))
    command = h.tick()
    assert command.output_current_a == pytest.approx(expected)
    assert h.state.limited_by == bound


def test_0x108_available_current_follows_the_schedule_not_the_cars_request() -> None:
    h = Harness(offered_a=6.0, allowed_a=6.0)
    h.to_energy_transfer()
    command = h.tick()
    assert frame_of(command, ChargerCapabilities).available_output_current_a == 6
    h.offered_a = 40.0
    assert frame_of(h.tick(), ChargerCapabilities).available_output_current_a == 15


def test_stale_vehicle_frames_hold_the_current_at_zero() -> None:
    h = Harness()
    h.to_energy_transfer()
    assert h.tick().output_current_a == 15.0
    h.tick(c.VEHICLE_FRAME_STALE_S)  # no frame for > 0.3 s
    assert h.commands[-1].output_current_a == 0.0
    assert h.state.limited_by == "vehicle_frames_stale"
    h.send(ev_status(**RUNNING, charging_current_request_a=15))
    assert h.tick().output_current_a == 15.0


def test_direction_change_charge_to_discharge_as_in_the_log() -> None:
    h = Harness(allowed_a=15.0)
    h.to_energy_transfer()
    h.current_a = 15.0
    h.tick()
    h.wanted, h.allowed_a = Direction.DISCHARGE, -10.0
    command = h.tick()
    assert h.at is ChargerState.SWITCH_TO_DISCHARGE
    assert command.output_current_a == 0.0
    assert frame_of(command, ChargerCapabilities).available_output_current_a == 0  # byte 3 -> 0
    # The car still requests (and current still flows) for a moment: keep waiting.
    h.send(ev_status(**RUNNING, charging_current_request_a=15))
    h.tick()
    assert h.at is ChargerState.SWITCH_TO_DISCHARGE
    h.current_a = 0.0
    h.send(ev_status(**RUNNING, charging_current_request_a=0))
    command = h.tick()
    assert h.at is ChargerState.DISCHARGING
    assert command.output_current_a == pytest.approx(-10.0)
    assert ("direction_changed", "discharge") in h.events()
    status = frame_of(command, ChargerStatus)
    assert status.charger_delivering and not status.stop_control


def test_direction_change_times_out_if_the_car_keeps_requesting() -> None:
    h = Harness()
    h.to_energy_transfer()
    h.wanted, h.allowed_a = Direction.DISCHARGE, -10.0
    h.tick()
    switch_from = h.now
    while h.at is ChargerState.SWITCH_TO_DISCHARGE:
        h.send(ev_status(**RUNNING, charging_current_request_a=15))
        h.tick()
    assert h.now - switch_from == pytest.approx(c.T_DIRECTION_CHANGE_S + 0.1, abs=0.11)
    assert h.at is ChargerState.STOPPING and h.state.stop_reason == "ev_kept_charge_request"


@pytest.mark.parametrize(
    ("ev_limit", "own_limit", "allowed", "expected", "bound"),
    [
        (15, 15.0, -20.0, -15.0, "ev_max_discharge"),
        (8, 15.0, -20.0, -8.0, "ev_max_discharge"),
        (15, 10.0, -20.0, -10.0, "evse_max_discharge"),
        (15, 15.0, -4.0, -4.0, "safety"),
        (15, 15.0, 3.0, 0.0, "safety"),
    ],
)
def test_discharge_current_is_set_by_the_charger_within_both_limits(
    ev_limit: int, own_limit: float, allowed: float, expected: float, bound: str
) -> None:
    h = Harness(config=ControllerConfig(max_discharge_current_a=own_limit))
    h.to_energy_transfer()
    h.wanted, h.allowed_a = Direction.DISCHARGE, allowed
    h.send(VehicleDischargeLimits(max_discharge_current_a=ev_limit, min_discharge_voltage_v=250))
    h.tick()
    h.send(ev_status(**RUNNING))
    command = h.tick()
    assert h.at is ChargerState.DISCHARGING
    assert command.output_current_a == pytest.approx(expected)
    assert h.state.limited_by == bound
    assert frame_of(command, ChargerDischargeStatus).available_input_current_a == int(own_limit)


def test_discharge_to_charge_waits_for_the_current_to_stop() -> None:
    h = Harness()
    h.to_energy_transfer()
    h.wanted, h.allowed_a = Direction.DISCHARGE, -10.0
    h.tick()
    h.send(ev_status(**RUNNING))
    h.tick()
    assert h.at is ChargerState.DISCHARGING
    h.current_a = -10.0
    h.wanted, h.allowed_a = Direction.CHARGE, 15.0
    command = h.tick()
    assert h.at is ChargerState.SWITCH_TO_CHARGE and command.output_current_a == 0.0
    h.send(ev_status(**RUNNING))
    h.tick()
    assert h.at is ChargerState.SWITCH_TO_CHARGE  # still -10 A measured
    h.current_a = -2.0
    h.send(ev_status(**RUNNING, charging_current_request_a=2))
    command = h.tick()
    assert h.at is ChargerState.CHARGING
    assert frame_of(command, ChargerCapabilities).available_output_current_a == 15
    assert command.output_current_a == 2.0  # the car ramps its request up again
    assert ("direction_changed", "charge") in h.events()


def test_no_discharge_when_the_vehicle_is_not_discharge_compatible() -> None:
    h = Harness()
    h.to_energy_transfer(
        ev_status(**RUNNING, charging_current_request_a=15, discharge_compatible=False)
    )
    h.wanted, h.allowed_a = Direction.DISCHARGE, -10.0
    for _ in range(3):
        h.send(ev_status(**RUNNING, charging_current_request_a=15, discharge_compatible=False))
        h.tick()
    assert h.at is ChargerState.CHARGING  # stays in charge direction, at 0 A
    assert h.commands[-1].output_current_a == 0.0


def test_discharge_start_without_a_charge_request() -> None:
    h = Harness(wanted=Direction.DISCHARGE, allowed_a=-6.0)
    h.to_energy_transfer(ev_status(**RUNNING))  # car requests 0 A
    assert h.at is ChargerState.DISCHARGING
    assert ("energy_transfer_started", "discharge") in h.events()


# --- stops ---------------------------------------------------------------------------------------


def run_shutdown(h: Harness) -> list[tuple[float, c.ControllerCommand]]:
    """Tick through the shutdown with a car that opens its contactor once current is low."""
    seen: list[tuple[float, c.ControllerCommand]] = []
    for _ in range(200):
        if h.at is ChargerState.ENDED:
            break
        if h.at is ChargerState.STOPPING:
            h.current_a = 0.0
        if h.at is ChargerState.WAIT_EV_CONTACTOR_OPEN:
            h.send(ev_status(charging_enabled=False, ev_contactor_open=True))
        else:
            h.send(
                ev_status(
                    charging_enabled=False, ev_contactor_open=h.at is not ChargerState.STOPPING
                )
            )
        if h.at is ChargerState.UNLOCKING:
            h.voltage_v = 0.0
            h.locked = False
        seen.append((h.now, h.tick()))
    assert h.at is ChargerState.ENDED
    return seen


def assert_safe_shutdown_order(seen: list[tuple[float, c.ControllerCommand]]) -> None:
    """Current first, then d2 off, 500 ms, d1 off, then unlock."""
    zero_at = next(t for t, cmd in seen if cmd.output_current_a == 0.0)
    d2_off = next(t for t, cmd in seen if not cmd.d2)
    d1_off = next(t for t, cmd in seen if not cmd.d1)
    unlocked = next(t for t, cmd in seen if not cmd.lock)
    assert zero_at <= d2_off < d1_off <= unlocked
    assert d1_off - d2_off >= c.T_D2_TO_D1_S - 1e-9
    assert all(cmd.output_current_a == 0.0 for t, cmd in seen if t >= zero_at)


def test_ev_stop_request_is_a_normal_stop_with_the_weld_check_sequence() -> None:
    h = Harness()
    h.to_energy_transfer()
    h.current_a = 15.0
    h.tick()
    h.send(ev_status(charging_enabled=False, ev_contactor_open=False))  # 0x102 b5.0 1 -> 0
    command = h.tick()
    stop_at = h.now
    assert h.at is ChargerState.STOPPING and not h.state.error_stop
    assert h.state.stop_reason == "ev_stop_request"
    assert command.output_current_a == 0.0
    status = frame_of(command, ChargerStatus)
    assert status.stop_control and status.charger_delivering  # still flowing above 5 A
    seen = run_shutdown(h)
    assert_safe_shutdown_order([(stop_at, command), *seen])
    after_stop = [frame_of(cmd, ChargerStatus) for _, cmd in seen if cmd.frames]
    assert not after_stop[0].charger_delivering  # b5.0 cleared once <= 5 A
    assert ("session_ended", "ev_stop_request") in h.events()
    assert ("energy_transfer_stopped", "ev_stop_request") in h.events()


def test_ev_normal_stop_request_flag() -> None:
    h = Harness()
    h.to_energy_transfer()
    h.send(ev_status(**RUNNING, normal_stop_request=True))
    h.tick()
    assert h.at is ChargerState.STOPPING and h.state.stop_reason == "ev_stop_request"
    assert not h.state.error_stop


def test_charger_side_stop_on_deauthorization() -> None:
    h = Harness()
    h.to_energy_transfer()
    h.authorized = False
    command = h.tick()
    assert h.at is ChargerState.STOPPING and h.state.stop_reason == "deauthorized"
    assert command.output_current_a == 0.0 and frame_of(command, ChargerStatus).stop_control
    assert_safe_shutdown_order(run_shutdown(h))
    h.tick()
    assert h.at is ChargerState.PLUGGED  # the next authorization starts a new handshake


@pytest.mark.parametrize(
    "flag",
    [
        "fault_battery_overvoltage",
        "fault_battery_undervoltage",
        "fault_battery_current_deviation",
        "fault_high_battery_temperature",
        "fault_battery_voltage_deviation",
        "fault_vehicle_charging_system",
        "shift_not_park",
    ],
)
def test_every_vehicle_fault_flag_is_an_error_stop(flag: str) -> None:
    h = Harness()
    h.to_energy_transfer()
    h.send(ev_status(**RUNNING, charging_current_request_a=15, **{flag: True}))
    command = h.tick()
    assert h.at is ChargerState.STOPPING and h.state.error_stop
    assert h.state.stop_reason.startswith("vehicle_fault:")
    assert command.output_current_a == 0.0


@pytest.mark.parametrize(
    ("fault", "system_flag"),
    [("can_silence", True), ("emergency_stop", False), ("insulation_fault", False)],
)
def test_latched_safety_fault_is_an_error_stop(fault: str, system_flag: bool) -> None:
    h = Harness()
    h.to_energy_transfer()
    h.safety_faults = frozenset({fault})
    command = h.tick()
    assert h.at is ChargerState.STOPPING and h.state.error_stop
    assert command.output_current_a == 0.0
    status = frame_of(command, ChargerStatus)
    assert status.charging_system_malfunction is system_flag
    assert status.charger_malfunction is not system_flag


def test_no_new_session_while_a_safety_fault_is_latched() -> None:
    h = Harness(safety_faults=frozenset({"emergency_stop"}))
    h.tick()
    for _ in range(5):
        assert not h.tick().d1
    assert h.at is ChargerState.PLUGGED


def test_stop_current_timeout_is_reported_and_the_sequence_continues() -> None:
    h = Harness()
    h.to_energy_transfer()
    h.current_a = 15.0  # the power stage does not follow the 0 A command
    h.authorized = False
    h.tick()
    for _ in range(6):
        h.send(ev_status(charging_enabled=False, ev_contactor_open=False))
        h.tick()
    assert ("fault", "stop_current_timeout") in h.events()
    assert h.at is ChargerState.WAIT_EV_CONTACTOR_OPEN
    assert h.commands[-1].output_current_a == 0.0


def test_ev_contactor_open_report_timeout_10s() -> None:
    h = Harness()
    h.to_energy_transfer()
    h.authorized = False
    h.tick()
    h.tick()
    assert h.at is ChargerState.WAIT_EV_CONTACTOR_OPEN
    for _ in range(int(c.T_EV_CONTACTOR_OPEN_S / 0.1) - 1):
        h.send(ev_status(charging_enabled=False, ev_contactor_open=False))
        command = h.tick()
        assert command.d2  # d2 stays on while the EV contactor is closed
    h.send(ev_status(charging_enabled=False, ev_contactor_open=False))
    h.tick(0.2)
    assert h.at is ChargerState.WELD_CHECK_WAIT
    assert ("fault", "ev_contactor_open_timeout") in h.events()


def test_unlock_only_below_10v() -> None:
    h = Harness()
    h.to_energy_transfer()
    h.authorized = False
    h.tick()
    h.send(ev_status(ev_contactor_open=True))
    h.tick()
    h.tick()
    tick_until(h, ChargerState.UNLOCKING)
    h.voltage_v = 50.0
    for _ in range(int(c.T_UNLOCK_VOLTAGE_S / 0.1) + 2):
        assert h.tick().lock
    assert ("fault", "output_voltage_not_discharged") in h.events()
    assert h.events().count(("fault", "output_voltage_not_discharged")) == 1
    h.voltage_v = 5.0
    assert not h.tick().lock
    h.locked = False
    h.tick()
    assert h.at is ChargerState.ENDED


def test_unplug_during_transfer_switches_everything_off_at_once() -> None:
    h = Harness()
    h.to_energy_transfer()
    h.plugged = False
    command = h.tick()
    assert h.at is ChargerState.IDLE
    assert command.output_current_a == 0.0 and not command.d1 and not command.d2
    assert ("unplugged", "") in h.events() and ("session_ended", "unplugged") in h.events()


# --- helpers -------------------------------------------------------------------------------------


def test_first_nonzero_0x200_limit_of_a_pre_1_1_car_is_masked() -> None:
    view = VehicleView().with_frame(VehicleDischargeLimits(max_discharge_current_a=30), 0.0)
    assert view.max_discharge_current_a == 0.0
    view = view.with_frame(VehicleDischargeLimits(max_discharge_current_a=30), 0.1)
    assert view.max_discharge_current_a == 0.0
    view = view.with_frame(VehicleDischargeLimits(max_discharge_current_a=2), 0.2)
    assert view.max_discharge_current_a == 2.0
    guideline_1_1 = (
        VehicleView()
        .with_frame(VehicleDischargeLimits(max_discharge_current_a=30), 0.0)
        .with_frame(VehicleDischargeEstimate(sequence_control_number=2), 0.0)
    )
    assert guideline_1_1.max_discharge_current_a == 30.0


def test_soc_uses_the_0x100_reference_constant() -> None:
    view = VehicleView().with_frame(VehicleStatus(state_of_charge=120), 0.0)
    assert view.soc_pct is None  # finding 5: no 0x100 yet, the raw byte is not a percentage
    view = view.with_frame(EV_LIMITS.__class__(charged_rate_reference=240), 0.0)
    assert view.soc_pct == pytest.approx(50.0)


def test_session_state_mapping() -> None:
    assert session_state(ControllerState(), plugged=False, latched=False) is SessionState.IDLE
    charging = ControllerState(state=ChargerState.CHARGING, last_output_a=10.0)
    assert session_state(charging, True, False) is SessionState.CHARGING
    discharging = ControllerState(state=ChargerState.DISCHARGING, last_output_a=-10.0)
    assert session_state(discharging, True, False) is SessionState.DISCHARGING
    idle_transfer = ControllerState(state=ChargerState.CHARGING, last_output_a=0.0)
    assert session_state(idle_transfer, True, False) is SessionState.SUSPENDED
    stopping = ControllerState(state=ChargerState.WELD_CHECK_WAIT)
    assert session_state(stopping, True, False) is SessionState.STOPPING
    preparing = ControllerState(state=ChargerState.INSULATION_TEST)
    assert session_state(preparing, True, False) is SessionState.PREPARING
    assert session_state(ControllerState(state=ChargerState.ENDED), True, True) is (
        SessionState.FAULTED
    )


def test_ev_dropping_its_discharge_compatible_flag_ends_discharge_only() -> None:
    h = Harness(wanted=Direction.DISCHARGE, allowed_a=-10.0)
    h.to_energy_transfer(ev_status(**RUNNING))
    assert h.at is ChargerState.DISCHARGING
    h.current_a = -10.0
    h.send(ev_status(**RUNNING, discharge_compatible=False))  # b5.7: 1 -> 0
    command = h.tick()
    assert h.at is ChargerState.SWITCH_TO_CHARGE and command.output_current_a == 0.0
    h.current_a = 0.0
    h.send(ev_status(**RUNNING, discharge_compatible=False))
    h.tick()
    assert h.at is ChargerState.CHARGING  # the session goes on; only discharge is forbidden
    h.send(ev_status(**RUNNING, discharge_compatible=False))
    h.tick()
    assert h.at is ChargerState.CHARGING


def test_ev_contactor_opening_during_transfer_is_an_error_stop() -> None:
    h = Harness()
    h.to_energy_transfer()
    h.current_a = 15.0
    h.tick()
    h.send(ev_status(**{**RUNNING, "ev_contactor_open": True}))  # 0x102 b5.3 0 -> 1, no stop ask
    command = h.tick()
    assert h.at is ChargerState.STOPPING and h.state.error_stop
    assert h.state.stop_reason == "ev_contactor_opened"
    assert command.output_current_a == 0.0
