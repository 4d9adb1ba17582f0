"""`ChademoEvse`: one CHAdeMO DC EVSE over python-can, behind `interfaces.EvseHardware`.

Every control tick (100 ms, an asyncio loop with absolute deadlines):
  ports -> setpoint as signed amps (W / present battery voltage) -> safety supervisor
  (`chargepoint_firmware.safety.supervise`, the last gate) -> CHAdeMO state machine
  (`chademo.controller.step`), all in the pure `chademo.charger_rules.charger_step`
  -> power stage, relays, lock -> cyclic frames 0x108, 0x109 (+ 0x208, 0x209)
  -> energy registers, status snapshot, hardware events.
The cyclic frames go through python-can's periodic sending (`hardware.cyclic_frames`: one
`send_periodic` task per id, `modify_data` when the content changes, all stopped when the
charger goes silent: session end, fault stop, shutdown); the tick only updates their content.
Vehicle frames arrive through a `can.Notifier` running on the asyncio loop; a vehicle frame
that asks for a stop (fault flag, stop request, charge-enable falling edge) triggers an
extra tick at once, so the power stage drops without waiting for the next cycle. A stop's
frames (from such a tick, or from the tick in which a stop begins) restart their tasks, so they
reach the bus at once rather than at the tasks' next period.

The bus is any python-can interface from configuration: `socketcan` on a real charger,
`virtual` in tests and simulation (a unique channel per test).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import can

from chargepoint_firmware.chademo.charger_rules import (
    ChargerRulesConfig,
    ChargerStepInputs,
    charger_step,
    discharge_soc_limit_pct,
)
from chargepoint_firmware.chademo.controller import (
    ACTIVE_STATES,
    STOP_CURRENT_A,
    ChargerState,
    ControllerConfig,
    ControllerState,
    session_state,
)
from chargepoint_firmware.chademo.frames import (
    FrameDecodeError,
    VehicleStatus,
    decode,
    encode,
)
from chargepoint_firmware.chademo.vehicle_view import VehicleView
from chargepoint_firmware.hardware.cyclic_frames import CyclicFrames
from chargepoint_firmware.hardware.ports import EvsePorts, ac_voltage_pct
from chargepoint_firmware.interfaces import (
    EvseSetpoint,
    EvseStatus,
    HardwareEvent,
    HardwareEventKind,
    HardwareListener,
    VehicleLimits,
)
from chargepoint_firmware.safety import SafetyConfig, SafetyState, reset_faults
from chargepoint_firmware.safety.senders import SenderConfig, SenderState, observe_frame

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ChademoEvseConfig:
    """One EVSE: its limits, its CAN bus and the supervisor's settings."""

    evse_id: int = 1
    can_interface: str = "socketcan"  # any python-can interface name ("virtual" in tests)
    can_channel: str = "can0"
    can_bitrate: int = 500_000  # CHAdeMO: 500 kbit/s
    max_charge_current_a: float = 15.0
    max_discharge_current_a: float = 15.0
    max_charge_power_w: float = 7_000.0
    max_discharge_power_w: float = 7_000.0
    min_voltage_v: float = 150.0
    max_voltage_v: float = 500.0
    # AC side: the nominal voltage the grid meter's reading is a percentage of (DER volt-watt).
    nominal_ac_voltage_v: float = 230.0
    discharge_capable: bool = True
    welding_detection: bool = True
    tick_s: float = 0.1  # CHAdeMO cycle
    # None: built from the limits above with the supervisor's defaults.
    safety: SafetyConfig | None = None
    # Simulation only: multiply integrated energy like SimVehicleConfig.time_scale does.
    energy_time_scale: float = 1.0
    # Departure floor: battery capacity until the vehicle's 0x101 frame tells it. A larger
    # guess only raises the floor (fewer % per kWh charged), so the default is a large
    # CHAdeMO battery (62 kWh Leaf e+).
    battery_capacity_kwh: float = 62.0
    # DC terminals -> cells, for the energy the vehicle can still gain before departure.
    charge_efficiency: float = 0.9

    def __post_init__(self) -> None:
        # Checked here, not in the 100 ms tick, where a bad value would stop every cycle.
        if not (math.isfinite(self.battery_capacity_kwh) and self.battery_capacity_kwh > 0):
            raise ValueError(f"battery_capacity_kwh must be > 0, got {self.battery_capacity_kwh}")
        if not (math.isfinite(self.charge_efficiency) and 0 < self.charge_efficiency <= 1):
            raise ValueError(f"charge_efficiency must be in (0, 1], got {self.charge_efficiency}")
        if not (
            math.isfinite(self.nominal_ac_voltage_v) and 50 <= self.nominal_ac_voltage_v <= 400
        ):
            raise ValueError(
                f"nominal_ac_voltage_v must be 50..400, got {self.nominal_ac_voltage_v}"
            )

    def safety_config(self) -> SafetyConfig:
        if self.safety is not None:
            return self.safety
        return SafetyConfig(
            max_charge_current_a=self.max_charge_current_a,
            max_discharge_current_a=self.max_discharge_current_a,
            max_charge_power_w=self.max_charge_power_w,
            max_discharge_power_w=self.max_discharge_power_w,
            min_voltage_v=self.min_voltage_v,
            max_voltage_v=self.max_voltage_v,
        )

    def rules_config(self) -> ChargerRulesConfig:
        return ChargerRulesConfig(
            controller=self.controller_config(),
            safety=self.safety_config(),
            max_charge_current_a=self.max_charge_current_a,
            max_charge_power_w=self.max_charge_power_w,
            min_voltage_v=self.min_voltage_v,
            battery_capacity_kwh=self.battery_capacity_kwh,
            charge_efficiency=self.charge_efficiency,
        )

    def controller_config(self) -> ControllerConfig:
        return ControllerConfig(
            max_voltage_v=self.max_voltage_v,
            min_voltage_v=self.min_voltage_v,
            max_charge_current_a=self.max_charge_current_a,
            max_discharge_current_a=self.max_discharge_current_a,
            discharge_capable=self.discharge_capable,
            welding_detection=self.welding_detection,
        )


# Error stops whose causes the safety supervisor latches and reports itself.
_SUPERVISOR_REPORTED = ("fault:", "vehicle_fault:")
# States in which stopping the process needs no sequence.
_AT_REST = frozenset({ChargerState.IDLE, ChargerState.PLUGGED, ChargerState.ENDED})


@dataclass
class _Registers:
    import_wh: float = 0.0
    export_wh: float = 0.0
    last_at: float | None = None


@dataclass
class TickTrace:
    """Per-tick record kept for diagnostics and tests (bounded)."""

    at: float
    state: ChargerState
    commanded_a: float
    measured_a: float
    limited_by: str


class ChademoEvse:
    """A CHAdeMO EVSE implementing `interfaces.EvseHardware`."""

    def __init__(
        self,
        config: ChademoEvseConfig,
        ports: EvsePorts,
        *,
        bus: can.BusABC | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._config = config
        self._grid_voltage_pct: float | None = None
        self._ports = ports
        self._bus = bus
        self._owns_bus = bus is None
        self._clock = clock
        self._wall_clock = wall_clock
        self._safety_config = config.safety_config()
        self._rules_config = config.rules_config()
        self._cstate = ControllerState(since=clock())
        self._sstate = SafetyState()
        self._vehicle = VehicleView()
        self._sender_config = SenderConfig()
        self._senders = SenderState()  # second-sender detector over this session's frames
        self._setpoint = EvseSetpoint(evse_id=config.evse_id, limit=None)
        self._authorized = False
        self._csms_connected = False
        self._csms_last_seen: float | None = None
        self._departure: datetime | None = None
        self._departure_target_pct: float | None = None
        self._listeners: list[HardwareListener] = []
        self._registers = _Registers()
        self._insulation_started = False
        self._grid_present: bool | None = None
        self._islanded = False
        self._notifier: can.Notifier | None = None
        self._cyclic: CyclicFrames | None = None
        self._task: asyncio.Task[None] | None = None
        self._last_tick_at: float | None = None
        self._last_measured_a = 0.0
        self._at_rest = asyncio.Event()
        self._status = EvseStatus(
            evse_id=config.evse_id,
            state=session_state(self._cstate, plugged=False, latched=False),
            plugged=False,
        )
        self.trace: list[TickTrace] = []
        self.sent_frames = 0  # frame contents handed to the periodic tasks (started or changed)

    # --- EvseHardware ------------------------------------------------------------------------
    @property
    def evse_id(self) -> int:
        return self._config.evse_id

    @property
    def controller_state(self) -> ControllerState:
        return self._cstate

    @property
    def vehicle(self) -> VehicleView:
        return self._vehicle

    def set_setpoint(self, setpoint: EvseSetpoint) -> None:
        self._setpoint = setpoint

    def status(self) -> EvseStatus:
        return self._status

    def subscribe(self, listener: HardwareListener) -> None:
        self._listeners.append(listener)

    def allow_energy_transfer(self, allowed: bool) -> None:
        self._authorized = allowed

    def set_csms_connected(self, connected: bool) -> None:
        if self._csms_connected and not connected:
            self._csms_last_seen = self._clock()
        self._csms_connected = connected

    def set_departure(self, departure: datetime | None, target_soc_pct: float | None) -> None:
        if departure is not None and departure.tzinfo is None:
            raise ValueError("departure must be time-zone aware")
        if target_soc_pct is not None and not (
            math.isfinite(target_soc_pct) and 0 <= target_soc_pct <= 100
        ):
            raise ValueError(f"target_soc_pct must be within 0-100, got {target_soc_pct!r}")
        log.info("EVSE %s: departure %s with %s %%", self.evse_id, departure, target_soc_pct)
        self._departure = departure
        self._departure_target_pct = target_soc_pct

    @property
    def departure(self) -> tuple[datetime | None, float | None]:
        """The departure and target SoC last given by `set_departure`."""
        return self._departure, self._departure_target_pct

    def reset_faults(self) -> tuple[str, ...]:
        cleared = tuple(sorted(self._sstate.latched_faults))
        self._sstate = reset_faults(self._sstate)
        self._senders = SenderState()  # a reset starts the second-sender count afresh
        if cleared:  # the snapshot shows it at once, not only after the next tick
            self._status = replace(
                self._status,
                latched_faults=(),
                state=session_state(self._cstate, self._status.plugged, latched=False),
            )
        for name in cleared:
            log.info("EVSE %s: fault %s reset", self.evse_id, name)
            self._emit(HardwareEventKind.FAULT_CLEARED, name)
        return cleared

    # --- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Open the CAN bus (unless one was given), start receiving and the control loop."""
        if self._task is not None:
            return
        if self._bus is None:
            self._bus = can.Bus(
                interface=self._config.can_interface,
                channel=self._config.can_channel,
                bitrate=self._config.can_bitrate,
            )
        loop = asyncio.get_running_loop()
        self._notifier = can.Notifier(self._bus, [self._on_message], timeout=0.05, loop=loop)
        self._task = asyncio.create_task(self._run(), name=f"chademo-evse-{self.evse_id}")

    async def stop(self, graceful_s: float = 5.0) -> None:
        """End an ongoing session normally (up to `graceful_s`), then release everything.

        A session in progress gets the charger-side normal stop (current to 0, EV contactor
        report, d2 off, 500 ms, d1 off, unlock) before the loop ends; whatever is left after
        `graceful_s` is switched off in the safe order: current first, then d2, then d1.
        """
        if self._task is not None and self._cstate.state not in _AT_REST:
            self._authorized = False
            self._at_rest.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._at_rest.wait(), graceful_s)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._silence()
        # Current first, then the sequence signals (protects the EV contactor).
        self._ports.power_stage.command(0.0, 0.0)
        self._ports.d2.set_on(False)
        self._ports.d1.set_on(False)
        if self._notifier is not None:
            self._notifier.stop(timeout=0.2)
            self._notifier = None
        if self._owns_bus and self._bus is not None:
            self._bus.shutdown()
            self._bus = None

    async def _run(self) -> None:
        period = self._config.tick_s
        next_at = self._clock()
        while True:
            if self._last_tick_at is not None and next_at - self._last_tick_at < period / 2:
                # An immediate tick (a stop request) just ran and updated the frames: keep a
                # 100 ms spacing from it instead of ticking twice in a row.
                next_at = self._last_tick_at + period
            else:
                self._safe_tick()
                next_at += period
            delay = next_at - self._clock()
            if delay < -period:  # far behind (suspended process): resynchronise
                next_at = self._clock()
                delay = 0.0
            await asyncio.sleep(max(0.0, delay))

    def _safe_tick(self, *, urgent: bool = False) -> None:
        try:
            self.tick(urgent=urgent)
        except Exception:  # never let one bad tick kill the charger loop silently
            log.exception("EVSE %s: control tick failed; commanding 0 A", self.evse_id)
            self._ports.power_stage.command(0.0, 0.0)
            self._silence()  # no stale frames from a tick that did not finish

    def _silence(self) -> None:
        """Stop the cyclic frames (the charger stops talking on the bus)."""
        if self._cyclic is not None:
            self._cyclic.stop()

    # --- receiving ---------------------------------------------------------------------------
    def _on_message(self, msg: can.Message) -> None:
        if msg.is_extended_id or msg.is_error_frame:
            return
        try:
            frame = decode(msg.arbitration_id, bytes(msg.data))
        except FrameDecodeError as exc:
            log.warning("EVSE %s: bad frame %#05x: %s", self.evse_id, msg.arbitration_id, exc)
            return
        if frame is None:
            return
        had_conflict = self._senders.conflict
        self._senders = observe_frame(
            self._sender_config, self._senders, self._clock(), msg.arbitration_id, bytes(msg.data)
        )
        if self._senders.conflict and not had_conflict and self._cstate.state in ACTIVE_STATES:
            self._safe_tick(urgent=True)  # the supervisor latches it now, not at the next cycle
            return
        previous = self._vehicle.status
        self._vehicle = self._vehicle.with_frame(frame, self._clock())
        if isinstance(frame, VehicleStatus) and self._asks_to_stop(previous, frame):
            self._safe_tick(urgent=True)  # react now, not at the next cycle

    def _asks_to_stop(self, previous: VehicleStatus | None, status: VehicleStatus) -> bool:
        if self._cstate.state not in ACTIVE_STATES:
            return False
        enabled_dropped = (
            previous is not None and previous.charging_enabled and not (status.charging_enabled)
        )
        return bool(status.faults()) or enabled_dropped

    # --- the control tick --------------------------------------------------------------------
    def tick(self, *, urgent: bool = False) -> None:
        """One control cycle (public so tests can drive it with a fake clock).

        I/O only: read the ports, run the pure `charger_step`, apply its command. `urgent`
        (a tick run at once on a vehicle frame) sends changed frames now, not at their period.
        """
        now = self._clock()
        self._last_tick_at = now
        ports = self._ports
        plugged = ports.plug.is_plugged()
        voltage = ports.power_stage.measured_voltage_v()
        current = ports.power_stage.measured_current_a()
        grid_present = ports.grid.voltage_present()
        frequency = ports.grid.frequency_hz()
        self._grid_voltage_pct = ac_voltage_pct(
            ports.grid.voltage_v(), self._config.nominal_ac_voltage_v
        )
        if self._csms_connected:
            self._csms_last_seen = now
        self._track_grid(grid_present)

        cstate = self._cstate
        out = charger_step(
            self._rules_config,
            cstate,
            self._sstate,
            ChargerStepInputs(
                now=now,
                plugged=plugged,
                terminal_voltage_v=voltage,
                measured_current_a=current,
                grid_present=grid_present,
                emergency_stop=ports.emergency_stop.is_pressed(),
                insulation=ports.insulation.test_result(),
                insulation_fault_present=ports.insulation.fault_present(),
                connector_locked=ports.lock.is_locked(),
                authorized=self._authorized,
                setpoint_limit=self._setpoint.limit,
                setpoint_unit=self._setpoint.unit,
                vehicle=self._vehicle,
                conflicting_sender=self._senders.conflict,
                islanded=self._islanded,
                csms_connected=self._csms_connected,
                csms_last_seen=self._csms_last_seen,
                departure=self._departure,
                departure_target_pct=self._departure_target_pct,
                wall_now=self._wall_clock() if self._departure is not None else None,
                envelope=self._setpoint.envelope,
                der_max_discharge_w=self._setpoint.der_max_discharge_w,
            ),
        )
        decision, new_state, command = out.decision, out.state, out.command
        self._sstate = decision.state
        for fault in decision.new_faults:
            log.warning("EVSE %s: safety trip %s (state %s)", self.evse_id, fault, cstate.state)
            self._emit(HardwareEventKind.FAULT, fault)
        if new_state.state is not cstate.state:
            log.info(
                "EVSE %s: %s -> %s %s",
                self.evse_id,
                cstate.state,
                new_state.state,
                new_state.stop_reason if new_state.state is ChargerState.STOPPING else "",
            )
        if out.forget_vehicle:
            self._vehicle = VehicleView()  # forget the last car's frames
            self._senders = SenderState()
        self._cstate = new_state
        if new_state.state in _AT_REST:
            self._at_rest.set()

        # Hardware: current first, then the sequence signals and the lock.
        ports.power_stage.command(command.output_current_a, command.voltage_limit_v)
        ports.d2.set_on(command.d2)
        ports.d1.set_on(command.d1)
        ports.lock.set_locked(command.lock)
        if command.insulation_test and not self._insulation_started:
            ports.insulation.start_test()
        self._insulation_started = command.insulation_test

        if self._bus is not None:
            if self._cyclic is None:
                self._cyclic = CyclicFrames(self._bus, self._config.tick_s, f"EVSE {self.evse_id}")
            # No frames (CAN silent) stops every task.
            self.sent_frames += self._cyclic.update(
                [encode(frame) for frame in command.frames],
                at_once=urgent or self._stopping_now(cstate, new_state, command.output_current_a),
            )
        self._last_measured_a = current

        for event in command.events:
            if event.kind is HardwareEventKind.FAULT:
                if event.detail.startswith(_SUPERVISOR_REPORTED):
                    continue  # the supervisor reported these causes when it latched them
                log.warning("EVSE %s: error stop: %s", self.evse_id, event.detail)
            self._emit(event.kind, event.detail)

        self._integrate(now, voltage, current)
        self._record(now, new_state, command.output_current_a, current)
        self._status = self._snapshot(
            new_state, plugged, voltage, current, grid_present, frequency, decision.limited_by
        )

    # --- helpers -----------------------------------------------------------------------------
    def _stopping_now(
        self, before: ControllerState, after: ControllerState, output_a: float
    ) -> bool:
        """A stop began this tick, or the current is being brought down to 0: the frames that
        report it go to the bus at once, not at the periodic tasks' next period."""
        if after.state is ChargerState.STOPPING and before.state is not ChargerState.STOPPING:
            return True
        return output_a == 0.0 and (
            before.last_output_a != 0.0 or abs(self._last_measured_a) > STOP_CURRENT_A
        )

    def _track_grid(self, present: bool) -> None:
        if self._grid_present is not None and present != self._grid_present:
            kind = HardwareEventKind.GRID_RESTORED if present else HardwareEventKind.GRID_LOST
            log.warning("EVSE %s: %s", self.evse_id, kind.value)
            self._emit(kind, "grid_loss" if not present else "")
        self._grid_present = present
        islanded = self._safety_config.islanded_backup_enabled and not present
        if islanded != self._islanded:
            self._islanded = islanded
            self._emit(HardwareEventKind.BACKUP_MODE, "started" if islanded else "ended")

    def _integrate(self, now: float, voltage: float, current: float) -> None:
        reg = self._registers
        if reg.last_at is not None:
            dt = max(0.0, now - reg.last_at) * self._config.energy_time_scale
            energy_wh = voltage * current * dt / 3600.0
            if energy_wh > 0:
                reg.import_wh += energy_wh
            elif energy_wh < 0:
                reg.export_wh -= energy_wh
        reg.last_at = now

    def _record(
        self, now: float, state: ControllerState, commanded: float, measured: float
    ) -> None:
        self.trace.append(TickTrace(now, state.state, commanded, measured, state.limited_by))
        if len(self.trace) > 20_000:
            del self.trace[:10_000]

    def _snapshot(
        self,
        state: ControllerState,
        plugged: bool,
        voltage: float,
        current: float,
        grid_present: bool,
        frequency: float | None,
        safety_limited_by: str,
    ) -> EvseStatus:
        view = self._vehicle
        latched = self._sstate.latched_faults
        limits = VehicleLimits(
            max_charge_current_a=view.charge_request_a if view.status else None,
            max_discharge_current_a=view.max_discharge_current_a if view.discharge_limits else None,
            min_voltage_v=(
                float(view.charge_limits.minimum_battery_voltage_v) if view.charge_limits else None
            ),
            max_voltage_v=view.max_voltage_v,
            min_discharge_voltage_v=view.min_discharge_voltage_v,
            discharge_compatible=view.discharge_compatible,
            min_soc_for_discharge_pct=discharge_soc_limit_pct(view, "min"),
            max_soc_for_charge_pct=discharge_soc_limit_pct(view, "max"),
            battery_capacity_kwh=(
                view.charge_time.total_battery_capacity_wh / 1000.0
                if view.charge_time and view.charge_time.total_battery_capacity_wh
                else None
            ),
        )
        limited_by = state.limited_by
        if limited_by == "safety":
            limited_by = f"safety:{safety_limited_by}"
        return EvseStatus(
            evse_id=self.evse_id,
            state=session_state(state, plugged, bool(latched)),
            plugged=plugged,
            voltage_v=voltage,
            current_a=current,
            power_w=voltage * current,
            soc_pct=view.soc_pct,
            energy_import_wh=self._registers.import_wh,
            energy_export_wh=self._registers.export_wh,
            vehicle=limits,
            grid_present=grid_present,
            grid_frequency_hz=frequency,
            grid_voltage_pct=self._grid_voltage_pct,
            latched_faults=tuple(sorted(latched)),
            commanded_current_a=state.last_output_a,
            limited_by=limited_by,
        )

    def _emit(self, kind: HardwareEventKind, detail: str = "") -> None:
        event = HardwareEvent(evse_id=self.evse_id, kind=kind, at=self._wall_clock(), detail=detail)
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # a listener must not break the control loop
                log.exception("EVSE %s: hardware listener failed on %s", self.evse_id, kind)


__all__ = ["ChademoEvse", "ChademoEvseConfig", "TickTrace"]
