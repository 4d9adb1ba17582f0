"""A simulated CHAdeMO vehicle (Nissan Leaf-like) on a python-can bus.

It talks CHAdeMO like the Leaf in the real log (`tests/data/chademo/`, docs/chademo.md): it
wakes when the charger switches d1 on, sends 0x100/0x101/0x102/0x200/0x201 every 100 ms, sets
charge permission, closes its contactor after d2, ramps its current request about 2 A per
100 ms towards what the charger offers (0x108 byte 3), ramps its 0x200 discharge limit the same
way, drops its request when the charger switches to discharge, and after a stop waits for the
current to fall below 5 A, runs its weld check and opens its contactor.

Physics: the battery (capacity, SoC, OCV curve, internal resistance) is connected to the
charger's simulated power stage through the shared `SimConnector.link` (see sim_ports.py):
the battery integrates the current the power stage really drives. `time_scale` multiplies the
energy integrated per real second, so a session can cover hours of SoC in seconds.

Fault injection: each 0x102 fault flag, a stop request (charge-enable falling edge or the
normal-stop flag), going silent, a voltage deviation (the car's own voltage sensor disagrees
with the charger's report, so the car raises its voltage-deviation flag), shift out of park.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import can

from chargepoint_firmware.chademo.frames import (
    ChargerCapabilities,
    ChargerStatus,
    FrameDecodeError,
    VehicleChargeLimits,
    VehicleChargeTime,
    VehicleDischargeEstimate,
    VehicleDischargeLimits,
    VehicleStatus,
    decode,
    encode,
)
from chargepoint_firmware.hardware.sim_ports import SimConnector

log = logging.getLogger(__name__)

# A Leaf-like open-circuit voltage curve (SoC %, V): about 360-400 V over the useful range.
LEAF_OCV_CURVE: tuple[tuple[float, float], ...] = (
    (0.0, 330.0),
    (10.0, 355.0),
    (20.0, 361.0),
    (50.0, 368.0),
    (73.0, 374.0),
    (90.0, 390.0),
    (100.0, 400.0),
)

FAULT_FLAGS = (
    "fault_battery_overvoltage",
    "fault_battery_undervoltage",
    "fault_battery_current_deviation",
    "fault_high_battery_temperature",
    "fault_battery_voltage_deviation",
    "fault_vehicle_charging_system",
)


@dataclass
class Battery:
    capacity_kwh: float = 24.0
    soc_pct: float = 73.0
    internal_resistance_ohm: float = 0.08
    ocv_curve: tuple[tuple[float, float], ...] = LEAF_OCV_CURVE

    def ocv_v(self) -> float:
        socs = [point[0] for point in self.ocv_curve]
        soc = min(max(self.soc_pct, socs[0]), socs[-1])
        index = max(1, bisect.bisect_left(socs, soc))
        (s0, v0), (s1, v1) = self.ocv_curve[index - 1], self.ocv_curve[index]
        return v0 + (v1 - v0) * (soc - s0) / (s1 - s0)

    def apply(self, current_a: float, dt_s: float) -> float:
        """Integrate `current_a` (+ into the battery) for `dt_s`; returns the energy in Wh at
        the terminals. Only the OCV part is stored or drawn: the I^2 R part is heat, lost both
        when charging and when discharging."""
        ocv = self.ocv_v()
        terminal_wh = (ocv + current_a * self.internal_resistance_ohm) * current_a * dt_s / 3600.0
        stored_wh = ocv * current_a * dt_s / 3600.0
        self.soc_pct += stored_wh / (self.capacity_kwh * 1000.0) * 100.0
        self.soc_pct = min(100.0, max(0.0, self.soc_pct))
        return terminal_wh


@dataclass
class SimVehicleConfig:
    target_voltage_v: int = 410
    max_voltage_v: int = 435
    min_voltage_v: int = 0
    max_charge_request_a: int = 125
    max_discharge_current_a: int = 15
    min_discharge_voltage_v: int = 250
    min_soc_for_discharge_pct: int = 20
    max_soc_for_charge_pct: int = 95
    discharge_compatible: bool = True
    protocol_number: int = 2
    ramp_a_per_cycle: float = 2.0
    cycle_s: float = 0.1
    wake_delay_s: float = 0.1  # d1 on -> first frame
    permission_delay_s: float = 0.5  # charger frames seen -> 0x102 b5.0
    contactor_delay_s: float = 0.3  # d2 on and connector locked -> contactor closed
    request_delay_s: float = 0.3  # contactor closed -> first current request
    weld_check_s: float = 0.3  # current below 5 A after a stop -> contactor open
    deviation_detect_s: float = 0.2  # own voltage reading off by > 10 V this long -> flag
    time_scale: float = 1.0


@dataclass
class _VehicleRuntime:
    awake_at: float | None = None
    enabled: bool = False
    contactor_closed: bool = False
    stopping: bool = False
    stop_since: float | None = None
    low_current_since: float | None = None
    charger_seen_at: float | None = None
    d2_locked_since: float | None = None
    closed_at: float | None = None
    request_a: float = 0.0
    discharge_limit_a: float = 0.0
    charger_available_a: float = 0.0
    charger_output_v: float = 0.0
    charger_was_delivering: bool = False
    charger_protocol: int = 0
    deviation_since: float | None = None
    flags: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(FAULT_FLAGS, False))


class SimVehicle:
    """A CHAdeMO EV on `bus`, plugged through `connector`."""

    def __init__(
        self,
        bus: can.BusABC,
        connector: SimConnector,
        battery: Battery | None = None,
        config: SimVehicleConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bus = bus
        self.connector = connector
        self.battery = battery or Battery()
        self.config = config or SimVehicleConfig()
        self.clock = clock
        self.silent = False
        self.shift_not_park = False
        self.normal_stop_flag = False
        self.voltage_sensor_offset_v = 0.0
        self.energy_in_wh = 0.0
        self.energy_out_wh = 0.0
        self.sent_status: list[tuple[float, VehicleStatus]] = []  # for tests
        self._rt = _VehicleRuntime()
        self._last_physics: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._notifier: can.Notifier | None = None
        self._update_link()

    # --- test controls ----------------------------------------------------------------------
    def plug_in(self) -> None:
        self.connector.plugged = True

    def unplug(self) -> None:
        self.connector.plugged = False

    def inject_fault(self, flag: str) -> None:
        """Raise one 0x102 byte-4 fault flag or `fault_vehicle_charging_system`."""
        if flag not in FAULT_FLAGS:
            raise ValueError(f"unknown fault flag {flag!r}; one of {FAULT_FLAGS}")
        self._rt.flags[flag] = True

    def request_stop(self) -> None:
        """The driver ends the session: 0x102 b5.0 falls 1 -> 0."""
        self._rt.enabled = False
        self._begin_stop()

    def set_normal_stop_flag(self) -> None:
        """Raise 0x102 b5.4 (normal stop request)."""
        self.normal_stop_flag = True
        self._begin_stop()

    def go_silent(self) -> None:
        self.silent = True

    def shift_out_of_park(self) -> None:
        self.shift_not_park = True

    def inject_voltage_deviation(self, offset_v: float = 30.0) -> None:
        """The car's own voltage sensor reads `offset_v` away from the charger's report."""
        self.voltage_sensor_offset_v = offset_v

    # --- state -------------------------------------------------------------------------------
    @property
    def contactor_closed(self) -> bool:
        return self._rt.contactor_closed

    @property
    def charging_enabled(self) -> bool:
        return self._rt.enabled

    @property
    def request_a(self) -> float:
        return self._rt.request_a

    def _begin_stop(self) -> None:
        if not self._rt.stopping:
            self._rt.stopping = True
            self._rt.stop_since = self.clock()
        self._rt.request_a = 0.0

    def _any_fault(self) -> bool:
        return any(self._rt.flags.values()) or self.shift_not_park

    def _update_link(self) -> None:
        link = self.connector.link
        link.battery_ocv_v = self.battery.ocv_v()
        link.battery_resistance_ohm = self.battery.internal_resistance_ohm
        link.ev_contactor_closed = self._rt.contactor_closed
        link.update()

    # --- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._notifier = can.Notifier(self.bus, [self._on_message], timeout=0.05, loop=loop)
        self._task = asyncio.create_task(self._run(), name="sim-vehicle")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._notifier is not None:
            self._notifier.stop(timeout=0.2)
            self._notifier = None

    def _on_message(self, msg: can.Message) -> None:
        try:
            frame = decode(msg.arbitration_id, bytes(msg.data))
        except FrameDecodeError:
            return
        rt = self._rt
        if rt.awake_at is None:
            return  # asleep (d1 off): the car does not listen
        if isinstance(frame, ChargerCapabilities):
            rt.charger_available_a = float(frame.available_output_current_a)
            if rt.charger_seen_at is None:
                rt.charger_seen_at = self.clock()
            if frame.available_output_current_a < rt.request_a:
                rt.request_a = float(frame.available_output_current_a)  # drop at once
        elif isinstance(frame, ChargerStatus):
            rt.charger_output_v = float(frame.output_voltage_v)
            rt.charger_protocol = frame.protocol_number
            if rt.charger_seen_at is None:
                rt.charger_seen_at = self.clock()
            running = frame.charger_delivering and not frame.stop_control
            if rt.charger_was_delivering and not running:
                self._begin_stop()  # the charger stops: follow it
            if frame.faults():
                self._begin_stop()
            rt.charger_was_delivering = running or (
                rt.charger_was_delivering and frame.charger_delivering
            )

    async def _run(self) -> None:
        next_at = self.clock()
        while True:
            next_at += self.config.cycle_s
            try:
                self.tick()
            except Exception:  # keep the simulated car alive; the test sees the log
                log.exception("simulated vehicle tick failed")
            await asyncio.sleep(max(0.0, next_at - self.clock()))

    def tick(self) -> None:
        """One 100 ms vehicle cycle: physics, sequence, frames."""
        now = self.clock()
        cfg, rt = self.config, self._rt
        dt = 0.0 if self._last_physics is None else now - self._last_physics
        self._last_physics = now
        current = self.connector.link.current_a()
        if rt.contactor_closed and dt > 0:
            energy = self.battery.apply(current, dt * cfg.time_scale)
            if energy >= 0:
                self.energy_in_wh += energy
            else:
                self.energy_out_wh -= energy
        if not (self.connector.plugged and self.connector.d1_on):
            if rt.awake_at is not None:
                self._rt = _VehicleRuntime()  # asleep again: a fresh sequence next time
                self.normal_stop_flag = False
            self._update_link()
            return
        awake_at = rt.awake_at
        if awake_at is None:  # d1 just came on: a fresh sequence
            awake_at = now
            self._rt = _VehicleRuntime(awake_at=now)
            self.normal_stop_flag = False
        self._sequence(now, current)
        self._update_link()
        if not self.silent and now - awake_at >= cfg.wake_delay_s:
            self._send_frames()

    def _sequence(self, now: float, current: float) -> None:
        cfg, rt = self.config, self._rt
        if self._any_fault() or self.normal_stop_flag:
            self._begin_stop()
        # Voltage deviation: our own sensor vs the charger's 0x109 report.
        if rt.contactor_closed and rt.charger_output_v > 0:
            own = self.battery.ocv_v() + self.voltage_sensor_offset_v
            if abs(own - rt.charger_output_v) > 10.0:
                rt.deviation_since = rt.deviation_since or now
                if now - rt.deviation_since >= cfg.deviation_detect_s:
                    rt.flags["fault_battery_voltage_deviation"] = True
            else:
                rt.deviation_since = None
        if rt.stopping:
            rt.enabled = False
            rt.request_a = 0.0
            rt.discharge_limit_a = 0.0
            if rt.contactor_closed and abs(current) <= 5.0:
                # Never open under load: the weld check starts once the current is low.
                rt.low_current_since = rt.low_current_since or now
                if now - rt.low_current_since >= cfg.weld_check_s:
                    rt.contactor_closed = False  # weld check done: open
            else:
                rt.low_current_since = None
            return
        compatible = rt.charger_seen_at is not None
        if (
            not rt.enabled
            and compatible
            and rt.charger_seen_at is not None
            and now - rt.charger_seen_at >= cfg.permission_delay_s
        ):
            rt.enabled = True
        locked_and_d2 = self.connector.d2_on and self.connector.locked
        if rt.enabled and locked_and_d2 and not rt.contactor_closed:
            rt.d2_locked_since = rt.d2_locked_since or now
            if now - rt.d2_locked_since >= cfg.contactor_delay_s:
                rt.contactor_closed = True
                rt.closed_at = now
        if rt.contactor_closed and rt.closed_at is not None:
            if now - rt.closed_at >= cfg.request_delay_s:
                soc = self.battery.soc_pct
                want = float(cfg.max_charge_request_a)
                if cfg.max_soc_for_charge_pct and soc >= cfg.max_soc_for_charge_pct:
                    want = 0.0
                target = min(want, rt.charger_available_a)
                rt.request_a = min(target, rt.request_a + cfg.ramp_a_per_cycle)
            discharge_ok = cfg.discharge_compatible and (
                soc_above(self.battery.soc_pct, cfg.min_soc_for_discharge_pct)
            )
            goal = float(cfg.max_discharge_current_a) if discharge_ok else 0.0
            rt.discharge_limit_a = min(goal, rt.discharge_limit_a + cfg.ramp_a_per_cycle)

    def _status(self) -> VehicleStatus:
        rt, cfg = self._rt, self.config
        reference = 100 if rt.charger_protocol >= 2 else 240
        soc_raw = round(self.battery.soc_pct * reference / 100.0)
        return VehicleStatus(
            protocol_number=cfg.protocol_number,
            target_battery_voltage_v=cfg.target_voltage_v,
            charging_current_request_a=max(0, min(255, int(rt.request_a))),
            fault_battery_overvoltage=rt.flags["fault_battery_overvoltage"],
            fault_battery_undervoltage=rt.flags["fault_battery_undervoltage"],
            fault_battery_current_deviation=rt.flags["fault_battery_current_deviation"],
            fault_high_battery_temperature=rt.flags["fault_high_battery_temperature"],
            fault_battery_voltage_deviation=rt.flags["fault_battery_voltage_deviation"],
            charging_enabled=rt.enabled,
            shift_not_park=self.shift_not_park,
            fault_vehicle_charging_system=rt.flags["fault_vehicle_charging_system"],
            ev_contactor_open=not rt.contactor_closed,
            normal_stop_request=self.normal_stop_flag,
            discharge_compatible=cfg.discharge_compatible,
            state_of_charge=max(0, min(255, soc_raw)),
            other_status_bits=0x40,  # the Leaf sets byte 5 bit 6
        )

    def _send_frames(self) -> None:
        rt, cfg = self._rt, self.config
        reference = 100 if rt.charger_protocol >= 2 else 240
        status = self._status()
        self.sent_status.append((self.clock(), status))
        if len(self.sent_status) > 10_000:
            del self.sent_status[:5_000]
        frames = (
            VehicleChargeLimits(
                minimum_charge_current_a=0,
                minimum_battery_voltage_v=cfg.min_voltage_v,
                maximum_battery_voltage_v=cfg.max_voltage_v,
                charged_rate_reference=reference,
            ),
            VehicleChargeTime(
                max_charging_time_s=3600,
                estimated_charging_time_min=60,
                total_battery_capacity_wh=int(self.battery.capacity_kwh * 10) * 100,
            ),
            status,
            VehicleDischargeLimits(
                max_discharge_current_a=max(0, min(255, int(rt.discharge_limit_a))),
                min_discharge_voltage_v=cfg.min_discharge_voltage_v,
                min_soc_for_discharge_pct=cfg.min_soc_for_discharge_pct,
                max_soc_for_charge_pct=cfg.max_soc_for_charge_pct,
            ),
            VehicleDischargeEstimate(
                sequence_control_number=2,
                approx_discharge_completion_time_min=0,
                available_vehicle_energy_wh=self._available_energy_wh(),
            ),
        )
        for frame in frames:
            can_id, data = encode(frame)
            try:
                self.bus.send(can.Message(arbitration_id=can_id, data=data, is_extended_id=False))
            except can.CanError:
                log.warning("simulated vehicle could not send %#05x", can_id)

    def _available_energy_wh(self) -> int:
        floor = self.config.min_soc_for_discharge_pct
        usable = max(0.0, self.battery.soc_pct - floor) / 100.0 * self.battery.capacity_kwh
        return min(0xFFFF, int(usable * 10)) * 100


def soc_above(soc_pct: float, floor_pct: int) -> bool:
    return floor_pct <= 0 or soc_pct > floor_pct
