"""Helpers for CHAdeMO controller and simulated-vehicle tests."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace

import can

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
    VehicleChargeLimits,
    VehicleDischargeEstimate,
    VehicleDischargeLimits,
    VehicleStatus,
    decode,
)
from chargepoint_firmware.chademo.vehicle_view import VehicleView
from chargepoint_firmware.hardware.chademo_evse import ChademoEvse, ChademoEvseConfig, TickTrace
from chargepoint_firmware.hardware.sim_vehicle import Battery, SimVehicleConfig
from chargepoint_firmware.hardware.simulation import SimulatedEvse


def unique_channel(prefix: str = "chademo-test") -> str:
    """A python-can `virtual` channel no other test shares."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


async def wait_until(
    predicate: Callable[[], bool],
    within_s: float = 10.0,
    interval: float = 0.005,
    context: Callable[[], object] | None = None,
) -> float:
    """Poll until `predicate()`; returns the monotonic time it became true, or fails."""
    deadline = time.monotonic() + within_s
    while True:
        if predicate():
            return time.monotonic()
        if time.monotonic() > deadline:
            detail = f": {context()}" if context is not None else ""
            raise AssertionError(f"condition not met within {within_s} s{detail}")
        await asyncio.sleep(interval)


async def wait_ticks(evse: ChademoEvse, count: int, within_s: float = 10.0) -> list[TickTrace]:
    """Wait until the EVSE has run `count` more control cycles; return their traces.

    For "nothing happens" checks: a fixed sleep passes vacuously when a loaded machine runs
    no cycle in it; this waits for the re-evaluations themselves.
    """
    since = evse.trace[-1].at if evse.trace else float("-inf")

    def after() -> list[TickTrace]:
        return [t for t in evse.trace if t.at > since]

    await wait_until(lambda: len(after()) >= count, within_s)
    return after()


@asynccontextmanager
async def running_sim(
    config: ChademoEvseConfig | None = None,
    *,
    battery: Battery | None = None,
    vehicle_config: SimVehicleConfig | None = None,
    insulation_test_s: float = 0.2,
) -> AsyncIterator[Rig]:
    """A started simulated EVSE + vehicle on a fresh virtual channel; stopped afterwards.

    A third bus on the channel records every frame (`rig.sniffer`).
    """
    config = config or ChademoEvseConfig()
    config = replace(config, can_interface="virtual", can_channel=unique_channel())
    vehicle_config = vehicle_config or SimVehicleConfig(permission_delay_s=0.2)
    sim = SimulatedEvse.create(config, battery=battery, vehicle_config=vehicle_config)
    sim.ports.insulation.duration_s = insulation_test_s
    sniffer = BusRecorder(can.Bus(interface="virtual", channel=config.can_channel))
    await sim.start()
    try:
        yield Rig(sim, sniffer)
    finally:
        await sim.stop(graceful_s=0.0)  # tests that need the graceful stop call it themselves
        sniffer.close()


@dataclass
class Rig:
    sim: SimulatedEvse
    sniffer: BusRecorder


class BusRecorder:
    """Records every frame seen on a bus with its receive time (python-can Notifier thread)."""

    def __init__(self, bus: can.BusABC) -> None:
        self.bus = bus
        self.frames: list[tuple[float, int, bytes]] = []
        self._notifier = can.Notifier(bus, [self._on_message], timeout=0.05)

    def _on_message(self, msg: can.Message) -> None:
        self.frames.append((time.monotonic(), msg.arbitration_id, bytes(msg.data)))

    def decoded(self, can_id: int, since: float = 0.0) -> list[tuple[float, object]]:
        return [
            (at, decode(cid, data))
            for at, cid, data in list(self.frames)
            if cid == can_id and at >= since
        ]

    def close(self) -> None:
        self._notifier.stop(timeout=0.2)
        self.bus.shutdown()


async def start_session(rig: Rig, within_s: float = 10.0) -> None:
    """Plug in, authorize, and wait for energy transfer to begin."""
    sim = rig.sim
    sim.vehicle.plug_in()
    sim.evse.allow_energy_transfer(True)
    await wait_until(
        lambda: (
            sim.evse.controller_state.state in (ChargerState.CHARGING, ChargerState.DISCHARGING)
        ),
        within_s,
    )


# --- pure state machine harness ----------------------------------------------------------------

EV_LIMITS = VehicleChargeLimits(maximum_battery_voltage_v=435, charged_rate_reference=100)


def ev_status(**changes: object) -> VehicleStatus:
    """A Leaf-like 0x102 (discharge compatible, contactor open) with changes."""
    base = VehicleStatus(
        protocol_number=2,
        target_battery_voltage_v=410,
        discharge_compatible=True,
        state_of_charge=73,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


@dataclass
class Harness:
    """Steps the pure controller with a clock the test moves, recording every command."""

    config: ControllerConfig = field(default_factory=ControllerConfig)
    state: ControllerState = field(default_factory=ControllerState)
    now: float = 0.0
    vehicle: VehicleView = field(default_factory=VehicleView)
    plugged: bool = True
    authorized: bool = True
    wanted: Direction = Direction.CHARGE
    allowed_a: float = 15.0
    offered_a: float | None = None
    locked: bool = False
    insulation: InsulationResult = InsulationResult.IDLE
    voltage_v: float = 0.0
    current_a: float = 0.0
    safety_faults: frozenset[str] = frozenset()
    commands: list[ControllerCommand] = field(default_factory=list)

    def send(self, *frames: object) -> None:
        """The vehicle sends frames now."""
        for frame in frames:
            self.vehicle = self.vehicle.with_frame(frame, self.now)  # type: ignore[arg-type]

    def tick(self, dt: float = 0.1) -> ControllerCommand:
        self.now += dt
        inputs = ControllerInputs(
            now=self.now,
            plugged=self.plugged,
            authorized=self.authorized,
            wanted_direction=self.wanted,
            allowed_current_a=self.allowed_a,
            vehicle=self.vehicle,
            connector_locked=self.locked,
            insulation=self.insulation,
            terminal_voltage_v=self.voltage_v,
            measured_current_a=self.current_a,
            safety_faults=self.safety_faults,
            offered_charge_current_a=self.offered_a,
        )
        self.state, command = step(self.config, self.state, inputs)
        self.commands.append(command)
        return command

    @property
    def at(self) -> ChargerState:
        return self.state.state

    def events(self) -> list[tuple[str, str]]:
        return [(e.kind.value, e.detail) for c in self.commands for e in c.events]

    def to_energy_transfer(self, status: VehicleStatus | None = None) -> None:
        """Drive the sequence from IDLE to CHARGING with a well-behaved vehicle."""
        self.tick()  # IDLE -> PLUGGED
        self.tick()  # -> HANDSHAKE (d1)
        self.send(EV_LIMITS, ev_status(), VehicleDischargeLimits(min_discharge_voltage_v=250))
        self.send(VehicleDischargeEstimate(sequence_control_number=2))
        self.tick()  # -> WAIT_CHARGE_PERMISSION
        self.send(ev_status(charging_enabled=True))
        self.tick()  # -> LOCKING
        self.locked = True
        self.tick()  # -> INSULATION_TEST
        self.insulation = InsulationResult.PASSED
        self.tick()  # -> INSULATION_DECAY
        self.tick()  # -> WAIT_EV_CONTACTOR_CLOSE (d2)
        self.voltage_v = 374.0
        self.send(ev_status(charging_enabled=True, ev_contactor_open=False))
        self.tick()  # -> WAIT_CURRENT_REQUEST
        final = status or ev_status(
            charging_enabled=True, ev_contactor_open=False, charging_current_request_a=15
        )
        self.send(
            final, VehicleDischargeLimits(max_discharge_current_a=15, min_discharge_voltage_v=250)
        )
        self.tick()  # -> CHARGING


class LoopbackTask(can.ModifiableCyclicTaskABC):
    """A periodic task of `LoopbackBus`: sends only when the test calls `fire_periodic`."""

    def __init__(self, bus: LoopbackBus, message: can.Message, period: float) -> None:
        super().__init__(message, period)
        self.bus = bus
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True
        if self in self.bus.tasks:
            self.bus.tasks.remove(self)


class LoopbackBus:
    """A synchronous in-memory CAN link for deterministic tests (fake clock, manual ticks).

    `send` hands the message straight to the peer's handler, like a bus with no latency.
    `send_periodic` tasks send when the test calls `fire_periodic()` (once per fake period),
    so the fake clock, not a thread, sets the pace. Only what ChademoEvse and SimVehicle use
    of a python-can bus is provided.
    """

    def __init__(self) -> None:
        self.peer: LoopbackBus | None = None
        self.handler: Callable[[can.Message], None] | None = None
        self.sent: list[can.Message] = []
        self.tasks: list[LoopbackTask] = []

    def send_periodic(self, msgs: can.Message, period: float) -> LoopbackTask:
        task = LoopbackTask(self, msgs, period)
        self.tasks.append(task)
        return task

    def fire_periodic(self) -> None:
        """One period of every periodic task: each sends its current message, in start order."""
        for task in list(self.tasks):
            if not task.stopped:
                self.send(task.messages[0])

    @staticmethod
    def pair() -> tuple[LoopbackBus, LoopbackBus]:
        a, b = LoopbackBus(), LoopbackBus()
        a.peer, b.peer = b, a
        return a, b

    def send(self, msg: can.Message, timeout: float | None = None) -> None:
        self.sent.append(msg)
        if self.peer is not None and self.peer.handler is not None:
            self.peer.handler(msg)
