"""Cyclic CAN frames through python-can's periodic sending: one task per CAN id.

CHAdeMO sends every frame every 100 ms. Instead of a `bus.send` per frame per control tick,
`CyclicFrames.update(frames)` keeps one `bus.send_periodic` task per id (python-can's
`CyclicSendTask`: the kernel's broadcast manager on socketcan, a sending thread on interfaces
without native support such as `virtual`):

- an id that appears starts its task (the first frame goes out at once);
- an id whose data changed gets `modify_data` (the new bytes go out at the task's next period),
  or, with `at_once=True`, a fresh task, so the new bytes reach the bus now (a stop must not wait
  for the next period);
- an id that is no longer listed stops its task; `stop()` ends them all (session end, fault,
  shutdown: the bus goes silent).

A task whose sending thread ended on a bus error is started again on the next update.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import can

log = logging.getLogger(__name__)


class CyclicFrames:
    """The periodic tasks of one sender on one bus, kept in step with the frames to send."""

    def __init__(self, bus: can.BusABC, period_s: float, name: str = "") -> None:
        self._bus = bus
        self._period_s = period_s
        self._name = name
        self._tasks: dict[int, can.broadcastmanager.CyclicSendTaskABC] = {}
        self._data: dict[int, bytes] = {}

    @property
    def ids(self) -> tuple[int, ...]:
        """The CAN ids being sent, in the order they were started."""
        return tuple(self._tasks)

    def data(self, can_id: int) -> bytes | None:
        """The bytes being sent for `can_id` (None: not sent)."""
        return self._data.get(can_id)

    def update(self, frames: Sequence[tuple[int, bytes]], *, at_once: bool = False) -> int:
        """Send `frames` (CAN id, data) every period from now on; returns how many tasks were
        started or changed."""
        wanted = dict(frames)
        for can_id in [i for i in self._tasks if i not in wanted]:
            self._stop(can_id)
        changed = 0
        for can_id, data in wanted.items():
            task = self._tasks.get(can_id)
            message = can.Message(arbitration_id=can_id, data=data, is_extended_id=False)
            if task is not None and getattr(task, "stopped", False):
                self._stop(can_id)  # its thread ended on a bus error: start afresh
                task = None
            if task is None:
                self._start(can_id, message)
                changed += 1
            elif data != self._data[can_id]:
                if at_once:
                    self._stop(can_id)
                    self._start(can_id, message)
                else:
                    assert isinstance(task, can.ModifiableCyclicTaskABC)
                    task.modify_data(message)
                    self._data[can_id] = data
                changed += 1
        return changed

    def stop(self) -> None:
        """Stop every task: the sender goes silent."""
        for can_id in list(self._tasks):
            self._stop(can_id)

    def _start(self, can_id: int, message: can.Message) -> None:
        try:
            self._tasks[can_id] = self._bus.send_periodic(message, self._period_s)
            self._data[can_id] = bytes(message.data)
        except can.CanError as exc:
            log.warning("%s: periodic send of %#05x failed: %s", self._name, can_id, exc)

    def _stop(self, can_id: int) -> None:
        task = self._tasks.pop(can_id)
        self._data.pop(can_id, None)
        try:
            task.stop()
        except can.CanError as exc:
            log.warning("%s: stopping %#05x failed: %s", self._name, can_id, exc)


__all__ = ["CyclicFrames"]
