"""OCPP 2.1 `limitAtSoC` on a charging schedule (pure): once the EV's SoC reaches `soc`, the
charging rate is limited to `limit` (the schedule's unit). Only charging is limited: a discharge
setpoint is left as it is, and the safety supervisor still bounds whatever comes out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class SocLimit:
    soc_pct: float
    limit: float  # >= 0, in `unit`
    unit: str  # "W" | "A"


def soc_limit_from(limit_at_soc: Mapping[str, Any] | None, unit: str) -> SocLimit | None:
    """The schedule's limitAtSoC, bounded (SoC 0..100, limit finite; a negative limit reads as
    0: no charging past the SoC); None when absent or malformed."""
    if not isinstance(limit_at_soc, Mapping):
        return None
    soc, limit = limit_at_soc.get("soc"), limit_at_soc.get("limit")
    if isinstance(soc, bool) or isinstance(limit, bool):
        return None
    if not isinstance(soc, int | float) or not isinstance(limit, int | float):
        return None
    if not (math.isfinite(soc) and math.isfinite(limit)) or not 0 <= soc <= 100:
        return None
    return SocLimit(float(soc), max(0.0, float(limit)), unit)


def convert(value: float, from_unit: str, to_unit: str, volts: float) -> float:
    if from_unit == to_unit:
        return value
    return value / volts if to_unit == "A" else value * volts


def soc_limited(
    limit: float | None, unit: str, rule: SocLimit | None, soc_pct: float | None, volts: float
) -> float | None:
    """The EVSE's signed limit (None = unlimited) with limitAtSoC applied at this SoC."""
    if rule is None or soc_pct is None or not math.isfinite(soc_pct) or soc_pct < rule.soc_pct:
        return limit
    cap = convert(rule.limit, rule.unit, unit, volts)
    if limit is None:
        return cap
    if limit <= 0:
        return limit  # resting or discharging: limitAtSoC limits charging only
    return min(limit, cap)
