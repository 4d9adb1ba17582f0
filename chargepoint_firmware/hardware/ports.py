"""Small hardware ports of one CHAdeMO EVSE.

Each port is the narrowest interface the charger controller needs from one piece of hardware.
A real charger implements them over GPIO / relays / an isolation monitor / its power module;
`sim_ports.py` implements them for tests and simulation. The controller never talks to hardware
except through these ports, so the same controller code drives both.

Sign convention (as in `interfaces.py`): positive current = into the vehicle (charge).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from chargepoint_firmware.chademo.controller import InsulationResult

__all__ = [
    "ConnectorLockPort",
    "DcPowerStagePort",
    "EmergencyStopPort",
    "EvsePorts",
    "GridMeterPort",
    "InsulationMonitorPort",
    "InsulationResult",
    "PlugSensorPort",
    "RelayPort",
    "ac_voltage_pct",
]


class RelayPort(Protocol):
    """A sequence-signal relay (CHAdeMO d1 or d2) driven by the charger."""

    def set_on(self, on: bool) -> None: ...

    def is_on(self) -> bool: ...


class ConnectorLockPort(Protocol):
    """The connector latch solenoid and its position feedback."""

    def set_locked(self, locked: bool) -> None: ...

    def is_locked(self) -> bool:
        """Feedback: True only once the latch is really engaged."""


class PlugSensorPort(Protocol):
    """Connector proximity detection (vehicle connected)."""

    def is_plugged(self) -> bool: ...


class InsulationMonitorPort(Protocol):
    """DC isolation monitor: a pre-charge test, then continuous supervision."""

    def start_test(self) -> None:
        """Begin the pre-charge insulation test (the result moves RUNNING -> PASSED/FAILED)."""

    def test_result(self) -> InsulationResult: ...

    def fault_present(self) -> bool:
        """Continuous supervision: True while the isolation resistance is too low."""


class DcPowerStagePort(Protocol):
    """The bidirectional DC converter: current-controlled, with a voltage limit."""

    def command(self, current_a: float, voltage_limit_v: float) -> None:
        """Set the signed DC current (+ into the vehicle, - out of it); 0 disables output."""

    def measured_voltage_v(self) -> float:
        """Voltage at the charger's DC terminals."""

    def measured_current_a(self) -> float:
        """Signed DC current really flowing (+ into the vehicle)."""


class GridMeterPort(Protocol):
    """AC-side measurement: is the grid there, at what frequency and what voltage."""

    def voltage_present(self) -> bool: ...

    def frequency_hz(self) -> float | None: ...

    def voltage_v(self) -> float | None:
        """AC RMS voltage at the connection point (line to neutral); None = not measured."""
        ...


# A grid meter reading outside this (V) is implausible: no volt-watt response on it.
_AC_VOLTAGE_PLAUSIBLE_V = (50.0, 400.0)


def ac_voltage_pct(voltage_v: float | None, nominal_v: float) -> float | None:
    """The AC voltage as % of nominal, None when not measured or implausible (NaN, out of
    range): the volt-watt cap then does not apply, as without a meter."""
    low, high = _AC_VOLTAGE_PLAUSIBLE_V
    if voltage_v is None or not math.isfinite(voltage_v) or not low <= voltage_v <= high:
        return None
    return voltage_v / nominal_v * 100.0


class EmergencyStopPort(Protocol):
    """The mushroom button (or an external trip input)."""

    def is_pressed(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class EvsePorts:
    """Every port one CHAdeMO EVSE needs, bundled for construction."""

    d1: RelayPort
    d2: RelayPort
    lock: ConnectorLockPort
    plug: PlugSensorPort
    insulation: InsulationMonitorPort
    power_stage: DcPowerStagePort
    grid: GridMeterPort
    emergency_stop: EmergencyStopPort
