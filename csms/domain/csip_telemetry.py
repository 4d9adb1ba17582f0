"""CSIP-AUS telemetry of a site (issue 18): the site's and its DER's W, var and V over one
reporting period, from the meter values its stations sent (OCPP MeterValues, stored one row
per MeterValue in meter_values, read back one Sample per sampledValue). Pure: samples in,
readings out; no clock, no I/O.

Sign conventions (IEEE 2030.5 ReadingType.flowDirection; CSIP-AUS Annex A "Reporting DER data";
envoy 1.5.0 turns flowDirection 19 values negative to store everything as "positive = import"):
- site readings: flowDirection 1 (forward, delivered to the customer): positive = the site
  imports from the grid, negative = it exports;
- DER readings: flowDirection 19 (reverse, received from the customer): positive = the DER
  generates (the car discharges into the site), negative = it consumes (the car charges).
A V2G station is the DER: its net power in generator convention is
Power.Active.Export - Power.Active.Import (OCPP: import = to the EV). The household meter is not
known to the CSMS, so the site readings are the DER's alone, in the site's convention (site W =
-DER W, site var = -DER var, site V = DER V): what the network would see if the stations were
the only load and generation behind the connection point. Where the site's household meter is
known (csms.domain.site_meter), its reading is the site W instead (`site_from_meter`).

Bounds: a value outside the plausible range of a home or depot connection is dropped (never
clipped: a wrong value reported is worse than none); values are averaged over the reporting
period, or when a station sent nothing in the period, its latest value no older than
`max_age_s` is held; nothing fresh means nothing is reported.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

POWER_ACTIVE_IMPORT = "Power.Active.Import"
POWER_ACTIVE_EXPORT = "Power.Active.Export"
POWER_REACTIVE_IMPORT = "Power.Reactive.Import"
POWER_REACTIVE_EXPORT = "Power.Reactive.Export"
VOLTAGE = "Voltage"
MEASURANDS = (
    POWER_ACTIVE_IMPORT,
    POWER_ACTIVE_EXPORT,
    POWER_REACTIVE_IMPORT,
    POWER_REACTIVE_EXPORT,
    VOLTAGE,
)

# One station: 1 MW covers the largest DC charger; a site of MAX_STATIONS_PER_SITE of them at
# most 64 MW. Voltage: AC phase-to-neutral of a 230/400 V network, or the 400-1000 V of a DC
# link, never below 50 V (a dead meter reads 0, which is no voltage to report).
MAX_STATION_POWER_W = 1_000_000.0
MAX_SITE_POWER_W = 64 * MAX_STATION_POWER_W
MIN_VOLTAGE_V = 50.0
MAX_VOLTAGE_V = 1_000.0
# A sample stamped this far in the future (station clock ahead) is not "now": dropped.
MAX_FUTURE_SKEW_S = 60.0
# Post rates (s): 2030.5 gives them per MirrorUsagePoint; readings cover whole minutes
# (CACTUS checks each Reading starts on a minute and lasts a multiple of 60 s).
MIN_POST_RATE_S = 60
MAX_POST_RATE_S = 3_600
DEFAULT_POST_RATE_S = 300  # CSIP-AUS' default when the server gives none
# Reporting never goes further back than this (a restart after a day does not back-fill).
MAX_PERIOD_S = MAX_POST_RATE_S

POWER_UNITS = {None: 1.0, "W": 1.0, "kW": 1_000.0}
_REACTIVE_UNITS = {None: 1.0, "var": 1.0, "kvar": 1_000.0, "varh": None}
_VOLTAGE_UNITS = {None: 1.0, "V": 1.0}
# Phase-less is the total (power) or the single voltage; per phase values are summed (power)
# or averaged (voltage, phase-to-neutral only: line-to-line voltages are another quantity).
_POWER_PHASES = {"L1", "L2", "L3", "L1-N", "L2-N", "L3-N"}
_VOLTAGE_PHASES = {"L1-N", "L2-N", "L3-N", "L1", "L2", "L3"}
# OCPP 2.0.1 evseId 0: the station as a whole, its main meter at the grid connection.
MAIN_METER_EVSE_ID = 0
# Where the station measured: the grid side. "EV" (the car's DC side), "Cable", "Body" are not
# what flows through the connection point.
_LOCATIONS = {None, "Outlet", "Inlet"}


class Quantity(Enum):
    ACTIVE_POWER = "W"
    REACTIVE_POWER = "var"
    VOLTAGE = "V"


@dataclass(frozen=True, slots=True)
class Sample:
    """One stored sampledValue, as read for telemetry (value already x 10^multiplier)."""

    station_id: str
    timestamp: datetime
    measurand: str
    value: float
    unit: str | None = None
    phase: str | None = None
    location: str | None = None
    evse_id: int | None = None  # 0: the station's own main meter, not a charger (ignored)


@dataclass(frozen=True, slots=True)
class DerReadings:
    """The site's DER over one period, generator convention (positive W = generation)."""

    watts: float | None
    vars: float | None
    volts: float | None
    stations: int  # stations that contributed a fresh value

    @property
    def empty(self) -> bool:
        return self.watts is None and self.vars is None and self.volts is None


@dataclass(frozen=True, slots=True)
class SiteReadings:
    """The connection point over one period, load convention (positive W = import)."""

    watts: float | None
    vars: float | None
    volts: float | None


def site_from_der(der: DerReadings) -> SiteReadings:
    """The household meter is unknown: the site is its DER, in the site's sign convention."""
    return SiteReadings(
        watts=None if der.watts is None else -der.watts,
        vars=None if der.vars is None else -der.vars,
        volts=der.volts,
    )


def site_from_meter(der: DerReadings, meter_import_w: float | None) -> SiteReadings:
    """The site as its household meter saw it (net import W at the connection point); var is
    then unknown (the meter gives W only; the DER's var is not the site's), V the stations'.
    Without a meter reading: `site_from_der`."""
    if meter_import_w is None or not math.isfinite(meter_import_w):
        return site_from_der(der)
    if abs(meter_import_w) > MAX_SITE_POWER_W:
        return SiteReadings(watts=None, vars=None, volts=der.volts)
    return SiteReadings(watts=meter_import_w, vars=None, volts=der.volts)


def _scaled(sample: Sample, units: Mapping[str | None, float | None]) -> float | None:
    factor = units.get(sample.unit)
    if factor is None or not math.isfinite(sample.value):
        return None
    return sample.value * factor


def instant_value(
    samples: Sequence[Sample], units: Mapping[str | None, float | None], *, average: bool
) -> float | None:
    """The value of one measurand at one timestamp: the phase-less sample, else the sum (power)
    or the mean (voltage) of the per-phase ones; None when there is neither."""
    totals = [v for s in samples if s.phase in (None, "") and (v := _scaled(s, units)) is not None]
    if totals:
        return totals[-1]
    allowed = _VOLTAGE_PHASES if average else _POWER_PHASES
    phases: dict[str, float] = {}
    for s in samples:
        if s.phase in allowed and (v := _scaled(s, units)) is not None:
            phases[str(s.phase).removesuffix("-N")] = v
    if not phases:
        return None
    total = sum(phases.values())
    return total / len(phases) if average else total


def _series(
    samples: Iterable[Sample],
    measurand: str,
    units: Mapping[str | None, float | None],
    average: bool,
) -> list[tuple[datetime, float]]:
    """One station's measurand as (timestamp, value), oldest first; Inlet (the grid side of a
    DC charger) preferred over Outlet when a station reports both."""
    chosen = [s for s in samples if s.measurand == measurand and s.location in _LOCATIONS]
    if any(s.location == "Inlet" for s in chosen):
        chosen = [s for s in chosen if s.location == "Inlet"]
    by_time: dict[datetime, list[Sample]] = defaultdict(list)
    for s in chosen:
        by_time[s.timestamp].append(s)
    out = []
    for ts in sorted(by_time):
        value = instant_value(by_time[ts], units, average=average)
        if value is not None:
            out.append((ts, value))
    return out


def _period_value(
    series: Sequence[tuple[datetime, float]], start: datetime, end: datetime, max_age_s: float
) -> float | None:
    """Mean of the values in [start, end), else the latest one before `end` no older than
    `max_age_s` (a station that samples every 5 minutes still counts in a 1 minute period)."""
    inside = [v for ts, v in series if start <= ts < end]
    if inside:
        return sum(inside) / len(inside)
    before = [(ts, v) for ts, v in series if ts < start and (end - ts).total_seconds() <= max_age_s]
    return before[-1][1] if before else None


def _net(
    samples: Sequence[Sample],
    positive: str,
    negative: str,
    units: Mapping[str | None, float | None],
    start: datetime,
    end: datetime,
    max_age_s: float,
) -> float | None:
    """`positive` - `negative` over the period (either may be missing: a station that reports
    only Import sends a signed value, negative when the car discharges)."""
    plus = _period_value(_series(samples, positive, units, False), start, end, max_age_s)
    minus = _period_value(_series(samples, negative, units, False), start, end, max_age_s)
    if plus is None and minus is None:
        return None
    value = (plus or 0.0) - (minus or 0.0)
    return value if abs(value) <= MAX_STATION_POWER_W else None


def station_der_readings(
    samples: Sequence[Sample], start: datetime, end: datetime, max_age_s: float
) -> tuple[float | None, float | None, float | None]:
    """One station's (W, var, V) over [start, end), generator convention; each bounded. Samples
    of evse 0 are the station's main meter at its grid connection (the household and every
    charger behind it), not the station's own power: never counted."""
    fresh = [
        s
        for s in samples
        if s.evse_id != MAIN_METER_EVSE_ID
        and (s.timestamp - end).total_seconds() <= MAX_FUTURE_SKEW_S
        and (end - s.timestamp).total_seconds() <= max(max_age_s, (end - start).total_seconds())
    ]
    watts = _net(
        fresh, POWER_ACTIVE_EXPORT, POWER_ACTIVE_IMPORT, POWER_UNITS, start, end, max_age_s
    )
    var = _net(
        fresh,
        POWER_REACTIVE_EXPORT,
        POWER_REACTIVE_IMPORT,
        _REACTIVE_UNITS,
        start,
        end,
        max_age_s,
    )
    volts = _period_value(_series(fresh, VOLTAGE, _VOLTAGE_UNITS, True), start, end, max_age_s)
    if volts is not None and not MIN_VOLTAGE_V <= volts <= MAX_VOLTAGE_V:
        volts = None
    return watts, var, volts


def der_readings(
    samples_by_station: Mapping[str, Sequence[Sample]],
    start: datetime,
    end: datetime,
    max_age_s: float,
) -> DerReadings:
    """The site's DER over [start, end): W and var summed over its stations, V their mean."""
    if end <= start:
        raise ValueError("a reporting period ends after it starts")
    watts: list[float] = []
    var: list[float] = []
    volts: list[float] = []
    counted = 0
    for station_id in sorted(samples_by_station):
        w, q, v = station_der_readings(samples_by_station[station_id], start, end, max_age_s)
        if w is not None:
            watts.append(w)
        if q is not None:
            var.append(q)
        if v is not None:
            volts.append(v)
        counted += any(x is not None for x in (w, q, v))
    total_w = sum(watts) if watts else None
    total_var = sum(var) if var else None
    if total_w is not None and abs(total_w) > MAX_SITE_POWER_W:
        total_w = None
    if total_var is not None and abs(total_var) > MAX_SITE_POWER_W:
        total_var = None
    return DerReadings(
        watts=total_w,
        vars=total_var,
        volts=sum(volts) / len(volts) if volts else None,
        stations=counted,
    )


# ---- what is reported: MirrorUsagePoints, their MirrorMeterReadings, the reporting periods ----


class Role(Enum):
    """A MirrorUsagePoint's role (CSIP-AUS Annex A roleFlags, as CACTUS checks them)."""

    SITE = "site"  # isMirror | isPremisesAggregationPoint = 0x03
    DER = "der"  # isMirror | isDER | isSubmeter = 0x49

    @property
    def role_flags(self) -> int:
        return 0x03 if self is Role.SITE else 0x49

    @property
    def flow_direction(self) -> int:
        return 1 if self is Role.SITE else 19


@dataclass(frozen=True, slots=True)
class ReadingSpec:
    """One MirrorMeterReading's ReadingType (2030.5 enumerations as integers)."""

    quantity: Quantity
    uom: int  # 38 W, 63 var, 29 V
    power_of_ten: int  # the value sent is round(x / 10^power_of_ten)
    description: str
    kind: int = 37  # power
    data_qualifier: int = 2  # average over the Reading's timePeriod
    accumulation_behaviour: int = 12  # instantaneous (each Reading stands alone)
    commodity: int = 1  # electricity, secondary metered
    phase: int = 0  # not applicable: the total (power) or the mean over phases (voltage)
    directed: bool = True  # a flow (power); voltage has no direction

    def flow_direction(self, role: Role) -> int:
        """The role's flowDirection for a flow; 0 (not applicable) for voltage, which envoy
        would otherwise store negated under 19 (reverse)."""
        return role.flow_direction if self.directed else 0


READING_SPECS = (
    ReadingSpec(Quantity.ACTIVE_POWER, 38, 0, "average real power (W)"),
    ReadingSpec(Quantity.REACTIVE_POWER, 63, 0, "average reactive power (var)"),
    ReadingSpec(Quantity.VOLTAGE, 29, -1, "average voltage (V)", directed=False),
)
MAX_PEN = 99_999_999  # the mRID's last 8 digits carry the PEN in decimal (CACTUS checks it)


def mrid(site_lfdi: str, role: Role, quantity: Quantity | None, pen: int) -> str:
    """A stable 128-bit mRID: 24 hex digits from the site, role and quantity, then the
    aggregator's IANA Private Enterprise Number as 8 decimal digits (CSIP-AUS mRID rule)."""
    if not 0 <= pen <= MAX_PEN:
        raise ValueError(f"pen: 0..{MAX_PEN}")
    key = f"{site_lfdi.lower()}|{role.value}|{quantity.value if quantity else 'mup'}"
    return hashlib.sha256(key.encode()).hexdigest()[:24].upper() + f"{pen:08d}"


def reading_values(role: Role, site: SiteReadings, der: DerReadings) -> dict[Quantity, float]:
    """What the role reports, in its convention; missing quantities left out."""
    source = (
        (site.watts, site.vars, site.volts)
        if role is Role.SITE
        else (
            der.watts,
            der.vars,
            der.volts,
        )
    )
    values = dict(zip(Quantity, source, strict=True))
    return {q: v for q, v in values.items() if v is not None}


def scaled_value(value: float, spec: ReadingSpec) -> int:
    """The integer a Reading carries (2030.5 Reading.value is an Int48)."""
    scaled = round(value / 10.0**spec.power_of_ten)
    if abs(scaled) >= 2**47:
        raise ValueError("reading beyond Int48")
    return scaled


def bounded_post_rate(server_rate: int | None, default: int = DEFAULT_POST_RATE_S) -> int:
    """The server's postRate (s) in [MIN_POST_RATE_S, MAX_POST_RATE_S], whole minutes (a
    reading covers whole minutes); the default when it gives none or nonsense."""
    rate = default if server_rate is None or server_rate <= 0 else server_rate
    rate = min(max(rate, MIN_POST_RATE_S), MAX_POST_RATE_S)
    return int(math.ceil(rate / 60) * 60)


def minute_floor(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def next_period(
    now: datetime, last_end: datetime | None, post_rate_s: int
) -> tuple[datetime, datetime] | None:
    """The reporting period due at `now`: [start, end) on minute boundaries, end the last whole
    minute, start the end of the last period reported (at most `post_rate_s` and MAX_PERIOD_S
    back); None when the last period reported ends less than `post_rate_s` ago."""
    end = minute_floor(now)
    rate = bounded_post_rate(post_rate_s)
    if last_end is not None and (end - last_end).total_seconds() < rate:
        return None
    start = end - timedelta(seconds=rate)
    if last_end is not None and last_end > start:
        start = last_end
    if end <= start:
        return None
    return start, end
