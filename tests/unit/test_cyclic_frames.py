"""CyclicFrames over python-can's `virtual` bus (software periodic sending)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import can
import pytest

from chargepoint_firmware.hardware.cyclic_frames import CyclicFrames
from tests.support.chademo_sim import LoopbackBus, unique_channel

PERIOD_S = 0.02


@pytest.fixture
def buses() -> Iterator[tuple[can.BusABC, can.BusABC]]:
    channel = unique_channel("cyclic")
    sender = can.Bus(interface="virtual", channel=channel)
    receiver = can.Bus(interface="virtual", channel=channel)
    yield sender, receiver
    sender.shutdown()
    receiver.shutdown()


def received(bus: can.BusABC, within_s: float) -> list[tuple[int, bytes]]:
    frames = []
    deadline = time.monotonic() + within_s
    while (left := deadline - time.monotonic()) > 0:
        msg = bus.recv(left)
        if msg is not None:
            frames.append((msg.arbitration_id, bytes(msg.data)))
    return frames


def test_one_task_per_id_repeats_modifies_and_stops(
    buses: tuple[can.BusABC, can.BusABC],
) -> None:
    sender, receiver = buses
    cyclic = CyclicFrames(sender, PERIOD_S, "test")
    assert cyclic.update([(0x108, bytes(8)), (0x109, bytes([1] * 8))]) == 2
    assert cyclic.ids == (0x108, 0x109)
    frames = received(receiver, 5 * PERIOD_S)
    assert frames.count((0x108, bytes(8))) >= 3 and frames.count((0x109, bytes([1] * 8))) >= 3
    # Same content: nothing to change. New content: modify_data, same task.
    assert cyclic.update([(0x108, bytes(8)), (0x109, bytes([1] * 8))]) == 0
    assert cyclic.update([(0x108, bytes(8)), (0x109, bytes([2] * 8))]) == 1
    received(receiver, 2 * PERIOD_S)  # let the old content drain
    frames = received(receiver, 5 * PERIOD_S)
    assert (0x109, bytes([2] * 8)) in frames and (0x109, bytes([1] * 8)) not in frames
    # An id no longer listed stops; stop() silences the rest.
    cyclic.update([(0x109, bytes([2] * 8))])
    assert cyclic.ids == (0x109,)
    received(receiver, 2 * PERIOD_S)
    assert {can_id for can_id, _ in received(receiver, 5 * PERIOD_S)} == {0x109}
    cyclic.stop()
    assert cyclic.ids == ()
    received(receiver, 2 * PERIOD_S)
    assert received(receiver, 5 * PERIOD_S) == []


def test_at_once_sends_the_new_content_without_waiting_for_the_period(
    buses: tuple[can.BusABC, can.BusABC],
) -> None:
    sender, receiver = buses
    cyclic = CyclicFrames(sender, 1.0, "test")  # a long period: only at-once sends arrive
    cyclic.update([(0x109, bytes(8))])
    assert received(receiver, 0.2) == [(0x109, bytes(8))]
    cyclic.update([(0x109, bytes([0x20] * 8))], at_once=True)
    assert received(receiver, 0.2) == [(0x109, bytes([0x20] * 8))]
    cyclic.update([(0x109, bytes([0x30] * 8))])  # modify_data: waits for the period
    assert received(receiver, 0.2) == []
    cyclic.stop()


def test_loopback_bus_sends_periodic_frames_when_the_test_fires_them() -> None:
    a, b = LoopbackBus.pair()
    got: list[bytes] = []
    b.handler = lambda msg: got.append(bytes(msg.data))
    cyclic = CyclicFrames(a, 0.1, "test")  # type: ignore[arg-type]
    cyclic.update([(0x108, bytes(8))])
    assert got == []
    a.fire_periodic()
    cyclic.update([(0x108, bytes([1] * 8))])
    a.fire_periodic()
    cyclic.stop()
    a.fire_periodic()
    assert got == [bytes(8), bytes([1] * 8)]
