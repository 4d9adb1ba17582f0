"""The household meter of a site (issue 18): what the rest of the site draws, so that the
operating envelope's import and export limits are met at the connection point, not by the
chargers alone (pure: readings, the site base, the chargers' bounds under it; no clock, no I/O).

A reading is the site's net import at the connection point (+ import, - export), given either
directly (`grid_import_w`) or as household load and solar generation (`load_w - solar_w`). The
meter sees the chargers too, so the *site base* (what the rest of the site draws, the
`site_base_w` of csms.domain.envelopes.charger_bounds) is the reading minus the chargers' own
measured power. A station whose power is not known (no fresh sample while a transaction runs)
may be anywhere in [-rated discharge, +rated charge]: the base becomes an interval, and each
direction takes its own worst end (charge the highest base, discharge the lowest).

Fresh reading (no older than the site's freshness limit): the bounds are computed with a margin
of `margin_w` on each side, the hysteresis of the re-send: while the base moves less than that
since the stations were sent their profile, the site stays within the envelope.

Stale or no reading (the conservative rule): the household is unknown, and "the chargers alone"
(base 0) is safe for a limit only in one direction: for import when the household exports (solar),
for export when it imports (load). So a stale reading may still tighten a direction but never
loosen it: the charge direction takes max(0, last high base), the discharge direction
min(0, last low base). Without any reading it is exactly the chargers-alone rule. Never looser
than the chargers alone, tighter where the last reading showed the household pressing that limit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from csms.domain.envelopes import (
    ChargerBounds,
    EnvelopePeriod,
    OperatingEnvelope,
    StationPeriod,
    charger_bounds,
    station_bounds,
)

MAX_METER_W = 1e7  # 10 MW at the connection point: as MAX_ENVELOPE_W, larger is an error
MAX_FUTURE_SKEW_S = 60.0  # a reading stamped further ahead than this is refused
MIN_MAX_AGE_S = 5.0
MAX_MAX_AGE_S = 3600.0
SOURCES = ("api", "mqtt", "ocpp")


class MeterReadingError(ValueError):
    """A reading the CSMS does not take (the API answers 422 with this text)."""


@dataclass(frozen=True)
class MeterReading:
    """One reading of a site's household meter (all W)."""

    site_id: str
    measured_at: datetime  # when the meter measured (the feeder's timestamp)
    received_at: datetime
    source: str  # api | mqtt | ocpp
    grid_import_w: float  # net at the connection point: + import, - export (chargers included)
    load_w: float | None = None  # as given, when given as load and solar
    solar_w: float | None = None

    def __post_init__(self) -> None:
        for moment in (self.measured_at, self.received_at):
            if moment.tzinfo is None:
                raise MeterReadingError("meter times must be timezone-aware")
        if self.source not in SOURCES:
            raise MeterReadingError(f"source: one of {', '.join(SOURCES)}")
        _check_w("grid_import_w", self.grid_import_w, signed=True)
        for name in ("load_w", "solar_w"):
            value = getattr(self, name)
            if value is not None:
                _check_w(name, value, signed=False)


def _check_w(name: str, value: float, *, signed: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise MeterReadingError(f"{name} must be a finite number of W")
    low = -MAX_METER_W if signed else 0.0
    if not low <= value <= MAX_METER_W:
        raise MeterReadingError(f"{name} must be {low:g}..{MAX_METER_W:g} W, got {value!r}")


def reading_from(
    site_id: str,
    *,
    measured_at: datetime,
    received_at: datetime,
    source: str,
    grid_import_w: float | None = None,
    load_w: float | None = None,
    solar_w: float | None = None,
) -> MeterReading:
    """A reading from either the net import or load and solar (exactly one of the two forms;
    solar alone means no load is known: refused). Refuses a reading from the future."""
    if grid_import_w is not None and (load_w is not None or solar_w is not None):
        raise MeterReadingError("give grid_import_w, or load_w and solar_w, not both")
    if grid_import_w is None:
        if load_w is None or solar_w is None:
            raise MeterReadingError("give grid_import_w, or both load_w and solar_w")
        _check_w("load_w", load_w, signed=False)
        _check_w("solar_w", solar_w, signed=False)
        grid_import_w = float(load_w) - float(solar_w)
    if measured_at.tzinfo is None or received_at.tzinfo is None:
        raise MeterReadingError("meter times must be timezone-aware")
    if (measured_at - received_at).total_seconds() > MAX_FUTURE_SKEW_S:
        raise MeterReadingError(
            f"measured_at is more than {MAX_FUTURE_SKEW_S:g} s in the future (clock skew?)"
        )
    return MeterReading(
        site_id, measured_at, received_at, source, float(grid_import_w), load_w, solar_w
    )


def age_s(reading: MeterReading, now: datetime) -> float:
    """How old the reading is at `now` (0 for one stamped slightly ahead)."""
    return max(0.0, (now - reading.measured_at).total_seconds())


def is_fresh(reading: MeterReading | None, now: datetime, max_age_s: float) -> bool:
    return reading is not None and age_s(reading, now) <= max_age_s


@dataclass(frozen=True)
class ChargerPower:
    """One station's power as the meter saw it (+ charging, - discharging), None = unknown,
    with its ratings (W, >= 0) to bound an unknown one."""

    power_w: float | None
    rated_charge_w: float
    rated_discharge_w: float


@dataclass(frozen=True)
class BaseInterval:
    """The site base at the reading's time: between `low_w` and `high_w` (equal when every
    station's power was known)."""

    low_w: float
    high_w: float
    chargers_w: float  # the known stations' power together
    unknown_stations: int


def base_interval(grid_import_w: float, chargers: Sequence[ChargerPower]) -> BaseInterval:
    """Reading minus the chargers: base = import - sum(charger power); an unknown station's
    power lies in [-rated discharge, +rated charge], which widens the interval."""
    known = sum(c.power_w for c in chargers if c.power_w is not None)
    unknown = [c for c in chargers if c.power_w is None]
    return BaseInterval(
        low_w=grid_import_w - known - sum(max(0.0, c.rated_charge_w) for c in unknown),
        high_w=grid_import_w - known + sum(max(0.0, c.rated_discharge_w) for c in unknown),
        chargers_w=known,
        unknown_stations=len(unknown),
    )


@dataclass(frozen=True)
class SiteBase:
    """The base each direction's bound is computed with: `charge_base_w` for the import limit,
    `discharge_base_w` for the export limit (csms.domain.envelopes.charger_bounds' site_base_w)."""

    charge_base_w: float
    discharge_base_w: float
    fresh: bool

    @property
    def pair(self) -> tuple[float, float]:
        return (self.charge_base_w, self.discharge_base_w)


CHARGERS_ALONE = SiteBase(0.0, 0.0, fresh=False)


def site_base(interval: BaseInterval | None, *, fresh: bool, margin_w: float) -> SiteBase:
    """The bases the bounds use (see the module doc): fresh, the interval widened by the
    margin; stale, only what tightens past the chargers-alone rule; none, the chargers alone."""
    if interval is None:
        return CHARGERS_ALONE
    if fresh:
        margin = max(0.0, margin_w)
        return SiteBase(interval.high_w + margin, interval.low_w - margin, fresh=True)
    return SiteBase(max(0.0, interval.high_w), min(0.0, interval.low_w), fresh=False)


def metered_charger_bounds(
    envelope: OperatingEnvelope | None,
    rated_charge_w: float,
    rated_discharge_w: float,
    base: SiteBase | None,
) -> ChargerBounds:
    """charger_bounds with each direction's own base (None: the chargers alone)."""
    if base is None:
        return charger_bounds(envelope, rated_charge_w, rated_discharge_w)
    charge = charger_bounds(envelope, rated_charge_w, rated_discharge_w, base.charge_base_w)
    discharge = charger_bounds(envelope, rated_charge_w, rated_discharge_w, base.discharge_base_w)
    return ChargerBounds(charge.max_charge_w, discharge.max_discharge_w)


def metered_station_timelines(
    timeline: Sequence[EnvelopePeriod],
    ratings: Sequence[tuple[float, float]],
    base: SiteBase | None,
) -> list[list[StationPeriod]]:
    """csms.domain.envelopes.station_timelines with each direction's own base. The base is what
    is known now; it is used for every period of the timeline (the stations get a new profile
    when it changes)."""
    out: list[list[StationPeriod]] = [[] for _ in ratings]
    for period in timeline:
        if base is None:
            bounds = station_bounds(period.envelope, ratings)
        else:
            charge = station_bounds(period.envelope, ratings, base.charge_base_w)
            discharge = station_bounds(period.envelope, ratings, base.discharge_base_w)
            bounds = [
                ChargerBounds(c.max_charge_w, d.max_discharge_w)
                for c, d in zip(charge, discharge, strict=True)
            ]
        ramp = period.envelope.ramp_rate_pct_per_s if period.envelope is not None else None
        for k, b in enumerate(bounds):
            out[k].append(StationPeriod(period.start, period.end, b, ramp, period.envelope))
    return out


def changed_materially(
    applied: tuple[float, float] | None, current: tuple[float, float], hysteresis_w: float
) -> bool:
    """Whether the stations must get a new profile: the bases they were sent (None: never sent
    with a meter) and the current ones differ by at least `hysteresis_w` in either direction."""
    if applied is None:
        return current != (0.0, 0.0)
    return any(abs(a - c) >= hysteresis_w for a, c in zip(applied, current, strict=True))


def tightens(applied: tuple[float, float] | None, current: tuple[float, float]) -> bool:
    """Whether the current bases bound the chargers tighter than the applied ones in either
    direction (a higher charge base, a lower discharge base). A stale reading re-sends on any
    tightening, however small: the stations must never hold more than the chargers-alone rule
    once the household is unknown (a stale base does not move, so this re-sends once)."""
    charge, discharge = applied if applied is not None else (0.0, 0.0)
    return current[0] > charge or current[1] < discharge
