"""The departure SoC floor: how low discharge may go and still reach the driver's target (pure).

docs/v2g.md: available V2G energy never counts "energy needed to reach the departure target at
the vehicle's charge rate". With `remaining` time until departure, a charge power `P` (DC W at
the terminals) and a charge efficiency `eta` (terminals -> cells), the battery gains at most
`P * eta * remaining` before departure, so discharge must stop at

    floor = target - 100 * P * eta * remaining_h / (capacity_kwh * 1000)

(never below 0 %, never above the target). The supervisor stops discharge at
max(driving reserve, backup reserve, vehicle minimum, this floor). It never reads the clock:
`now` is an argument.
"""

from __future__ import annotations

import math
from datetime import datetime

__all__ = ["departure_floor_pct"]


def _check(name: str, value: float, *, positive: bool) -> None:
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")


def departure_floor_pct(
    now: datetime,
    departure: datetime | None,
    target_soc_pct: float | None,
    capacity_kwh: float,
    max_charge_power_w: float,
    charge_efficiency: float,
) -> float | None:
    """The lowest SoC (%) from which charging at `max_charge_power_w` reaches `target_soc_pct`
    by `departure`; None when no departure or target is set, or the departure has passed.

    `now` and `departure` must both be time-zone aware. Raises ValueError for a capacity or
    efficiency that is not > 0 (efficiency at most 1), a negative or non-finite power, or a
    target outside 0-100 %.
    """
    _check("capacity_kwh", capacity_kwh, positive=True)
    _check("max_charge_power_w", max_charge_power_w, positive=False)
    _check("charge_efficiency", charge_efficiency, positive=True)
    if charge_efficiency > 1:
        raise ValueError(f"charge_efficiency must be at most 1, got {charge_efficiency!r}")
    if departure is None or target_soc_pct is None:
        return None
    if not math.isfinite(target_soc_pct) or not 0 <= target_soc_pct <= 100:
        raise ValueError(f"target_soc_pct must be within 0-100, got {target_soc_pct!r}")
    remaining_s = (departure - now).total_seconds()
    if remaining_s < 0:
        return None  # passed: the departure no longer constrains anything
    chargeable_wh = max_charge_power_w * charge_efficiency * remaining_s / 3600.0
    chargeable_pct = 100.0 * chargeable_wh / (capacity_kwh * 1000.0)
    return max(0.0, target_soc_pct - chargeable_pct)
