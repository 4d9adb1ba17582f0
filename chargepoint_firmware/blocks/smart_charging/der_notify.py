"""What the agent tells a 2.1 CSMS about DER (R), decided here (pure but for the storage
handed in, where the controls in force at the last check are kept).

NotifyDERStartStop: when the control in force for a control type changes, the new one has
started (`supersededIds` = the one it replaced) or the old one has stopped with nothing after it.
The controls in force are compared with those of the last check, which the caller persists, so
a restart does not announce every running control again.

NotifyDERAlarm: the measured grid leaving the range a DER must ride through, per the AS/NZS
4777.2:2020 passive protection limits as commonly cited (V> 265 V, V< 180 V on 230 V nominal;
F> 52 Hz, F< 47 Hz for Australia A; values not checked against the standard itself), each
reported against the trip control type it belongs to; an alarm ends (`alarmEnded`) only once
the value is back inside the range by a hysteresis margin, so a noisy reading near a limit
does not flood the CSMS: each alarm is sent once per excursion.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ocpp.v21 import call as call_v21

from chargepoint_firmware.blocks.smart_charging.der import SUPPORTED, DerControls
from chargepoint_firmware.interfaces import EvseStatus
from v2g_shared.schedule import format_datetime

DER_IN_FORCE_KEY = "der_in_force"  # storage: control type -> id in force at the last check


@dataclass(frozen=True, slots=True)
class StartStop:
    control_id: str
    started: bool
    superseded_ids: tuple[str, ...] = ()


def start_stop_events(before: Mapping[str, str], after: Mapping[str, str]) -> list[StartStop]:
    """Per control type (key), the control id in force before and after: what to announce.
    Both maps are bounded by the installed controls (at most 24)."""
    events: list[StartStop] = []
    for control_type in sorted(set(before) | set(after)):
        old, new = before.get(control_type), after.get(control_type)
        if old == new:
            continue
        if new is not None:
            events.append(StartStop(new, True, (old,) if old is not None else ()))
        elif old is not None:
            events.append(StartStop(old, False))
    return events


@dataclass(frozen=True, slots=True)
class AlarmRule:
    fault: str  # GridEventFaultEnumType
    control_type: str  # DERControlEnumType of the trip setting it belongs to
    measure: str  # "voltage_pct" | "frequency_hz"
    above: bool  # the alarm is for values above `limit` (else below)
    limit: float
    hysteresis: float  # back inside by this much before the alarm ends


NOMINAL_V = 230.0
ALARM_RULES = (
    AlarmRule("OverVoltage", "HVMustTrip", "voltage_pct", True, 265.0 / NOMINAL_V * 100, 1.0),
    AlarmRule("UnderVoltage", "LVMustTrip", "voltage_pct", False, 180.0 / NOMINAL_V * 100, 1.0),
    AlarmRule("OverFrequency", "HFMustTrip", "frequency_hz", True, 52.0, 0.1),
    AlarmRule("UnderFrequency", "LFMustTrip", "frequency_hz", False, 47.0, 0.1),
)


@dataclass(frozen=True, slots=True)
class Alarm:
    control_type: str
    fault: str
    ended: bool
    value: float


class GridAlarms:
    """Alarm state per rule; `update` gives the alarms that start or end with these readings
    (None = not measured: no change)."""

    def __init__(self, rules: tuple[AlarmRule, ...] = ALARM_RULES) -> None:
        self.rules = rules
        self.raised: set[str] = set()

    def update(self, voltage_pct: float | None, frequency_hz: float | None) -> list[Alarm]:
        readings = {"voltage_pct": voltage_pct, "frequency_hz": frequency_hz}
        out: list[Alarm] = []
        for rule in self.rules:
            value = readings[rule.measure]
            if value is None or value != value:  # not measured, or NaN
                continue
            beyond = value > rule.limit if rule.above else value < rule.limit
            back = (
                value <= rule.limit - rule.hysteresis
                if rule.above
                else value >= rule.limit + rule.hysteresis
            )
            if rule.fault not in self.raised and beyond:
                self.raised.add(rule.fault)
                out.append(Alarm(rule.control_type, rule.fault, False, value))
            elif rule.fault in self.raised and back:
                self.raised.discard(rule.fault)
                out.append(Alarm(rule.control_type, rule.fault, True, value))
        return out


def der_notices(
    der: DerControls,
    storage: Any,
    alarms: GridAlarms,
    status: EvseStatus | None,
    now: datetime,
) -> list[Any]:
    """The 2.1 DER notices due now: NotifyDERStartStop for each control that started or
    stopped being the one in force for its type since the last check (persisted in `storage`,
    so a restart does not repeat them), NotifyDERAlarm for each grid alarm that starts or ends
    with the station's grid readings (`status`; the grid is the same for every EVSE)."""
    in_force = {
        control_type: control.control_id
        for control_type in SUPPORTED
        if (control := der.active(control_type, now)) is not None
    }
    before = storage.get(DER_IN_FORCE_KEY, {}) or {}
    stamp = format_datetime(now)
    notices: list[Any] = [
        call_v21.NotifyDERStartStop(
            control_id=event.control_id,
            started=event.started,
            timestamp=stamp,
            superseded_ids=list(event.superseded_ids) or None,
        )
        for event in start_stop_events(before, in_force)
    ]
    if in_force != before:
        storage.put(DER_IN_FORCE_KEY, in_force)
    if status is not None and status.grid_present:
        for alarm in alarms.update(status.grid_voltage_pct, status.grid_frequency_hz):
            notices.append(
                call_v21.NotifyDERAlarm(
                    control_type=alarm.control_type,
                    grid_event_fault=alarm.fault,
                    alarm_ended=alarm.ended or None,
                    timestamp=stamp,
                    extra_info=f"measured {alarm.value:.1f}",
                )
            )
    return notices
