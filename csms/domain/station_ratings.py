"""A station's rated charge and discharge power, from what it reported (pure).

One answer for everything that needs a station's rating: the envelope share
(csms/services/envelopes.py) and the DERCapability / DERSettings the CSIP-AUS client reports
(csms/integrations/csip/poller.py) both read `station_rating` through
csms/services/station_ratings.py.

From the station's device model (NotifyReport characteristics of the `Power` variable):
- charge: `ChargingStation.Power` maxLimit, else the sum of its `EVSE.Power` maxLimits;
- discharge: the magnitude of the same variable's minLimit when it is negative (a
  bidirectional station reporting discharge as negative power, as the agent does:
  `EVSE.Power` minLimit = -rated), else the charge rating (bidirectional chargers are rated
  symmetrically);
- neither reported (or not believable: not finite, <= 0, above MAX_RATED_W): the fallback,
  the settings `station_rated_charge_w` / `station_rated_discharge_w`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from csms.domain.envelopes import DEFAULT_RATED_W, MAX_RATED_W

STATION = "ChargingStation"
EVSE = "EVSE"


@dataclass(frozen=True)
class RatingFallback:
    """What a station that reported no rating counts as, W (the settings)."""

    charge_w: float = DEFAULT_RATED_W
    discharge_w: float = DEFAULT_RATED_W

    def __post_init__(self) -> None:
        for value in (self.charge_w, self.discharge_w):
            if not (math.isfinite(value) and 0 < value <= MAX_RATED_W):
                raise ValueError(f"a fallback rating must be in (0, {MAX_RATED_W:g}] W")


def _believable(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or not 0 < value <= MAX_RATED_W:
        return None
    return float(value)


def _limits(characteristics: Mapping[str, Any] | None) -> tuple[float | None, float | None]:
    """(charge, discharge) magnitudes from one Power variable's maxLimit and minLimit."""
    if not isinstance(characteristics, Mapping):
        return None, None
    charge = _believable(characteristics.get("maxLimit"))
    low = characteristics.get("minLimit")
    discharge = _believable(-low) if isinstance(low, int | float) and low < 0 else None
    return charge, discharge


def station_rating(
    power_variables: Iterable[tuple[str, int | None, Mapping[str, Any] | None]],
    fallback: RatingFallback,
) -> tuple[float, float]:
    """(charge W, discharge W) from the station's `Power` variables, each (component, EVSE id,
    characteristics); see the module doc for the order."""
    station: tuple[float | None, float | None] = (None, None)
    evses: dict[int, tuple[float | None, float | None]] = {}
    for component, evse_id, characteristics in power_variables:
        if component == STATION:
            station = _limits(characteristics)
        elif component == EVSE and evse_id is not None:
            evses[evse_id] = _limits(characteristics)

    def pick(k: int) -> float | None:
        if station[k] is not None:
            return station[k]
        found = [v[k] for v in evses.values() if v[k] is not None]
        total = sum(v for v in found if v is not None)
        return total if found and total <= MAX_RATED_W else None

    charge, discharge = pick(0), pick(1)
    if charge is None and discharge is None:
        return fallback.charge_w, fallback.discharge_w
    if charge is None:
        charge = discharge
    if discharge is None:
        discharge = charge
    assert charge is not None and discharge is not None
    return charge, discharge
