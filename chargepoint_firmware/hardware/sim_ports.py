"""Simulated implementations of the hardware ports, and the physical link they share.

`SimConnector` is the one object both sides of the cable share: the charger-side ports
(relays, lock, power stage, insulation monitor) write into it and the simulated vehicle reads
from it (d1/d2 signals, lock, DC current) and writes into it (its contactor, battery voltage).
So the vehicle battery sees exactly the current the simulated power stage really drives, and
the power stage measures exactly the battery's terminal voltage.

Physics kept deliberately small:
- the power stage is a current source with a finite slew rate (`slew_a_per_s`); current flows
  only while d2 is on and the EV contactor is closed, and never pushes past the voltage limit;
- with the EV contactor closed the terminal voltage is the battery's OCV + I * R;
- with it open the output capacitor decays towards 0 V (time constant `decay_tau_s`), or is
  driven to the test voltage during an insulation test.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from chargepoint_firmware.chademo.controller import InsulationResult
from chargepoint_firmware.hardware.ports import EvsePorts

Clock = Callable[[], float]


@dataclass
class DcLink:
    """The DC side: what flows between the power stage and the battery."""

    clock: Clock = time.monotonic
    # Fast enough to go from CHAdeMO's 255 A maximum to <= 5 A within the 0.5 s a stop allows
    # (docs/chademo.md); at 200 A/s a stop at 125 A took 0.6 s and tripped the controller.
    slew_a_per_s: float = 1000.0
    decay_tau_s: float = 0.15
    # Vehicle side (written by the simulated vehicle).
    ev_contactor_closed: bool = False
    battery_ocv_v: float = 0.0
    battery_resistance_ohm: float = 0.0
    # Charger side (written by the power stage / insulation monitor).
    commanded_current_a: float = 0.0
    voltage_limit_v: float = 0.0
    test_voltage_v: float | None = None
    d2_on: bool = False
    _current_a: float = 0.0
    _cap_voltage_v: float = 0.0
    _last_update: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _target_current(self) -> float:
        if not (self.ev_contactor_closed and self.d2_on):
            return 0.0
        target = self.commanded_current_a
        # A current source cannot charge a battery already at the voltage limit.
        if target > 0 and self.battery_ocv_v >= self.voltage_limit_v:
            return 0.0
        return target

    def update(self) -> None:
        """Advance the link's state to the clock's present time."""
        with self._lock:
            now = self.clock()
            dt = 0.0 if self._last_update is None else max(0.0, now - self._last_update)
            self._last_update = now
            target = self._target_current()
            if not (self.ev_contactor_closed and self.d2_on):
                self._current_a = 0.0  # an open contactor interrupts the current at once
            else:
                step = self.slew_a_per_s * dt
                delta = target - self._current_a
                self._current_a += max(-step, min(step, delta))
            if self.ev_contactor_closed:
                ir_drop = self._current_a * self.battery_resistance_ohm
                self._cap_voltage_v = self.battery_ocv_v + ir_drop
            else:
                goal = self.test_voltage_v if self.test_voltage_v is not None else 0.0
                factor = math.exp(-dt / self.decay_tau_s) if self.decay_tau_s > 0 else 0.0
                self._cap_voltage_v = goal + (self._cap_voltage_v - goal) * factor
                if abs(self._cap_voltage_v - goal) < 0.5:
                    self._cap_voltage_v = goal

    def current_a(self) -> float:
        self.update()
        return self._current_a

    def voltage_v(self) -> float:
        self.update()
        return self._cap_voltage_v


@dataclass
class SimConnector:
    """The cable and plug: signals and physical link shared by charger and vehicle."""

    link: DcLink = field(default_factory=DcLink)
    plugged: bool = False
    d1_on: bool = False
    locked: bool = False

    @property
    def d2_on(self) -> bool:
        return self.link.d2_on


class SimRelay:
    """d1 or d2: the vehicle sees the signal through the shared connector."""

    def __init__(self, connector: SimConnector, which: str) -> None:
        if which not in ("d1", "d2"):
            raise ValueError(f"unknown sequence signal {which!r}")
        self._connector = connector
        self._which = which
        self.history: list[tuple[float, bool]] = []  # (clock time, on) for sequencing tests

    def set_on(self, on: bool) -> None:
        if on != self.is_on():
            self.history.append((self._connector.link.clock(), on))
        if self._which == "d1":
            self._connector.d1_on = on
        else:
            self._connector.link.d2_on = on
            self._connector.link.update()

    def is_on(self) -> bool:
        return self._connector.d1_on if self._which == "d1" else self._connector.link.d2_on


class SimConnectorLock:
    """Latch with an actuation delay; `jammed` makes it never report locked."""

    def __init__(self, connector: SimConnector, actuation_s: float = 0.1) -> None:
        self._connector = connector
        self.actuation_s = actuation_s
        self.jammed = False
        self._wanted = False
        self._since = 0.0
        self.history: list[tuple[float, bool]] = []

    def set_locked(self, locked: bool) -> None:
        if locked != self._wanted:
            self._wanted = locked
            self._since = self._connector.link.clock()
            self.history.append((self._since, locked))
        self._settle()

    def _settle(self) -> None:
        if self._connector.link.clock() - self._since >= self.actuation_s:
            self._connector.locked = self._wanted and not self.jammed

    def is_locked(self) -> bool:
        self._settle()
        return self._connector.locked


class SimPlugSensor:
    def __init__(self, connector: SimConnector) -> None:
        self._connector = connector

    def is_plugged(self) -> bool:
        return self._connector.plugged


class SimInsulationMonitor:
    """Pre-charge test: drives the link to `test_voltage_v` for `duration_s`, then reports."""

    def __init__(
        self, connector: SimConnector, duration_s: float = 1.0, test_voltage_v: float = 500.0
    ) -> None:
        self._connector = connector
        self.duration_s = duration_s
        self.test_voltage_v = test_voltage_v
        self.fault = False  # set by tests: low isolation resistance, seen at all times
        self.test_fails = False  # set by tests: only the pre-charge test finds the fault
        self._started_at: float | None = None

    def start_test(self) -> None:
        self._started_at = self._connector.link.clock()
        self._connector.link.update()
        self._connector.link.test_voltage_v = self.test_voltage_v

    def test_result(self) -> InsulationResult:
        if self._started_at is None:
            return InsulationResult.IDLE
        if self._connector.link.clock() - self._started_at < self.duration_s:
            return InsulationResult.RUNNING
        if self._connector.link.test_voltage_v is not None:
            self._connector.link.update()
            self._connector.link.test_voltage_v = None  # test over: let the voltage decay
        failed = self.fault or self.test_fails
        return InsulationResult.FAILED if failed else InsulationResult.PASSED

    def fault_present(self) -> bool:
        return self.fault

    def reset(self) -> None:
        self._started_at = None


class SimPowerStage:
    """Drives the shared DC link; measures what really flows."""

    def __init__(self, connector: SimConnector) -> None:
        self._link = connector.link
        self.commands: list[tuple[float, float]] = []  # (clock time, current) on every change

    def command(self, current_a: float, voltage_limit_v: float) -> None:
        self._link.update()
        if not self.commands or self.commands[-1][1] != current_a:
            self.commands.append((self._link.clock(), current_a))
        self._link.commanded_current_a = current_a
        self._link.voltage_limit_v = voltage_limit_v

    def commanded_current_a(self) -> float:
        return self._link.commanded_current_a

    def measured_voltage_v(self) -> float:
        return self._link.voltage_v()

    def measured_current_a(self) -> float:
        return self._link.current_a()


class SimGridMeter:
    """Grid presence, frequency and voltage, set by tests (the voltage a DNSP's volt-watt curve
    reacts to: raise it to see the discharge capped)."""

    def __init__(
        self, present: bool = True, frequency_hz: float = 50.0, voltage_v: float = 230.0
    ) -> None:
        self.present = present
        self.frequency = frequency_hz
        self.voltage = voltage_v

    def set_voltage(self, voltage_v: float) -> None:
        self.voltage = voltage_v

    def voltage_v(self) -> float | None:
        return self.voltage if self.present else None

    def set_present(self, present: bool) -> None:
        self.present = present

    def set_frequency(self, frequency_hz: float) -> None:
        self.frequency = frequency_hz

    def voltage_present(self) -> bool:
        return self.present

    def frequency_hz(self) -> float | None:
        return self.frequency if self.present else None


class SimEmergencyStop:
    def __init__(self) -> None:
        self.pressed = False

    def press(self) -> None:
        self.pressed = True

    def release(self) -> None:
        self.pressed = False

    def is_pressed(self) -> bool:
        return self.pressed


def simulated_ports(
    connector: SimConnector,
    grid: SimGridMeter | None = None,
    emergency_stop: SimEmergencyStop | None = None,
) -> tuple[EvsePorts, SimPortSet]:
    """Ports over one simulated connector, plus typed handles for tests to poke."""
    sims = SimPortSet(
        d1=SimRelay(connector, "d1"),
        d2=SimRelay(connector, "d2"),
        lock=SimConnectorLock(connector),
        plug=SimPlugSensor(connector),
        insulation=SimInsulationMonitor(connector),
        power_stage=SimPowerStage(connector),
        grid=grid or SimGridMeter(),
        emergency_stop=emergency_stop or SimEmergencyStop(),
    )
    ports = EvsePorts(
        d1=sims.d1,
        d2=sims.d2,
        lock=sims.lock,
        plug=sims.plug,
        insulation=sims.insulation,
        power_stage=sims.power_stage,
        grid=sims.grid,
        emergency_stop=sims.emergency_stop,
    )
    return ports, sims


@dataclass
class SimPortSet:
    d1: SimRelay
    d2: SimRelay
    lock: SimConnectorLock
    plug: SimPlugSensor
    insulation: SimInsulationMonitor
    power_stage: SimPowerStage
    grid: SimGridMeter
    emergency_stop: SimEmergencyStop
