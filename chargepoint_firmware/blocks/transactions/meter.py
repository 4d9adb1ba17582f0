"""Meter values (OCPP MeterValueType, snake_case keys for the `ocpp` library) from EvseStatus.

Sign convention of the hardware side: + charge (into the vehicle), - discharge. OCPP has separate
Import (grid -> EV) and Export (EV -> grid) measurands, each non-negative.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from chargepoint_firmware.interfaces import EvseStatus
from chargepoint_firmware.ocpp_edge.timefmt import iso_ms

DEFAULT_MEASURANDS: tuple[str, ...] = (
    "Energy.Active.Import.Register",
    "Energy.Active.Export.Register",
    "Power.Active.Import",
    "Power.Active.Export",
    "Current.Import",
    "Current.Export",
    "Voltage",
    "SoC",
)

_UNITS = {
    "Energy.Active.Import.Register": "Wh",
    "Energy.Active.Export.Register": "Wh",
    "Power.Active.Import": "W",
    "Power.Active.Export": "W",
    "Current.Import": "A",
    "Current.Export": "A",
    "Voltage": "V",
    "SoC": "Percent",
}

SUPPORTED_MEASURANDS = frozenset(_UNITS)


def _value(status: EvseStatus, measurand: str) -> float | None:
    match measurand:
        case "Energy.Active.Import.Register":
            return status.energy_import_wh
        case "Energy.Active.Export.Register":
            return status.energy_export_wh
        case "Power.Active.Import":
            return max(status.power_w, 0.0)
        case "Power.Active.Export":
            return max(-status.power_w, 0.0)
        case "Current.Import":
            return max(status.current_a, 0.0)
        case "Current.Export":
            return max(-status.current_a, 0.0)
        case "Voltage":
            return status.voltage_v
        case "SoC":
            return status.soc_pct
    return None


def sampled_values(
    status: EvseStatus, measurands: Iterable[str], context: str
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for measurand in measurands:
        value = _value(status, measurand)
        if value is None:
            continue  # unknown measurand or not measured (SoC before the EV reports it)
        out.append(
            {
                "value": round(value, 3),
                "measurand": measurand,
                "context": context,
                "location": "EV" if measurand == "SoC" else "Outlet",
                "unit_of_measure": {"unit": _UNITS[measurand]},
            }
        )
    return out


def meter_value(
    status: EvseStatus, measurands: Iterable[str], context: str, at: datetime
) -> dict[str, Any] | None:
    values = sampled_values(status, measurands, context)
    if not values:
        return None
    return {"timestamp": iso_ms(at), "sampled_value": values}
