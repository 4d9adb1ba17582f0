"""Physical and numeric bounds of every V2G input, in one place (pure).

The CLI (`csms v2g plan`), the REST schemas (csms/api/v2g_schemas.py), the service and the
pure model all check against these, so they cannot disagree. Every bound is a physical range
with a margin, wide enough for any real vehicle, site or market and narrow enough that the
planner's arithmetic stays well conditioned (no division by ~0, no 1e12 coefficients).

Prices: the NEM market price cap is about +17,500 $/MWh (FY2025-26) and the floor -1,000
$/MWh; wholesale prices (RRP) are accepted within +-100,000 $/MWh, retail prices within
+-20,000 c/kWh (+-200,000 $/MWh: room for a retail margin and GST on the widest RRP).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime


class BoundError(ValueError):
    """A value outside its documented range; the message names the input."""


@dataclass(frozen=True)
class Bound:
    """A closed range [low, high] (open at the low end when `low_open`), with its unit."""

    low: float
    high: float
    unit: str = ""
    low_open: bool = False

    def describe(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        left = "(" if self.low_open else "["
        return f"{left}{self.low:g}, {self.high:g}]{unit}"

    def check(self, value: float, name: str) -> float:
        """`value` as a float when finite and in range, else BoundError naming `name`."""
        return finite_in_range(value, self, name)


def finite_in_range(value: object, bound: Bound, name: str) -> float:
    """The value as a float; BoundError (naming `name`) when it is not a finite number in
    `bound`. Booleans are not numbers here."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BoundError(f"{name}: not a number: {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise BoundError(f"{name}: must be a finite number, got {value!r}")
    too_low = number <= bound.low if bound.low_open else number < bound.low
    if too_low or number > bound.high:
        raise BoundError(f"{name}: {number:g} is outside {bound.describe()}")
    return number


# Vehicles
CAPACITY_KWH = Bound(1.0, 1000.0, "kWh")  # a scooter pack to a heavy truck
VEHICLE_POWER_KW = Bound(0.0, 1000.0, "kW")  # max charge / discharge power (MCS is ~1 MW)
SOC_FRACTION = Bound(0.0, 1.0)
SOC_PERCENT = Bound(0.0, 100.0, "%")
ROUND_TRIP_EFFICIENCY = Bound(0.5, 1.0)  # real chargers: 0.7-0.95
DEGRADATION_C_KWH = Bound(0.0, 1000.0, "c/kWh")  # chemistry defaults are 1.7-4 c/kWh
EVSE_ID_MAX = 2**31 - 1  # a 32-bit database integer

# Prices and tariffs
PRICE_C_KWH = Bound(-20_000.0, 20_000.0, "c/kWh")
RRP_PER_MWH = Bound(-100_000.0, 100_000.0, "$/MWh")
TARIFF_ADDER_C_KWH = Bound(-1_000.0, 1_000.0, "c/kWh")  # retail margin, export offset
GST_RATE = Bound(0.0, 0.5)  # a sales tax rate (Australia: 0.10)
PRICE_INTERVAL_S = Bound(60.0, 86_400.0, "s")  # one minute to one day

# Sites and fleets
SITE_POWER_KW = Bound(-100_000.0, 100_000.0, "kW")  # site base load, fleet dispatch target
SITE_LIMIT_KW = Bound(0.0, 100_000.0, "kW")  # import / export limit
HOUSE_LOAD_KW = Bound(0.0, 1_000.0, "kW")
RESPONSE_TIME_S = Bound(0.0, 3_600.0, "s", low_open=True)
MIN_BID_KW = Bound(0.0, 100_000.0, "kW")
EQUIPMENT_COST_AUD = Bound(0.0, 10_000_000.0, "AUD")

# Grid frequency
FREQUENCY_HZ = Bound(40.0, 70.0, "Hz")
FREQ_WATT_W = Bound(-1_000_000.0, 1_000_000.0, "W")
MAX_CURVE_POINTS = 20

# Planning horizon: the default of the `v2g_max_horizon_h` setting and `--max-horizon-h`.
DEFAULT_MAX_HORIZON_H = 168.0  # 7 days
MAX_HORIZON_H = Bound(0.0, 744.0, "h", low_open=True)  # what the setting may be: up to 31 days
# Vehicles x intervals of one LP: 1,000 vehicles x 96 intervals solve in 5-12 s (see
# csms/v2g/optimizer.py), one vehicle x 100,000 one-minute intervals in ~18 s; beyond this a
# plan is refused rather than left to run for minutes. The 168 h horizon at 5 minutes is 2,016.
MAX_PLAN_CELLS = 100_000
MAX_PRICE_INTERVALS = 100_000  # one upload or inline price list

# Times a plan, price or sample may carry (also keeps `t + timedelta(...)` from overflowing).
TIME_MIN = datetime(2000, 1, 1, tzinfo=UTC)
TIME_MAX = datetime(2100, 1, 1, tzinfo=UTC)


def check_time(moment: datetime, name: str) -> datetime:
    """A timezone-aware time between TIME_MIN and TIME_MAX, else BoundError naming `name`."""
    if moment.tzinfo is None:
        raise BoundError(f"{name}: needs a timezone offset")
    if not TIME_MIN <= moment < TIME_MAX:
        raise BoundError(
            f"{name}: {moment.isoformat()} is outside {TIME_MIN.year}-{TIME_MAX.year - 1}"
        )
    return moment


def check_horizon(start: datetime, departure: datetime, max_hours: float, name: str) -> None:
    """BoundError when `departure` is more than `max_hours` after `start`."""
    hours = (departure - start).total_seconds() / 3600.0
    if hours > max_hours:
        raise BoundError(
            f"{name}: {departure.isoformat()} is {hours:,.1f} h after {start.isoformat()}; "
            f"plans look at most {max_hours:g} h ahead (the horizon limit)"
        )
