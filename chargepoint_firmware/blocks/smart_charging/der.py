"""OCPP 2.1 DER control (R) on a CHAdeMO station: SetDERControl / GetDERControl /
ClearDERControl kept in the agent's storage and applied locally.

Supported control types (what a DC CHAdeMO EVSE with one current setpoint can honour):
- FreqWatt: curve x = grid frequency (Hz), y = % of max power (yUnit PctMaxW); applied like the
  2.0.1 frequency-watt response (under-frequency: discharge at least the curve's power, over-
  frequency: charge at least it), from the measured grid frequency.
- VoltWatt: curve x = grid voltage in % of nominal (PctEffectiveV), y = % of max discharge power:
  caps the discharge while the measured AC grid voltage is known (EvseStatus.grid_voltage_pct;
  hardware that does not measure it leaves the cap unapplied).
- LimitMaxDischarge: pctMaxDischargePower caps the discharge power: it shapes the setpoint and
  reaches the safety supervisor as a local limit (EvseSetpoint.der_max_discharge_w) on every
  tick. Controls are stored (agent storage, restored at start) and have no offline lapse: one
  in force holds while the CSMS is unreachable.
Every other type (trip settings, power factor, var, gradients, enter-service, droop) needs an
inverter's grid functions a CHAdeMO station does not have: SetDERControl answers NotSupported,
the status R04 gives for a control type the station does not support.

Per type, a non-default control in its time window wins over the default one (isDefault), and
the lowest `priority` number wins among several.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from v2g_shared.freq_watt import FreqWattCurve
from v2g_shared.schedule import ProfileFormatError, parse_datetime

SUPPORTED = ("FreqWatt", "VoltWatt", "LimitMaxDischarge")
# controlType -> the request field that carries its settings.
_FIELD = {"FreqWatt": "curve", "VoltWatt": "curve", "LimitMaxDischarge": "limitMaxDischarge"}
MAX_CONTROLS = 24
_TEN_YEARS_S = 10 * 365 * 86400.0  # bounded: a CSMS cannot grow the store without end


class EvseRating(Protocol):
    max_discharge_power_w: float
    max_discharge_current_a: float


@dataclass(frozen=True, slots=True)
class DerControl:
    control_id: str
    control_type: str
    is_default: bool
    settings: Mapping[str, Any]  # the request's curve / limitMaxDischarge object (camelCase)

    @property
    def priority(self) -> int:
        return int(self.settings.get("priority", 0))

    def active_at(self, now: datetime) -> bool:
        start = self.settings.get("startTime")
        if start is None:
            return True
        try:
            begin = parse_datetime(start)
        except ProfileFormatError:
            return False
        duration = self.settings.get("duration")
        seconds = None if duration is None else float(duration)
        if seconds is not None and not 0 <= seconds < _TEN_YEARS_S:  # NaN, negative, huge
            seconds = 0.0 if not seconds >= 0 else _TEN_YEARS_S
        end = None if seconds is None else begin + timedelta(seconds=seconds)
        return begin <= now and (end is None or now < end)

    def window(self) -> tuple[datetime | None, datetime | None] | None:
        """(start, end) of its time window (None: unbounded side); None when unreadable."""
        start = self.settings.get("startTime")
        if start is None:
            return None, None
        try:
            begin = parse_datetime(start)
        except ProfileFormatError:
            return None
        duration = self.settings.get("duration")
        if duration is None:
            return begin, None
        seconds = float(duration)
        if not 0 <= seconds < _TEN_YEARS_S:
            seconds = 0.0 if not seconds >= 0 else _TEN_YEARS_S
        return begin, begin + timedelta(seconds=seconds)

    def to_ocpp(self) -> dict[str, Any]:
        return {
            "isDefault": self.is_default,
            "controlId": self.control_id,
            "controlType": self.control_type,
            _FIELD[self.control_type]: dict(self.settings),
        }


def control_from_request(payload: Mapping[str, Any]) -> DerControl | str:
    """A SetDERControlRequest (camelCase) as a control, or the status to answer."""
    control_type = payload.get("controlType")
    if control_type not in SUPPORTED:
        return "NotSupported"
    settings = payload.get(_FIELD[control_type])
    if not isinstance(settings, Mapping):
        return "Rejected"
    if control_type in ("FreqWatt", "VoltWatt"):
        points = settings.get("curveData") or []
        xs = [p["x"] for p in points]
        if len(points) < 2 or any(b <= a for a, b in itertools.pairwise(xs)):
            return "Rejected"
    elif not isinstance(settings.get("pctMaxDischargePower"), int | float) or not (
        0 <= settings["pctMaxDischargePower"] <= 100
    ):
        return "Rejected"
    return DerControl(
        str(payload["controlId"])[:36], control_type, bool(payload["isDefault"]), dict(settings)
    )


def _interpolate(points: list[tuple[float, float]], x: float) -> float:
    xs = [p[0] for p in points]
    if x <= xs[0]:
        return points[0][1]
    if x >= xs[-1]:
        return points[-1][1]
    i = bisect.bisect_right(xs, x)
    (x0, y0), (x1, y1) = points[i - 1], points[i]
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0)


class DerControls:
    """The installed controls (a dict by (isDefault, controlId)), persisted as one JSON value."""

    STORAGE_KEY = "der_controls"

    def __init__(self, storage: Any) -> None:
        self.storage = storage
        self.controls: dict[tuple[bool, str], DerControl] = {}
        for raw in storage.get(self.STORAGE_KEY, []) or []:
            control = control_from_request(raw)
            if isinstance(control, DerControl):
                self.controls[(control.is_default, control.control_id)] = control

    def _save(self) -> None:
        self.storage.put(self.STORAGE_KEY, [c.to_ocpp() for c in self.controls.values()])

    def set(self, payload: Mapping[str, Any]) -> str:
        control = control_from_request(payload)
        if isinstance(control, str):
            return control
        key = (control.is_default, control.control_id)
        if key not in self.controls and len(self.controls) >= MAX_CONTROLS:
            return "Rejected"
        self.controls[key] = control
        self._save()
        return "Accepted"

    def select(
        self, is_default: bool | None, control_type: str | None, control_id: str | None
    ) -> list[DerControl]:
        return [
            c
            for c in self.controls.values()
            if (is_default is None or c.is_default == is_default)
            and (control_type is None or c.control_type == control_type)
            and (control_id is None or c.control_id == control_id)
        ]

    def clear(self, is_default: bool, control_type: str | None, control_id: str | None) -> str:
        found = self.select(is_default, control_type, control_id)
        if not found:
            return "NotFound"
        for c in found:
            del self.controls[(c.is_default, c.control_id)]
        self._save()
        return "Accepted"

    def active(self, control_type: str, now: datetime) -> DerControl | None:
        """The control of this type in force: non-default over default, lowest priority."""
        live = [
            c for c in self.controls.values() if c.control_type == control_type and c.active_at(now)
        ]
        if not live:
            return None
        return min(live, key=lambda c: (c.is_default, c.priority))

    def next_change(self, now: datetime) -> datetime | None:
        """The earliest start or end of a control's time window after `now` (when the control
        in force may change), or None."""
        found: datetime | None = None
        for control in self.controls.values():
            for moment in control.window() or (None, None):
                if moment is not None and moment > now and (found is None or moment < found):
                    found = moment
        return found

    # -- what they mean for one EVSE -------------------------------------------------------------
    def evse_limit(
        self, now: datetime, evse: EvseRating, nominal_voltage_v: float
    ) -> tuple[float | None, datetime | None]:
        """For the setpoint of one EVSE: the LimitMaxDischarge in force as W (the
        supervisor's local limit) and when the control in force may change next."""
        if not self.controls:
            return None, None
        fallback = evse.max_discharge_current_a * nominal_voltage_v
        limit = self.limit_max_discharge_w(now, evse.max_discharge_power_w, fallback)
        return limit, self.next_change(now)

    def limit_max_discharge_w(
        self, now: datetime, max_discharge_power_w: float, fallback_w: float
    ) -> float | None:
        """The LimitMaxDischarge in force as W for the safety supervisor (a local limit): its
        pctMaxDischargePower of the EVSE's rated discharge power (`fallback_w`, e.g. rated
        current x nominal voltage, when that power is not finite). None: no such control, or
        nothing finite to take the percentage of (0 % still stops discharge)."""
        control = self.active("LimitMaxDischarge", now)
        if control is None or control.settings.get("pctMaxDischargePower") is None:
            return None
        pct = min(100.0, max(0.0, float(control.settings["pctMaxDischargePower"])))
        if pct == 0:
            return 0.0
        for rated in (max_discharge_power_w, fallback_w):
            if math.isfinite(rated) and rated >= 0:
                return pct / 100 * rated
        return None

    def freq_watt_curve(
        self, now: datetime, max_charge: float, max_discharge: float
    ) -> FreqWattCurve | None:
        """FreqWatt as a (Hz, W|A) curve: % of max charge above 0, of max discharge below."""
        control = self.active("FreqWatt", now)
        if control is None:
            return None
        points = [(float(p["x"]), float(p["y"])) for p in control.settings["curveData"]]
        scaled = tuple(
            (hz, pct / 100 * (max_charge if pct >= 0 else max_discharge)) for hz, pct in points
        )
        try:
            return FreqWattCurve(scaled)
        except ValueError:
            return None

    def discharge_cap(
        self, now: datetime, max_discharge: float, grid_voltage_pct: float | None
    ) -> float | None:
        """The tightest discharge magnitude allowed by LimitMaxDischarge and VoltWatt."""
        caps: list[float] = []
        limit = self.active("LimitMaxDischarge", now)
        if limit is not None and limit.settings.get("pctMaxDischargePower") is not None:
            caps.append(float(limit.settings["pctMaxDischargePower"]) / 100 * max_discharge)
        volt = self.active("VoltWatt", now)
        if volt is not None and grid_voltage_pct is not None:
            points = [(float(p["x"]), float(p["y"])) for p in volt.settings["curveData"]]
            caps.append(max(0.0, _interpolate(points, grid_voltage_pct)) / 100 * max_discharge)
        return min(caps) if caps else None
