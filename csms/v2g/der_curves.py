"""Grid-code curves a DNSP asks of a DER (AS/NZS 4777.2), and their OCPP 2.1 SetDERControl form
(pure).

A bidirectional charger exporting from a car is DER under AS/NZS 4777.2:2020; a DNSP names the
region settings ("Australia A", "B" or "C") or its own values. Four curves are configurable per
station, each a list of (x, y) points, x increasing:

* volt-watt: (V, % of rated active power) the export ceiling as voltage rises;
* volt-var: (V, % of rated reactive power), + = supplying vars (over-excited, raises voltage),
  - = absorbing;
* frequency-watt, over-frequency: (Hz, % of rated power, + = charge): the power FLOOR above the
  continuous band (discharge falls to 0 at f_transition, then charging rises to full at f_Pmin);
* frequency-watt, under-frequency: (Hz, % of rated power): the power CEILING below the band
  (charging falls to 0 at f_stop_ch, then discharge rises to full at f_Pmax).

Defaults and where they come from (the standard itself is not public; say so where a value
could not be checked):

* Frequency (f_Pmax, f_stop_ch, f_LLCO, f_ULCO, f_transition, f_Pmin), Hz: Australia A 48, 49,
  49.75, 50.25, 50.75, 52; Australia B 48, 49, 49.85, 50.15, 50.75, 52; Australia C 47, 48.25,
  49.5, 50.5, 51.75, 53. Source: AS/NZS 4777.2:2020 region defaults as reproduced in the Q CELLS
  Q.VOLT HYB-G2 installation manual, 7.3.6.5 "[AU] Active Power Frequency" (a secondary source;
  checked there, not against the standard's own table).
* Volt-watt (Australia A: 253 V 100 %, 260 V 20 %; B: 250 V 100 %, 260 V 20 %; C: 253 V 100 %,
  260 V 20 %) and volt-var (A: 207 V +44 %, 220 V 0, 240 V 0, 258 V -60 %; B: 205 V +30 %, 220 V 0,
  235 V 0, 255 V -40 %; C: 215 V +44 %, 230 V 0, 240 V 0, 255 V -60 %): the commonly cited
  AS/NZS 4777.2:2020 region settings, NOT verified against the standard or a manufacturer's
  table in this project (the secondary sources found showed the 2015 edition's 207/220/250/265 V
  settings instead). One corroboration found since: Western Power's transition notice for
  AS/NZS 4777.2:2020 (westernpower.com.au, "Transition requirements for new standards", Table 1)
  requires Region B inverters' volt-var at exactly B's points above (205 V 30 % source, 220 V
  and 235 V 0, 255 V 40 % sink); the A and C points and every volt-watt point remain unverified.
  A DNSP's own values replace them through the API.

On the wire (SetDERControlRequest): VoltWatt / VoltVar curves carry x as % of the nominal
voltage (230 V unless configured), y in PctMaxW / PctMaxVar; FreqWatt curves carry x in Hz and y
in PctMaxW; the two frequency curves are two FreqWatt controls with their own controlIds (this
project's reading: OCPP 2.1 has one FreqWatt control type for both directions).
"""

from __future__ import annotations

import enum
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

NOMINAL_VOLTAGE_V = 230.0
MAX_CURVE_POINTS = 10  # DERCurveType.curveData maxItems in the 2.1 schema


class CurveKind(enum.StrEnum):
    VOLT_WATT = "volt_watt"
    VOLT_VAR = "volt_var"
    FREQ_WATT_OVER = "freq_watt_over"
    FREQ_WATT_UNDER = "freq_watt_under"


class Region(enum.StrEnum):
    AUSTRALIA_A = "australia_a"
    AUSTRALIA_B = "australia_b"
    AUSTRALIA_C = "australia_c"


Points = tuple[tuple[float, float], ...]

# (f_Pmax, f_stop_ch, f_LLCO, f_ULCO, f_transition, f_Pmin) per region, Hz (see module doc).
FREQUENCY_SETTINGS: dict[Region, tuple[float, float, float, float, float, float]] = {
    Region.AUSTRALIA_A: (48.0, 49.0, 49.75, 50.25, 50.75, 52.0),
    Region.AUSTRALIA_B: (48.0, 49.0, 49.85, 50.15, 50.75, 52.0),
    Region.AUSTRALIA_C: (47.0, 48.25, 49.5, 50.5, 51.75, 53.0),
}

_VOLT_WATT: dict[Region, Points] = {
    Region.AUSTRALIA_A: ((253.0, 100.0), (260.0, 20.0)),
    Region.AUSTRALIA_B: ((250.0, 100.0), (260.0, 20.0)),
    Region.AUSTRALIA_C: ((253.0, 100.0), (260.0, 20.0)),
}
_VOLT_VAR: dict[Region, Points] = {
    Region.AUSTRALIA_A: ((207.0, 44.0), (220.0, 0.0), (240.0, 0.0), (258.0, -60.0)),
    Region.AUSTRALIA_B: ((205.0, 30.0), (220.0, 0.0), (235.0, 0.0), (255.0, -40.0)),
    Region.AUSTRALIA_C: ((215.0, 44.0), (230.0, 0.0), (240.0, 0.0), (255.0, -60.0)),
}

# Whether a region's default was checked against a published table (README says which).
VERIFIED: dict[CurveKind, bool] = {
    CurveKind.VOLT_WATT: False,
    CurveKind.VOLT_VAR: False,
    CurveKind.FREQ_WATT_OVER: True,
    CurveKind.FREQ_WATT_UNDER: True,
}

SOURCES: dict[CurveKind, str] = {
    CurveKind.VOLT_WATT: "AS/NZS 4777.2:2020 region settings as commonly cited; not verified",
    CurveKind.VOLT_VAR: "AS/NZS 4777.2:2020 region settings as commonly cited; not verified",
    CurveKind.FREQ_WATT_OVER: (
        "AS/NZS 4777.2:2020 region defaults, as reproduced in the Q CELLS Q.VOLT HYB-G2 "
        "installation manual 7.3.6.5"
    ),
    CurveKind.FREQ_WATT_UNDER: (
        "AS/NZS 4777.2:2020 region defaults, as reproduced in the Q CELLS Q.VOLT HYB-G2 "
        "installation manual 7.3.6.5"
    ),
}


def default_curve(kind: CurveKind, region: Region) -> Points:
    if kind is CurveKind.VOLT_WATT:
        return _VOLT_WATT[region]
    if kind is CurveKind.VOLT_VAR:
        return _VOLT_VAR[region]
    f_pmax, f_stop_ch, f_llco, f_ulco, f_transition, f_pmin = FREQUENCY_SETTINGS[region]
    if kind is CurveKind.FREQ_WATT_OVER:
        return ((f_ulco, -100.0), (f_transition, 0.0), (f_pmin, 100.0))
    return ((f_pmax, -100.0), (f_stop_ch, 0.0), (f_llco, 100.0))


# What a point may hold, per kind: x range, y range (a DNSP's values outside are typos).
_RANGES: dict[CurveKind, tuple[tuple[float, float], tuple[float, float]]] = {
    CurveKind.VOLT_WATT: ((180.0, 300.0), (0.0, 100.0)),
    CurveKind.VOLT_VAR: ((180.0, 300.0), (-100.0, 100.0)),
    CurveKind.FREQ_WATT_OVER: ((50.0, 55.0), (-100.0, 100.0)),
    CurveKind.FREQ_WATT_UNDER: ((45.0, 50.0), (-100.0, 100.0)),
}


def check_curve(kind: CurveKind, points: Sequence[Sequence[float]]) -> Points:
    """The points as a tuple, or ValueError saying what is wrong: 2 to 10 points, finite, x
    strictly increasing, inside the kind's ranges."""
    if not 2 <= len(points) <= MAX_CURVE_POINTS:
        raise ValueError(f"a curve has 2 to {MAX_CURVE_POINTS} points")
    try:
        out = tuple((float(p[0]), float(p[1])) for p in points if len(p) == 2)
    except (TypeError, ValueError, IndexError) as exc:
        raise ValueError("each point is [x, y] with two numbers") from exc
    if len(out) != len(points):
        raise ValueError("each point is [x, y] with two numbers")
    if any(not (math.isfinite(x) and math.isfinite(y)) for x, y in out):
        raise ValueError("curve values must be finite")
    if any(b[0] <= a[0] for a, b in itertools.pairwise(out)):
        raise ValueError("x must strictly increase")
    (x_lo, x_hi), (y_lo, y_hi) = _RANGES[kind]
    for x, y in out:
        if not x_lo <= x <= x_hi:
            raise ValueError(f"x {x} outside {x_lo}..{x_hi} for {kind}")
        if not y_lo <= y <= y_hi:
            raise ValueError(f"y {y} outside {y_lo}..{y_hi} for {kind}")
    return out


def interpolate(points: Points, x: float) -> float:
    """The curve's y at x: linear between points, flat beyond the ends."""
    if x <= points[0][0]:
        return points[0][1]
    if x >= points[-1][0]:
        return points[-1][1]
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        if x0 <= x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return points[-1][1]  # unreachable: x is inside the range


@dataclass(frozen=True)
class DerCurveSetting:
    """A station's configured curve: from a region's defaults or a DNSP's own points."""

    station_id: str
    kind: CurveKind
    points: Points
    region: Region | None = None  # None: the DNSP's own values
    nominal_v: float = NOMINAL_VOLTAGE_V
    priority: int = 10
    response_time_s: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "points": [list(p) for p in self.points],
            "region": None if self.region is None else self.region.value,
            "nominal_v": self.nominal_v,
            "priority": self.priority,
            "response_time_s": self.response_time_s,
        }


_CONTROL_TYPE = {
    CurveKind.VOLT_WATT: ("VoltWatt", "PctMaxW"),
    CurveKind.VOLT_VAR: ("VoltVar", "PctMaxVar"),
    CurveKind.FREQ_WATT_OVER: ("FreqWatt", "PctMaxW"),
    CurveKind.FREQ_WATT_UNDER: ("FreqWatt", "PctMaxW"),
}


def control_id(kind: CurveKind) -> str:
    return f"asnzs4777-{kind.value.replace('_', '-')}"


def set_der_control_request(setting: DerCurveSetting, *, is_default: bool = True) -> dict[str, Any]:
    """SetDERControlRequest for one configured curve (see the module doc for units)."""
    control_type, y_unit = _CONTROL_TYPE[setting.kind]
    volt = setting.kind in (CurveKind.VOLT_WATT, CurveKind.VOLT_VAR)
    if volt and not 100.0 <= setting.nominal_v <= 500.0:
        raise ValueError("nominal voltage must be between 100 and 500 V")
    curve_data = [
        {
            "x": round(x / setting.nominal_v * 100.0, 3) if volt else x,
            "y": y,
        }
        for x, y in setting.points
    ]
    curve: dict[str, Any] = {
        "priority": setting.priority,
        "yUnit": y_unit,
        "curveData": curve_data,
    }
    if setting.response_time_s is not None:
        curve["responseTime"] = setting.response_time_s
    return {
        "isDefault": is_default,
        "controlId": control_id(setting.kind),
        "controlType": control_type,
        "curve": curve,
    }


def setting_from_dict(station_id: str, data: Mapping[str, Any]) -> DerCurveSetting:
    """Inverse of DerCurveSetting.as_dict (what the repository stores)."""
    kind = CurveKind(data["kind"])
    region = data.get("region")
    return DerCurveSetting(
        station_id=station_id,
        kind=kind,
        points=check_curve(kind, data["points"]),
        region=None if region is None else Region(region),
        nominal_v=float(data.get("nominal_v", NOMINAL_VOLTAGE_V)),
        priority=int(data.get("priority", 10)),
        response_time_s=data.get("response_time_s"),
    )
