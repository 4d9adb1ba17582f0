"""Where the OCPP side of the agent meets the hardware side.

The OCPP side (ocpp_edge/, blocks/, v2g_shared.schedule) decides *what* each EVSE should do
and publishes an `EvseSetpoint`. The hardware side (chademo/, safety/, hardware/) decides
*whether and how* it can be done safely, and reports what really happens as `EvseStatus`
snapshots and `HardwareEvent`s. Nothing here imports I/O code: both sides and their tests
depend only on these types.

Sign convention everywhere in the agent: positive = energy into the vehicle (charge),
negative = energy out of the vehicle (discharge). Currents are DC amps, powers DC watts.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from v2g_shared.schedule.envelope import EnvelopeBounds

RateUnit = Literal["A", "W"]


@dataclass(frozen=True, slots=True)
class EvseSetpoint:
    """What the composite schedule asks of one EVSE at this moment.

    `limit` None means "no limit from the network" (charge as the vehicle and hardware allow).
    A negative limit is a discharge request of up to |limit| (only produced when the
    negative-limit-is-discharge convention is enabled).
    """

    evse_id: int
    limit: float | None
    unit: RateUnit = "W"
    # When the schedule will next change (a period boundary), for logging and offline fallback.
    valid_until: datetime | None = None
    # Upper bound on charge in the opposite direction: a max profile bounds both directions.
    source: str = "schedule"
    # The operating envelope in force (CSIP-AUS, W): the safety supervisor applies it as a local
    # limit on every tick, whatever moves `limit` afterwards. None = no envelope.
    envelope: EnvelopeBounds | None = None
    # The OCPP 2.1 DER LimitMaxDischarge in force (W, magnitude): a local limit on discharge
    # for the supervisor likewise. None = no such control.
    der_max_discharge_w: float | None = None


class SessionState(enum.StrEnum):
    """Coarse state of the power path of one EVSE, as the OCPP side needs to know it."""

    IDLE = "idle"  # nothing plugged
    PLUGGED = "plugged"  # vehicle connected, no energy transfer
    PREPARING = "preparing"  # handshake / insulation test / contactors
    CHARGING = "charging"
    DISCHARGING = "discharging"
    SUSPENDED = "suspended"  # energy transfer allowed but current is zero (EVSE or EV side)
    STOPPING = "stopping"
    FAULTED = "faulted"  # a latched safety fault


@dataclass(frozen=True, slots=True)
class VehicleLimits:
    """Limits the vehicle announced over CAN (None = not known yet)."""

    max_charge_current_a: float | None = None
    max_discharge_current_a: float | None = None
    min_voltage_v: float | None = None
    max_voltage_v: float | None = None
    min_discharge_voltage_v: float | None = None
    discharge_compatible: bool = False
    min_soc_for_discharge_pct: float | None = None
    max_soc_for_charge_pct: float | None = None
    battery_capacity_kwh: float | None = None


@dataclass(frozen=True, slots=True)
class EvseStatus:
    """A snapshot of one EVSE's measured state."""

    evse_id: int
    state: SessionState
    plugged: bool
    voltage_v: float = 0.0
    current_a: float = 0.0  # signed: + charge, - discharge
    power_w: float = 0.0  # signed like current_a
    soc_pct: float | None = None
    energy_import_wh: float = 0.0  # register: energy delivered to the vehicle, monotonic
    energy_export_wh: float = 0.0  # register: energy taken from the vehicle, monotonic
    vehicle: VehicleLimits = field(default_factory=VehicleLimits)
    grid_present: bool = True
    grid_frequency_hz: float | None = None
    # AC grid voltage in % of nominal (DER volt-watt); None = not measured by this hardware
    grid_voltage_pct: float | None = None
    latched_faults: tuple[str, ...] = ()
    # The current the safety supervisor last commanded and what bounded it (for diagnostics).
    commanded_current_a: float = 0.0
    limited_by: str = ""


class HardwareEventKind(enum.StrEnum):
    PLUGGED_IN = "plugged_in"
    UNPLUGGED = "unplugged"
    ENERGY_TRANSFER_STARTED = "energy_transfer_started"
    ENERGY_TRANSFER_STOPPED = "energy_transfer_stopped"
    DIRECTION_CHANGED = "direction_changed"
    SESSION_ENDED = "session_ended"  # the CHAdeMO sequence ended (normal or error stop)
    FAULT = "fault"  # a safety trip latched; detail names the cause
    FAULT_CLEARED = "fault_cleared"
    GRID_LOST = "grid_lost"
    GRID_RESTORED = "grid_restored"
    BACKUP_MODE = "backup_mode"  # islanded backup started/ended (detail)


@dataclass(frozen=True, slots=True)
class HardwareEvent:
    evse_id: int
    kind: HardwareEventKind
    at: datetime
    # Cause of a fault or stop: e.g. "can_silence", "vehicle_fault:battery_overvoltage",
    # "emergency_stop", "ev_stop_request", "grid_loss".
    detail: str = ""


HardwareListener = Callable[[HardwareEvent], None]


class EvseHardware(Protocol):
    """What the OCPP side may ask of the hardware side of one EVSE.

    Implemented by the CHAdeMO controller (real CAN or python-can virtual bus with a simulated
    vehicle) and by simple fakes in the OCPP side's tests.
    """

    @property
    def evse_id(self) -> int: ...

    def set_setpoint(self, setpoint: EvseSetpoint) -> None:
        """Latest wish of the schedule; the safety supervisor still applies on every tick."""

    def status(self) -> EvseStatus:
        """Current measured state (cheap; called for every meter value sample)."""

    def subscribe(self, listener: HardwareListener) -> None:
        """Call `listener` for every hardware event (from the event loop's thread)."""

    def allow_energy_transfer(self, allowed: bool) -> None:
        """Authorization gate: energy flows only while a transaction authorizes it.

        False stops an ongoing transfer normally (RequestStopTransaction, deauthorization).
        """

    def set_csms_connected(self, connected: bool) -> None:
        """Feeds the safety supervisor's offline fallback."""

    def set_departure(self, departure: datetime | None, target_soc_pct: float | None) -> None:
        """When the vehicle leaves and the SoC (%) it needs then (V2XCtrlr.DepartureTime and
        DepartureSoC); None for either means no departure constraint.

        The safety supervisor then stops discharge at the SoC from which the vehicle can still
        be charged to `target_soc_pct` by `departure` at its charge rate; a departure in the
        past constrains nothing. `departure` is time-zone aware.
        """

    def reset_faults(self) -> tuple[str, ...]:
        """Explicit reset of latched faults; returns those that were cleared."""
