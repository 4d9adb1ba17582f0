"""Replay a real CHAdeMO CAN log through our charger state machine and say where ours differs.

The logged vehicle's frames (0x100/0x101/0x102/0x200/0x201) drive `controller.step` with the
log's own timestamps (our clock = log time, one tick every 100 ms). The logged charger's frames
stand in for our power stage and sensors:

- d1: the real charger's first frame (a charger only talks once d1 is on); without charger
  frames, the first vehicle frame;
- lock feedback: the real 0x109 b5.2 ("connector locked or energising"; a charger locks before it
  energises, so the bit set means locked). If it first rises with the output already energised
  (>= 10 V, e.g. a ZE1 charger at 484 V), the real lock time is not on the bus: our lock is then
  taken as confirmed one tick after ours commands it;
- terminal voltage / current: the real 0x109 bytes 1-3, but only once ours has energised (its
  insulation test on): before that our terminals are dead, whatever the real charger did;
- insulation test: passed once the real test voltage (> 100 V) has come back below 20 V, failed
  if the real charger raises a malfunction flag meanwhile;
- offered current: ours is allowed what the real charger advertised in 0x108 byte 3.

At each tick it compares what ours would do (stop and why, output current) with what the real
charger did, and reports each difference with its time and reason. Pure: no clock, no I/O
(`read_gvret_csv` parses lines it is given).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from chargepoint_firmware.chademo import controller as c
from chargepoint_firmware.chademo.frames import (
    ChargerCapabilities,
    ChargerStatus,
    Frame,
    FrameDecodeError,
    VehicleStatus,
    decode,
)
from chargepoint_firmware.chademo.vehicle_view import VehicleView

VEHICLE_IDS: Final = frozenset({0x100, 0x101, 0x102, 0x200, 0x201})
CHARGER_IDS: Final = frozenset({0x108, 0x109, 0x208, 0x209})
TICK_S: Final = c.CYCLE_S
MAX_REPLAY_S: Final = 6 * 3600.0  # bound: a log longer than a long charge is cut here
MAX_DIFFERENCES: Final = 200  # bound on the report, whatever the log holds
STOP_AGREEMENT_S: Final = 1.0  # ours and the real charger stopping this close apart agree
INSULATION_PEAK_V: Final = 100.0  # the real insulation test voltage has clearly risen
# Ours may lead the real charger's measured current by a ramp's worth (cars ramp ~2 A per
# cycle, commercial chargers track within a cycle); more than this for longer than
# CURRENT_EXCESS_S is reported.
CURRENT_TOLERANCE_A: Final = 3.0
CURRENT_EXCESS_S: Final = 1.0
_CHARGER_ERROR_FLAGS: Final = (
    "charger_malfunction",
    "battery_incompatible",
    "charging_system_malfunction",
)


@dataclass(frozen=True, slots=True)
class LoggedFrame:
    at: float  # seconds (log time)
    frame: Frame


@dataclass(frozen=True, slots=True)
class ReadResult:
    frames: tuple[LoggedFrame, ...]
    skipped: int  # lines that were not CHAdeMO frames (other ids, extended, malformed)


def read_gvret_csv(lines: Iterable[str]) -> ReadResult:
    """CHAdeMO frames of a GVRET/SavvyCAN CSV (`Time Stamp,ID,Extended,Dir,Bus,LEN,D1..D8`).

    Timestamps are microseconds; extended (29-bit) frames are never CHAdeMO and are skipped,
    as are other ids and malformed lines (counted, not fatal).
    """
    frames: list[LoggedFrame] = []
    skipped = 0
    for line in lines:
        cells = [cell.strip() for cell in line.strip().split(",")]
        if len(cells) < 6 or not cells[0] or cells[0].lower().startswith("time"):
            continue
        try:
            at = int(cells[0]) / 1e6
            can_id = int(cells[1], 16)
            extended = cells[2].lower() == "true"
            length = int(cells[5])
            if extended or can_id not in VEHICLE_IDS | CHARGER_IDS or not 0 <= length <= 8:
                skipped += 1
                continue
            data = bytes(int(value, 16) for value in cells[6 : 6 + length])
            frame = decode(can_id, data)
        except (ValueError, IndexError, FrameDecodeError):
            skipped += 1
            continue
        if frame is None or not math.isfinite(at):
            skipped += 1
            continue
        frames.append(LoggedFrame(at, frame))
    frames.sort(key=lambda item: item.at)
    return ReadResult(tuple(frames), skipped)


@dataclass(frozen=True, slots=True)
class Difference:
    at: float
    kind: str  # "stop_early", "stop_missed", "current_above_real", "stop_reason"
    text: str

    def __str__(self) -> str:
        return f"t={self.at:.1f} s: {self.text}"


@dataclass(frozen=True, slots=True)
class RealMilestones:
    """What the real charger and vehicle did, as seen on the bus (None = never)."""

    first_vehicle_frame: float | None = None
    first_charger_frame: float | None = None
    vehicle_permission: float | None = None  # 0x102 b5.0 first set
    lock_flag: float | None = None  # 0x109 b5.2 first set
    lock_flag_voltage_v: float = 0.0  # real output voltage when b5.2 rose
    ev_current_request: float | None = None  # 0x102 byte 3 first > 0
    delivering: float | None = None  # 0x109 b5.0 first set
    stop: float | None = None  # charger error flag, or b5.5 set again after delivering
    stop_flags: tuple[str, ...] = ()
    max_current_a: int = 0  # highest 0x109 byte 3


@dataclass(frozen=True, slots=True)
class ReplayReport:
    name: str
    start: float
    end: float
    real: RealMilestones
    ours: tuple[tuple[float, str], ...]  # state transitions
    our_stop: tuple[float, str, bool] | None  # (time, reason, error stop)
    our_max_current_a: float
    differences: tuple[Difference, ...]
    skipped_lines: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)

    def render(self) -> str:
        r = self.real

        def at(value: float | None) -> str:
            return "never" if value is None else f"{value:.1f} s"

        lines = [
            f"## {self.name} ({self.start:.1f}-{self.end:.1f} s)",
            f"real: charger first frame {at(r.first_charger_frame)}, EV permission "
            f"{at(r.vehicle_permission)}, 0x109 b5.2 {at(r.lock_flag)} "
            f"({r.lock_flag_voltage_v:.0f} V), EV current request {at(r.ev_current_request)}, "
            f"delivering {at(r.delivering)}, max {r.max_current_a} A, stop {at(r.stop)}"
            + (f" ({', '.join(r.stop_flags)})" if r.stop_flags else ""),
        ]
        if self.our_stop is not None:
            time_s, reason, error = self.our_stop
            kind = "error stop" if error else "stop"
            lines.append(
                f"ours: {kind} at {time_s:.1f} s ({reason}), max {self.our_max_current_a:.0f} A"
            )
        else:
            lines.append(f"ours: no stop, max {self.our_max_current_a:.0f} A")
        lines.extend(f"- {note}" for note in self.notes)
        if self.differences:
            lines.extend(f"- DIFFERENCE {d}" for d in self.differences)
        else:
            lines.append("- no difference")
        return "\n".join(lines)


def _milestones(frames: Sequence[LoggedFrame]) -> RealMilestones:
    first_vehicle = first_charger = permission = lock = request = delivering = stop = None
    lock_voltage, max_current, voltage = 0.0, 0, 0.0
    stop_flags: tuple[str, ...] = ()
    for item in frames:
        f = item.frame
        if f.CAN_ID in VEHICLE_IDS and first_vehicle is None:
            first_vehicle = item.at
        if f.CAN_ID in CHARGER_IDS and first_charger is None:
            first_charger = item.at
        if isinstance(f, VehicleStatus):
            if f.charging_enabled and permission is None:
                permission = item.at
            if f.charging_current_request_a > 0 and request is None:
                request = item.at
        elif isinstance(f, ChargerStatus):
            voltage = float(f.output_voltage_v)
            max_current = max(max_current, f.output_current_a)
            if f.connector_locked and lock is None:
                lock, lock_voltage = item.at, voltage
            if f.charger_delivering and delivering is None:
                delivering = item.at
            if stop is None:
                flags = tuple(n for n in _CHARGER_ERROR_FLAGS if getattr(f, n))
                if flags:
                    stop, stop_flags = item.at, flags
                elif delivering is not None and f.stop_control:
                    stop, stop_flags = item.at, ("stop_control",)
    return RealMilestones(
        first_vehicle_frame=first_vehicle,
        first_charger_frame=first_charger,
        vehicle_permission=permission,
        lock_flag=lock,
        lock_flag_voltage_v=lock_voltage,
        ev_current_request=request,
        delivering=delivering,
        stop=stop,
        stop_flags=stop_flags,
        max_current_a=max_current,
    )


def _config(frames: Sequence[LoggedFrame]) -> c.ControllerConfig:
    """Our charger rated as the real one advertised itself (first 0x108 / 0x109)."""
    capabilities = next((i.frame for i in frames if isinstance(i.frame, ChargerCapabilities)), None)
    status = next((i.frame for i in frames if isinstance(i.frame, ChargerStatus)), None)
    if capabilities is None:
        return c.ControllerConfig()
    return c.ControllerConfig(
        max_voltage_v=float(capabilities.available_output_voltage_v),
        max_charge_current_a=float(capabilities.available_output_current_a),
        discharge_capable=bool(status and status.discharge_compatible),
        welding_detection=capabilities.welding_detection_supported,
    )


def replay(
    frames: Sequence[LoggedFrame],
    *,
    name: str = "log",
    config: c.ControllerConfig | None = None,
    skipped_lines: int = 0,
) -> ReplayReport:
    """Drive our state machine from `frames` and compare it with the real charger."""
    real = _milestones(frames)
    config = config or _config(frames)
    starts = [t for t in (real.first_charger_frame, real.first_vehicle_frame) if t is not None]
    if not starts:
        return ReplayReport(name, 0.0, 0.0, real, (), None, 0.0, (), skipped_lines)
    d1_at = real.first_charger_frame or min(starts)
    end = min(frames[-1].at, d1_at + MAX_REPLAY_S)

    state = c.ControllerState(state=c.ChargerState.PLUGGED, since=d1_at - TICK_S)
    view = VehicleView()
    index = 0
    real_status: ChargerStatus | None = None
    real_offered_a = config.max_charge_current_a
    insulation_peak = insulation_done = False
    insulation_failed = False
    our_stop: tuple[float, str, bool] | None = None
    our_max = 0.0
    excess_since: float | None = None
    excess_peak = (0.0, 0.0)
    differences: list[Difference] = []
    notes: list[str] = []
    # b5.2 first raised while energising: it says nothing about when the real lock closed.
    lock_hidden = real.lock_flag is not None and (
        real.lock_flag_voltage_v >= c.SAFE_TERMINAL_VOLTAGE_V
    )
    lock_commanded = False
    now = d1_at
    ticks = 0
    while now <= end:
        while index < len(frames) and frames[index].at <= now:
            item = frames[index]
            index += 1
            f = item.frame
            if f.CAN_ID in VEHICLE_IDS:
                view = view.with_frame(f, item.at)
            elif isinstance(f, ChargerCapabilities):
                real_offered_a = float(f.available_output_current_a)
            elif isinstance(f, ChargerStatus):
                real_status = f
                if f.output_voltage_v > INSULATION_PEAK_V and not f.charger_delivering:
                    insulation_peak = True
                elif insulation_peak and f.output_voltage_v < c.POST_INSULATION_VOLTAGE_V:
                    insulation_done = True
                if f.charger_malfunction and not insulation_done:
                    insulation_failed = True
        energised = state.state not in (
            c.ChargerState.PLUGGED,
            c.ChargerState.HANDSHAKE,
            c.ChargerState.WAIT_CHARGE_PERMISSION,
            c.ChargerState.LOCKING,
        )
        if insulation_failed:
            insulation = c.InsulationResult.FAILED
        elif insulation_done:
            insulation = c.InsulationResult.PASSED
        else:
            insulation = c.InsulationResult.RUNNING
        voltage = float(real_status.output_voltage_v) if real_status and energised else 0.0
        measured = float(real_status.output_current_a) if real_status and energised else 0.0
        # A normal stop of the real charger (b5.5 set again, no error flag) stands for the
        # operator or schedule ending the session: ours is deauthorised then.
        normal_real_stop = (
            real.stop is not None and now >= real.stop and real.stop_flags == ("stop_control",)
        )
        discharge = (
            real_status is not None
            and real_status.charger_delivering
            and real_offered_a == 0
            and view.discharge_compatible
        )
        inputs = c.ControllerInputs(
            now=now,
            plugged=True,
            authorized=not normal_real_stop,
            wanted_direction=c.Direction.DISCHARGE if discharge else c.Direction.CHARGE,
            allowed_current_a=-config.max_discharge_current_a if discharge else real_offered_a,
            vehicle=view,
            connector_locked=lock_commanded
            if lock_hidden
            else bool(real_status and real_status.connector_locked),
            insulation=insulation,
            terminal_voltage_v=voltage,
            measured_current_a=measured,
            offered_charge_current_a=real_offered_a,
        )
        state, command = c.step(config, state, inputs)
        lock_commanded = command.lock
        if our_stop is None and state.state is c.ChargerState.STOPPING:
            our_stop = (now, state.stop_reason, state.error_stop)
        out = command.output_current_a
        our_max = max(our_max, out)
        # Compare ours' commanded current with what the real charger delivered.
        real_a = float(real_status.output_current_a) if real_status else 0.0
        if out > real_a + CURRENT_TOLERANCE_A:
            excess_since = now if excess_since is None else excess_since
            if out - real_a > excess_peak[0] - excess_peak[1]:
                excess_peak = (out, real_a)
        elif excess_since is not None:
            _add_excess(differences, excess_since, now, excess_peak)
            excess_since, excess_peak = None, (0.0, 0.0)
        ticks += 1
        now = d1_at + ticks * TICK_S
    if excess_since is not None:
        _add_excess(differences, excess_since, now, excess_peak)

    differences.extend(_stop_differences(real, our_stop, end))
    if real.vehicle_permission is not None and real.vehicle_permission < d1_at:
        notes.append(
            f"the vehicle set 0x102 b5.0 at {real.vehicle_permission:.1f} s, "
            f"{d1_at - real.vehicle_permission:.1f} s before the charger's first frame: "
            "lock timing counts from d1/permission as seen by the charger, not from the log start"
        )
    if real.lock_flag is not None and real.lock_flag_voltage_v >= c.SAFE_TERMINAL_VOLTAGE_V:
        notes.append(
            f"0x109 b5.2 first rose at {real.lock_flag_voltage_v:.0f} V: it means locked OR "
            "energising, so it is not lock feedback here (ours' lock taken as confirmed)"
        )
    if real.ev_current_request is None:
        notes.append("the vehicle never requested current (0x102 byte 3 stayed 0)")
    differences.sort(key=lambda d: d.at)
    return ReplayReport(
        name=name,
        start=d1_at,
        end=end,
        real=real,
        ours=tuple((t, s.value) for t, s in state.history),
        our_stop=our_stop,
        our_max_current_a=our_max,
        differences=tuple(differences[:MAX_DIFFERENCES]),
        skipped_lines=skipped_lines,
        notes=tuple(notes),
    )


def _add_excess(
    differences: list[Difference], since: float, until: float, peak: tuple[float, float]
) -> None:
    if until - since <= CURRENT_EXCESS_S:
        return
    ours, real = peak
    differences.append(
        Difference(
            since,
            "current_above_real",
            f"ours would command up to {ours:.0f} A for {until - since:.1f} s "
            f"where the real charger delivered {real:.0f} A",
        )
    )


def _stop_differences(
    real: RealMilestones, ours: tuple[float, str, bool] | None, end: float
) -> list[Difference]:
    if ours is None and real.stop is None:
        return []
    real_text = (
        f"the real charger stopped at {real.stop:.1f} s ({', '.join(real.stop_flags)})"
        if real.stop is not None
        else f"the real charger carried on to the end of the log ({end:.1f} s)"
    )
    if ours is None:
        assert real.stop is not None
        return [Difference(real.stop, "stop_missed", f"ours would carry on — {real_text}")]
    at, reason, error = ours
    kind = "error stop" if error else "stop"
    if real.stop is None or at < real.stop - STOP_AGREEMENT_S:
        return [Difference(at, "stop_early", f"ours would {kind} ({reason}) — {real_text}")]
    if at > real.stop + STOP_AGREEMENT_S:
        return [
            Difference(
                real.stop,
                "stop_late",
                f"ours would {kind} ({reason}) only at {at:.1f} s — {real_text}",
            )
        ]
    return []
