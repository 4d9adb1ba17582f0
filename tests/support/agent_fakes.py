"""Fakes for the agent's tests: a scriptable EvseHardware and a hand-driven clock."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from chargepoint_firmware.interfaces import (
    EvseSetpoint,
    EvseStatus,
    HardwareEvent,
    HardwareEventKind,
    HardwareListener,
    SessionState,
)


class ManualClock:
    """Time moves only when the test says so (`advance`)."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
        self._waiters: list[tuple[datetime, asyncio.Future[None]]] = []

    def now(self) -> datetime:
        return self._now

    async def sleep_until(self, when: datetime) -> None:
        while self._now < when:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append((when, future))
            try:
                await future
            finally:
                self._waiters = [w for w in self._waiters if w[1] is not future]

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)
        for when, future in list(self._waiters):
            if when <= self._now and not future.done():
                future.set_result(None)

    def sleepers(self) -> list[datetime]:
        return sorted(when for when, _ in self._waiters)


class FakeEvse:
    """An EvseHardware whose measurements and events the test scripts.

    Events are delivered on the next loop iteration (like real hardware, which reports from its
    control loop), never re-entrantly from inside a call.
    """

    def __init__(self, evse_id: int, clock: ManualClock | None = None) -> None:
        self._evse_id = evse_id
        self.clock = clock
        self._status = EvseStatus(evse_id, SessionState.IDLE, plugged=False)
        self.listeners: list[HardwareListener] = []
        self.setpoints: list[tuple[datetime | None, EvseSetpoint]] = []
        self.allowed = False
        self.allowed_history: list[bool] = []
        self.csms_connected_history: list[bool] = []
        self.faults_reset = 0
        self.departures: list[tuple[datetime | None, float | None]] = []
        # Power drawn while energy transfer is allowed (charge +, discharge -).
        self.transfer_power_w = 7000.0

    @property
    def evse_id(self) -> int:
        return self._evse_id

    # -- EvseHardware -------------------------------------------------------------------------
    def set_setpoint(self, setpoint: EvseSetpoint) -> None:
        self.setpoints.append((self.clock.now() if self.clock else None, setpoint))

    def status(self) -> EvseStatus:
        return self._status

    def subscribe(self, listener: HardwareListener) -> None:
        self.listeners.append(listener)

    def allow_energy_transfer(self, allowed: bool) -> None:
        self.allowed = allowed
        self.allowed_history.append(allowed)
        if allowed and self._status.plugged:
            power = self.transfer_power_w
            self._update(
                state=SessionState.CHARGING if power >= 0 else SessionState.DISCHARGING,
                power_w=power,
                current_a=power / max(self._status.voltage_v, 1.0),
            )
            self._emit(HardwareEventKind.ENERGY_TRANSFER_STARTED)
        elif not allowed and self._status.state in (
            SessionState.CHARGING,
            SessionState.DISCHARGING,
        ):
            self._update(state=SessionState.PLUGGED, power_w=0.0, current_a=0.0)
            self._emit(HardwareEventKind.ENERGY_TRANSFER_STOPPED)

    def set_csms_connected(self, connected: bool) -> None:
        self.csms_connected_history.append(connected)

    def set_departure(self, departure: datetime | None, target_soc_pct: float | None) -> None:
        self.departures.append((departure, target_soc_pct))

    def reset_faults(self) -> tuple[str, ...]:
        cleared = self._status.latched_faults
        self.faults_reset += 1
        if cleared:
            self._update(
                latched_faults=(),
                state=SessionState.PLUGGED if self._status.plugged else SessionState.IDLE,
            )
            self._emit(HardwareEventKind.FAULT_CLEARED)
        return cleared

    # -- test controls ------------------------------------------------------------------------
    def plug_in(self, soc_pct: float = 50.0, voltage_v: float = 380.0) -> None:
        self._update(plugged=True, state=SessionState.PLUGGED, soc_pct=soc_pct, voltage_v=voltage_v)
        self._emit(HardwareEventKind.PLUGGED_IN)

    def unplug(self) -> None:
        was_transferring = self._status.state in (SessionState.CHARGING, SessionState.DISCHARGING)
        self._update(
            plugged=False,
            state=SessionState.IDLE,
            power_w=0.0,
            current_a=0.0,
            soc_pct=None,
            voltage_v=0.0,
        )
        if was_transferring:
            self._emit(HardwareEventKind.ENERGY_TRANSFER_STOPPED)
        self._emit(HardwareEventKind.UNPLUGGED)

    def add_energy(self, import_wh: float = 0.0, export_wh: float = 0.0) -> None:
        self._update(
            energy_import_wh=self._status.energy_import_wh + import_wh,
            energy_export_wh=self._status.energy_export_wh + export_wh,
        )

    def trip(self, cause: str) -> None:
        self._update(
            latched_faults=(*self._status.latched_faults, cause),
            state=SessionState.FAULTED,
            power_w=0.0,
            current_a=0.0,
        )
        self._emit(HardwareEventKind.FAULT, cause)

    def _update(self, **changes: object) -> None:
        self._status = replace(self._status, **changes)  # type: ignore[arg-type]

    def _emit(self, kind: HardwareEventKind, detail: str = "") -> None:
        at = self.clock.now() if self.clock else datetime.now(UTC)
        event = HardwareEvent(self._evse_id, kind, at, detail)
        loop = asyncio.get_running_loop()
        for listener in list(self.listeners):
            loop.call_soon(listener, event)
