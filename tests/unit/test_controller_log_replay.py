"""The real Leaf V2X log's vehicle frames drive the controller through the log's sequence.

The log (tests/data/chademo/leaf-ze0-v2x-session.csv, a Nissan Leaf ZE0 with a DIY
bidirectional charger) holds both directions. The vehicle's frames are fed to our controller
as they happened; the logged charger's own measurements stand in for our ports (terminal
voltage and current from its 0x109, lock feedback from its 0x109 b5.2, the insulation test
passing when its test voltage has come back below 20 V). The schedule asks for what the logged
charger did: charge, discharge from 22.58 s (0x108 byte 3 -> 0), charge again from 27.28 s,
and a charger-side stop at 49.78 s (0x109 b5.5 set).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import pytest

from chargepoint_firmware.chademo.controller import (
    ChargerState,
    ControllerCommand,
    ControllerConfig,
    ControllerInputs,
    ControllerState,
    Direction,
    InsulationResult,
    step,
)
from chargepoint_firmware.chademo.frames import (
    ChargerCapabilities,
    ChargerStatus,
    Frame,
    decode,
)
from chargepoint_firmware.chademo.vehicle_view import VehicleView

LOG = Path(__file__).resolve().parents[1] / "data" / "chademo" / "leaf-ze0-v2x-session.csv"
VEHICLE_IDS = {0x100, 0x101, 0x102, 0x200, 0x201}
DISCHARGE_FROM_S = 22.58  # logged 0x108 byte 3 -> 0
CHARGE_AGAIN_FROM_S = 27.28  # logged 0x108 byte 3 -> 15
STOP_AT_S = 49.78  # logged 0x109 b5.5 set while delivering


@dataclass(frozen=True)
class LoggedFrame:
    at: float
    frame: Frame


def read_log() -> list[LoggedFrame]:
    frames = []
    with LOG.open(newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        for row in reader:
            data = bytes(int(value, 16) for value in row[6:14])
            frame = decode(int(row[1], 16), data)
            if frame is not None:
                frames.append(LoggedFrame(int(row[0]) / 1e6, frame))
    return frames


@dataclass
class Replay:
    states: list[tuple[float, ChargerState]]
    commands: list[tuple[float, ControllerCommand, VehicleView]]
    final: ControllerState


def replay() -> Replay:
    logged = read_log()
    config = ControllerConfig(
        max_voltage_v=500, max_charge_current_a=15, max_discharge_current_a=15
    )
    state = ControllerState(since=2.9)
    view = VehicleView()
    index = 0
    charger_voltage, charger_current = 0.0, 0.0
    lock_feedback_at: float | None = None
    insulation_peak_seen = False
    insulation = InsulationResult.IDLE
    commands: list[tuple[float, ControllerCommand, VehicleView]] = []
    now = 2.9
    last_lock_command = False
    while now < 56.0:
        while index < len(logged) and logged[index].at <= now:
            item = logged[index]
            index += 1
            if item.frame.CAN_ID in VEHICLE_IDS:
                view = view.with_frame(item.frame, item.at)
            elif isinstance(item.frame, ChargerStatus):
                charger_voltage = float(item.frame.output_voltage_v)
                charger_current = float(item.frame.output_current_a)
                if item.frame.connector_locked and lock_feedback_at is None:
                    lock_feedback_at = item.at
                if charger_voltage > 400:
                    insulation_peak_seen = True
                if (
                    insulation_peak_seen
                    and charger_voltage < 20
                    and insulation is (InsulationResult.RUNNING)
                ):
                    insulation = InsulationResult.PASSED
        if state.state is ChargerState.INSULATION_TEST and insulation is InsulationResult.IDLE:
            insulation = InsulationResult.RUNNING
        locked = last_lock_command and lock_feedback_at is not None and now >= lock_feedback_at
        if DISCHARGE_FROM_S <= now < CHARGE_AGAIN_FROM_S:
            wanted, allowed = Direction.DISCHARGE, -15.0
        else:
            wanted, allowed = Direction.CHARGE, 15.0
        inputs = ControllerInputs(
            now=now,
            plugged=True,
            authorized=now < STOP_AT_S,
            wanted_direction=wanted,
            allowed_current_a=allowed,
            vehicle=view,
            connector_locked=locked,
            insulation=insulation,
            terminal_voltage_v=charger_voltage,
            measured_current_a=charger_current,
        )
        state, command = step(config, state, inputs)
        last_lock_command = command.lock
        commands.append((now, command, view))
        now = round(now + 0.1, 6)
    return Replay(states=list(state.history), commands=commands, final=state)


@pytest.fixture(scope="module")
def result() -> Replay:
    return replay()


def test_replay_follows_the_logged_sequence(result: Replay) -> None:
    assert [state for _, state in result.states] == [
        ChargerState.PLUGGED,
        ChargerState.HANDSHAKE,
        ChargerState.WAIT_CHARGE_PERMISSION,
        ChargerState.LOCKING,
        ChargerState.INSULATION_TEST,
        ChargerState.INSULATION_DECAY,
        ChargerState.WAIT_EV_CONTACTOR_CLOSE,
        ChargerState.WAIT_CURRENT_REQUEST,
        ChargerState.CHARGING,
        ChargerState.SWITCH_TO_DISCHARGE,
        ChargerState.DISCHARGING,
        ChargerState.SWITCH_TO_CHARGE,
        ChargerState.CHARGING,
        ChargerState.STOPPING,
        ChargerState.WAIT_EV_CONTACTOR_OPEN,
        ChargerState.WELD_CHECK_WAIT,
        ChargerState.UNLOCKING,
        ChargerState.ENDED,
        ChargerState.PLUGGED,  # deauthorized: ready for the next transaction
    ]
    assert result.final.stop_reason == "deauthorized" and not result.final.error_stop


def test_replay_transitions_happen_when_the_log_says(result: Replay) -> None:
    at = {}
    for time_s, state in result.states:
        at.setdefault(state, time_s)
    # The Leaf sets 0x102 b5.0 at 6.94 s, closes its contactor at 20.35 s, first requests
    # current at 22.06 s, drops its request 0.1 s after 0x108 byte 3 goes to 0, and reports
    # its contactor open at 52.89 s.
    assert at[ChargerState.LOCKING] == pytest.approx(7.0, abs=0.11)
    assert at[ChargerState.WAIT_CURRENT_REQUEST] == pytest.approx(20.4, abs=0.11)
    assert at[ChargerState.CHARGING] == pytest.approx(22.1, abs=0.11)
    assert at[ChargerState.DISCHARGING] - at[ChargerState.SWITCH_TO_DISCHARGE] <= 0.21
    assert at[ChargerState.WELD_CHECK_WAIT] == pytest.approx(52.9, abs=0.11)
    assert at[ChargerState.UNLOCKING] - at[ChargerState.WELD_CHECK_WAIT] == pytest.approx(
        0.5, abs=0.11
    )


def test_replay_commands_stay_within_the_logged_vehicle_limits(result: Replay) -> None:
    charged = discharged = False
    for _, command, view in result.commands:
        current = command.output_current_a
        if current > 0:
            charged = True
            assert current <= view.charge_request_a
            assert current <= 15
        elif current < 0:
            discharged = True
            assert -current <= view.max_discharge_current_a
        capabilities = [f for f in command.frames if isinstance(f, ChargerCapabilities)]
        if capabilities:
            assert capabilities[0].threshold_voltage_v == 435  # min(Leaf 435 V, charger 500 V)
    assert charged and discharged


def test_replay_relay_order_at_the_end(result: Replay) -> None:
    d2_off = next(t for t, cmd, _ in result.commands if t > STOP_AT_S and not cmd.d2)
    d1_off = next(t for t, cmd, _ in result.commands if t > STOP_AT_S and not cmd.d1)
    unlock = next(t for t, cmd, _ in result.commands if t > STOP_AT_S and not cmd.lock)
    assert d2_off >= 52.88  # only after the Leaf reported its contactor open
    assert d1_off - d2_off == pytest.approx(0.5, abs=0.11)
    assert unlock >= d1_off
