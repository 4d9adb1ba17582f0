"""What an EV says of its V2X side in NotifyEVChargingNeeds (OCPP 2.1 v2xChargingParameters),
bounded, and what it leaves the planner (pure): power bounds, and the SoC window of its V2X
energy requests."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_MAX_MEMBERS = 32  # a member list longer than every enum it can name is cut, not walked

BIDIRECTIONAL_TRANSFERS = frozenset({"AC_BPT", "AC_BPT_DER", "DC_BPT", "DC_ACDP_BPT"})


@dataclass(frozen=True)
class EvV2xLimits:
    """The EV's V2X bounds from NotifyEVChargingNeeds (2.1 v2xChargingParameters), kW/kWh, each
    None when the EV did not say."""

    max_charge_kw: float | None = None
    max_discharge_kw: float | None = None
    min_v2x_energy_kwh: float | None = None  # evMinV2XEnergyRequest (may be negative)
    max_v2x_energy_kwh: float | None = None  # evMaxV2XEnergyRequest
    bidirectional: bool | None = None  # from availableEnergyTransfer, None = not said


# Bounds on what an EV may claim (a peer's numbers are bounded before use).
_MAX_EV_POWER_W = 1_000_000.0
_MAX_EV_ENERGY_WH = 1_000_000.0


def _bounded(value: Any, limit: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    if not math.isfinite(number) or abs(number) > limit:
        return None
    return number


def ev_v2x_limits(charging_needs: Mapping[str, Any]) -> EvV2xLimits:
    """Read the V2X parameters of a NotifyEVChargingNeeds chargingNeeds object (W and Wh on the
    wire). Values out of range or of the wrong type are ignored (as if not sent)."""
    params = charging_needs.get("v2xChargingParameters")
    params = params if isinstance(params, Mapping) else {}
    max_charge = _bounded(params.get("maxChargePower"), _MAX_EV_POWER_W)
    max_discharge = _bounded(params.get("maxDischargePower"), _MAX_EV_POWER_W)
    min_energy = _bounded(params.get("evMinV2XEnergyRequest"), _MAX_EV_ENERGY_WH)
    max_energy = _bounded(params.get("evMaxV2XEnergyRequest"), _MAX_EV_ENERGY_WH)
    available = charging_needs.get("availableEnergyTransfer")
    bidirectional: bool | None = None
    if isinstance(available, list):
        names = {str(m) for m in available[:_MAX_MEMBERS]}
        bidirectional = bool(names & BIDIRECTIONAL_TRANSFERS)
    return EvV2xLimits(
        max_charge_kw=None if max_charge is None else max(0.0, max_charge) / 1000.0,
        max_discharge_kw=None if max_discharge is None else abs(max_discharge) / 1000.0,
        min_v2x_energy_kwh=None if min_energy is None else min_energy / 1000.0,
        max_v2x_energy_kwh=None if max_energy is None else max_energy / 1000.0,
        bidirectional=bidirectional,
    )


def apply_ev_limits(
    max_charge_kw: float, max_discharge_kw: float, limits: EvV2xLimits
) -> tuple[float, float]:
    """The vehicle's own power bounds narrowed by what the EV said in its charging needs: never
    wider than either; no discharge when the EV offered no bidirectional transfer."""
    charge = max_charge_kw
    discharge = max_discharge_kw
    if limits.max_charge_kw is not None:
        charge = min(charge, limits.max_charge_kw)
    if limits.max_discharge_kw is not None:
        discharge = min(discharge, limits.max_discharge_kw)
    if limits.bidirectional is False:
        discharge = 0.0
    return max(0.0, charge), max(0.0, discharge)


@dataclass(frozen=True)
class SocWindow:
    """The SoC range an EV's V2X energy requests leave the plan (fractions of capacity)."""

    floor: float | None  # the plan must keep (and end) at or above this
    ceiling: float | None  # the plan must stay at or below this


def v2x_energy_window(soc: float, capacity_kwh: float, limits: EvV2xLimits) -> SocWindow:
    """ISO 15118-20 V2X energy requests as a SoC window: evMinV2XEnergyRequest is the energy to
    reach the EV's minimum SoC (negative: that much may be discharged first), and
    evMaxV2XEnergyRequest the energy to reach its maximum SoC. Both are bounded already
    (`ev_v2x_limits`); the window is clipped to [0, 1] and never inverted (a ceiling below the
    floor collapses onto the floor)."""
    if not (math.isfinite(soc) and math.isfinite(capacity_kwh)) or capacity_kwh <= 0:
        raise ValueError("soc and capacity must be finite, capacity > 0")
    floor = ceiling = None
    if limits.min_v2x_energy_kwh is not None:
        floor = min(1.0, max(0.0, soc + limits.min_v2x_energy_kwh / capacity_kwh))
    if limits.max_v2x_energy_kwh is not None:
        ceiling = min(1.0, max(0.0, soc + limits.max_v2x_energy_kwh / capacity_kwh))
    if floor is not None and ceiling is not None and ceiling < floor:
        ceiling = floor
    return SocWindow(floor, ceiling)
