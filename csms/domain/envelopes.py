"""Dynamic operating envelopes (CSIP-AUS, issue 18): the limits a distribution network gives a
site, and what they leave each of the site's stations (pure).

A site's envelope comes from a CSIP-AUS DERControl (or its DefaultDERControl) or from an
operator. Its limits, all W and magnitudes (>= 0):
- export_limit_w / import_limit_w: at the site's connection point (opModExpLimW / ImpLimW);
- generation_limit_w / load_limit_w: of the DER itself, here the site's chargers together
  (opModGenLimW / LoadLimW);
- energize / connect False: no energy transfer at all (opModEnergize / opModConnect);
- ramp_rate_pct_per_s: setGradW / 100, % of rated power per second;
- ramp_time_s: a DERControl's rampTms / 100: the time to move from the limit in force before it
  to its own (see `ramp_periods`).

`envelope_at` picks the envelope in force; `charger_bounds` turns it into the charge and
discharge the site's chargers may do together, given what the rest of the site draws
(household load minus solar) when that is known; `share` splits those bounds between the
stations. Nothing here reads the clock or does I/O.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta

MAX_ENVELOPE_W = 1e7  # 10 MW: far above any site this project serves; larger is an error
MAX_RAMP_PCT_PER_S = 100.0
MAX_RAMP_TIME_S = 3600.0  # a longer ramp from a peer is clamped to this (2030.5 UInt16: 655 s)


@dataclass(frozen=True)
class OperatingEnvelope:
    site_id: str
    source: str  # "csip-aus" | "operator" | ...
    control_id: str | None
    is_default: bool  # a DefaultDERControl: applies when no other envelope does
    start: datetime
    end: datetime | None  # None = open-ended
    received_at: datetime
    export_limit_w: float | None = None
    import_limit_w: float | None = None
    generation_limit_w: float | None = None
    load_limit_w: float | None = None
    energize: bool | None = None
    connect: bool | None = None
    ramp_rate_pct_per_s: float | None = None
    ramp_time_s: float | None = None

    def __post_init__(self) -> None:
        for moment in (self.start, self.end, self.received_at):
            if moment is not None and moment.tzinfo is None:
                raise ValueError("envelope times must be timezone-aware")
        if self.end is not None and self.end <= self.start:
            raise ValueError("an envelope must end after it starts")
        for name in ("export_limit_w", "import_limit_w", "generation_limit_w", "load_limit_w"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and 0 <= value <= MAX_ENVELOPE_W):
                raise ValueError(f"{name} must be 0..{MAX_ENVELOPE_W:g} W, got {value!r}")
        ramp = self.ramp_rate_pct_per_s
        if ramp is not None and not (math.isfinite(ramp) and 0 < ramp <= MAX_RAMP_PCT_PER_S):
            raise ValueError(f"ramp_rate_pct_per_s must be in (0, {MAX_RAMP_PCT_PER_S:g}]")
        ramp_time = self.ramp_time_s
        if ramp_time is not None and not (
            math.isfinite(ramp_time) and 0 < ramp_time <= MAX_RAMP_TIME_S
        ):
            raise ValueError(f"ramp_time_s must be in (0, {MAX_RAMP_TIME_S:g}]")

    def covers(self, t: datetime) -> bool:
        return self.start <= t and (self.end is None or t < self.end)

    @property
    def no_transfer(self) -> bool:
        return self.energize is False or self.connect is False


def _tightest(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def _merge(envelopes: Sequence[OperatingEnvelope]) -> OperatingEnvelope:
    """Several envelopes in force at once: each limit the tightest, any False flag wins."""
    first = envelopes[0]
    values = {f.name: getattr(first, f.name) for f in fields(first)}
    for other in envelopes[1:]:
        for name in (
            "export_limit_w",
            "import_limit_w",
            "generation_limit_w",
            "load_limit_w",
            "ramp_rate_pct_per_s",
            "ramp_time_s",  # the shortest: a tightening is never slower than asked
        ):
            values[name] = _tightest(values[name], getattr(other, name))
        for name in ("energize", "connect"):
            mine, theirs = values[name], getattr(other, name)
            values[name] = False if False in (mine, theirs) else (mine or theirs)
    return OperatingEnvelope(**values)


def envelopes_in_force(
    schedule: Sequence[OperatingEnvelope], t: datetime
) -> list[OperatingEnvelope]:
    """The envelopes `envelope_at` takes at `t`: the non-default ones covering `t`, else the
    newest default covering `t` (one), else none."""
    active = [e for e in schedule if not e.is_default and e.covers(t)]
    if active:
        return active
    defaults = [e for e in schedule if e.is_default and e.covers(t)]
    return [max(defaults, key=lambda e: e.received_at)] if defaults else []


def envelope_at(schedule: Sequence[OperatingEnvelope], t: datetime) -> OperatingEnvelope | None:
    """The envelope in force at `t`: the non-default ones covering `t` (their source resolved
    primacy and supersede; if several still overlap, the tightest of each), else the newest
    default covering `t`, else None."""
    found = envelopes_in_force(schedule, t)
    if not found:
        return None
    return found[0] if found[0].is_default else _merge(found)


@dataclass(frozen=True)
class ChargerBounds:
    """What the site's chargers may do together: charge up to `max_charge_w`, discharge up
    to `max_discharge_w` (both >= 0)."""

    max_charge_w: float
    max_discharge_w: float


def charger_bounds(
    envelope: OperatingEnvelope | None,
    rated_charge_w: float,
    rated_discharge_w: float,
    site_base_w: float | None = None,
) -> ChargerBounds:
    """The chargers' bounds under `envelope`. `site_base_w` is what the rest of the site draws
    (+ import, - export: load minus solar) when the household meter is known, else None: then
    the site limits apply to the chargers alone. A site already exporting more than its limit
    leaves no discharge (never negative bounds)."""
    charge, discharge = max(0.0, rated_charge_w), max(0.0, rated_discharge_w)
    if envelope is None:
        return ChargerBounds(charge, discharge)
    if envelope.no_transfer:
        return ChargerBounds(0.0, 0.0)
    base = 0.0 if site_base_w is None or not math.isfinite(site_base_w) else site_base_w
    if envelope.import_limit_w is not None:
        charge = min(charge, envelope.import_limit_w - base)
    if envelope.export_limit_w is not None:
        discharge = min(discharge, envelope.export_limit_w + base)
    if envelope.load_limit_w is not None:
        charge = min(charge, envelope.load_limit_w)
    if envelope.generation_limit_w is not None:
        discharge = min(discharge, envelope.generation_limit_w)
    return ChargerBounds(max(0.0, charge), max(0.0, discharge))


def share(bounds: ChargerBounds, ratings: Sequence[tuple[float, float]]) -> list[ChargerBounds]:
    """Split the site's bounds between its stations in proportion to their ratings (charge W,
    discharge W); each share is at most the station's own rating, and the shares sum to at
    most the site's bounds."""

    def split(total: float, rated: list[float]) -> list[float]:
        whole = sum(rated)
        if whole <= 0:
            return [0.0 for _ in rated]
        return [min(r, total * r / whole) for r in rated]

    charges = split(bounds.max_charge_w, [max(0.0, c) for c, _ in ratings])
    discharges = split(bounds.max_discharge_w, [max(0.0, d) for _, d in ratings])
    return [ChargerBounds(c, d) for c, d in zip(charges, discharges, strict=True)]


# ---- the timeline of the next hours and each station's bounds in it ------------------------

TIMELINE_HORIZON_S = 24 * 3600  # what one ChargingStationMaxProfile covers (envelope_wire.md)
# A station whose rated power the CSMS does not know is counted at this (22 kW: three-phase
# 32 A, the largest home AC charger). Over-estimating is safe for the site: `share` keeps the
# shares' sum within the site's bounds; it only moves the split towards such a station.
DEFAULT_RATED_W = 22_000.0
MAX_RATED_W = 1e6  # a station reporting more than 1 MW is not believed (the fallback is used)
_LIMIT_FIELDS = (
    "export_limit_w",
    "import_limit_w",
    "generation_limit_w",
    "load_limit_w",
    "energize",
    "connect",
    "ramp_rate_pct_per_s",
    "ramp_time_s",
)


def same_limits(a: OperatingEnvelope | None, b: OperatingEnvelope | None) -> bool:
    """Whether two envelopes (or their absence) bound the stations the same way."""
    if a is None or b is None:
        return a is b
    return all(getattr(a, name) == getattr(b, name) for name in _LIMIT_FIELDS)


@dataclass(frozen=True)
class EnvelopePeriod:
    start: datetime
    end: datetime | None  # None: open-ended
    envelope: OperatingEnvelope | None  # None: no envelope, the stations' ratings apply


def envelope_timeline(
    schedule: Sequence[OperatingEnvelope], now: datetime, horizon_s: float = TIMELINE_HORIZON_S
) -> list[EnvelopePeriod]:
    """The periods from `now` to `now + horizon_s` in which the envelope in force does not
    change (consecutive moments with the same limits are one period), then one open-ended
    period: the open-ended default envelope's values after the horizon (or none)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    until = now + timedelta(seconds=horizon_s)
    moments = {now}
    for e in schedule:
        for edge in (e.start, e.end):
            if edge is not None and now < edge < until:
                moments.add(edge)
    periods: list[EnvelopePeriod] = []
    for moment in sorted(moments):
        found = envelope_at(schedule, moment)
        if periods and same_limits(periods[-1].envelope, found):
            continue
        if periods:
            periods[-1] = EnvelopePeriod(periods[-1].start, moment, periods[-1].envelope)
        periods.append(EnvelopePeriod(moment, None, found))
    tail = open_ended_default(schedule, until)
    if not same_limits(periods[-1].envelope, tail):
        periods[-1] = EnvelopePeriod(periods[-1].start, until, periods[-1].envelope)
        periods.append(EnvelopePeriod(until, None, tail))
    return periods


def open_ended_default(
    schedule: Sequence[OperatingEnvelope], after: datetime
) -> OperatingEnvelope | None:
    """The newest default envelope without an end that has started by `after`: what applies
    once everything the CSMS knows of has run out."""
    found = [e for e in schedule if e.is_default and e.end is None and e.start <= after]
    return max(found, key=lambda e: e.received_at) if found else None


def rated_or_default(charge_w: float | None, discharge_w: float | None) -> tuple[float, float]:
    """A station's (charge W, discharge W) rating: what it reported when believable, else
    DEFAULT_RATED_W; an unknown discharge rating is taken as the charge rating (bidirectional
    chargers are rated symmetrically)."""

    def believable(value: float | None) -> float | None:
        if value is None or not math.isfinite(value) or not 0 < value <= MAX_RATED_W:
            return None
        return float(value)

    charge = believable(charge_w)
    discharge = believable(discharge_w)
    charge_out = charge if charge is not None else DEFAULT_RATED_W
    return charge_out, discharge if discharge is not None else charge_out


def station_bounds(
    envelope: OperatingEnvelope | None,
    ratings: Sequence[tuple[float, float]],
    site_base_w: float | None = None,
) -> list[ChargerBounds]:
    """Each station's bounds under `envelope`: where the envelope bounds a direction (charge or
    discharge), the station's `share` of what the site's limits leave the chargers; where it
    does not, the station's own rating."""
    if envelope is None:
        return [ChargerBounds(max(0.0, c), max(0.0, d)) for c, d in ratings]
    site = charger_bounds(envelope, math.inf, math.inf, site_base_w)
    finite = ChargerBounds(
        site.max_charge_w if math.isfinite(site.max_charge_w) else 0.0,
        site.max_discharge_w if math.isfinite(site.max_discharge_w) else 0.0,
    )
    shares = share(finite, ratings)
    return [
        ChargerBounds(
            s.max_charge_w if math.isfinite(site.max_charge_w) else max(0.0, c),
            s.max_discharge_w if math.isfinite(site.max_discharge_w) else max(0.0, d),
        )
        for s, (c, d) in zip(shares, ratings, strict=True)
    ]


@dataclass(frozen=True)
class StationPeriod:
    """One period of a station's bounds timeline."""

    start: datetime
    end: datetime | None
    bounds: ChargerBounds
    ramp_rate_pct_per_s: float | None
    envelope: OperatingEnvelope | None


def station_timelines(
    timeline: Sequence[EnvelopePeriod],
    ratings: Sequence[tuple[float, float]],
    site_base_w: float | None = None,
) -> list[list[StationPeriod]]:
    """Per station (in the order of `ratings`), its bounds in each period of `timeline`."""
    out: list[list[StationPeriod]] = [[] for _ in ratings]
    for period in timeline:
        bounds = station_bounds(period.envelope, ratings, site_base_w)
        ramp = period.envelope.ramp_rate_pct_per_s if period.envelope is not None else None
        for k, b in enumerate(bounds):
            out[k].append(StationPeriod(period.start, period.end, b, ramp, period.envelope))
    return out


def bounds_at(periods: Sequence[StationPeriod], t: datetime) -> ChargerBounds | None:
    """The bounds in force at `t` (None: before the first period)."""
    found = None
    for p in periods:
        if p.start <= t:
            found = p.bounds
    return found


def tightest_between(
    periods: Sequence[StationPeriod], start: datetime, end: datetime
) -> ChargerBounds | None:
    """The tightest bounds of the periods overlapping [start, end) (None: none overlaps): a
    plan interval must respect every period it overlaps."""
    found: ChargerBounds | None = None
    for p in periods:
        if p.start < end and (p.end is None or p.end > start):
            b = p.bounds
            found = (
                b
                if found is None
                else ChargerBounds(
                    min(found.max_charge_w, b.max_charge_w),
                    min(found.max_discharge_w, b.max_discharge_w),
                )
            )
    return found


# ---- the ChargingStationMaxProfile (envelope_wire.md) --------------------------------------

ENVELOPE_PROFILE_ID = 62007
ENVELOPE_STACK_LEVEL = 8
ENVELOPE_VENDOR_ID = "org.openv2g.envelope"
DEFAULT_PERIODS_PER_SCHEDULE = 24


@dataclass(frozen=True)
class EnvelopeProfile:
    """What a station is sent: the SetChargingProfile payload and when the CSMS must send it
    again (the profile lost precision there: see `envelope_profile`)."""

    payload: dict[str, object]
    resend_at: datetime | None


def _ocpp_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def envelope_profile(
    periods: Sequence[StationPeriod],
    *,
    site_id: str,
    now: datetime,
    ocpp_2_1: bool,
    max_periods: int | None = None,
) -> EnvelopeProfile:
    """The SetChargingProfile (ChargingStationMaxProfile id 62007, evseId 0) that carries a
    station's bounds timeline, exactly per envelope_wire.md. At most `max_periods` periods
    (the station's PeriodsPerSchedule, default 24): when the timeline has more, the last period
    sent carries the tightest bounds of all those it stands for (stricter, never looser) and
    `resend_at` is its start, when the CSMS sends the rest."""
    if not periods:
        raise ValueError("a profile needs at least one period")
    start = now.astimezone(UTC).replace(microsecond=0)
    limit_n = max(1, max_periods or DEFAULT_PERIODS_PER_SCHEDULE)
    kept = list(periods)
    resend_at: datetime | None = None
    if len(kept) > limit_n:
        rest = kept[limit_n - 1 :]
        tight = ChargerBounds(
            min(p.bounds.max_charge_w for p in rest),
            min(p.bounds.max_discharge_w for p in rest),
        )
        ramps = [p.ramp_rate_pct_per_s for p in rest if p.ramp_rate_pct_per_s is not None]
        first = rest[0]
        last = StationPeriod(
            first.start, None, tight, min(ramps) if ramps else None, first.envelope
        )
        kept = [*kept[: limit_n - 1], last]
        resend_at = first.start
    out_periods: list[dict[str, object]] = []
    for p in kept:
        offset = max(0, int((p.start - start).total_seconds()))
        if out_periods and offset <= int(str(out_periods[-1]["startPeriod"])):
            continue  # within the same whole second as the one before (K01.FR.35)
        charge = round(max(0.0, p.bounds.max_charge_w), 1)
        discharge = round(max(0.0, p.bounds.max_discharge_w), 1)
        custom: dict[str, object] = {"vendorId": ENVELOPE_VENDOR_ID, "dischargeLimitW": discharge}
        if p.ramp_rate_pct_per_s is not None:
            custom["rampRatePctPerS"] = float(p.ramp_rate_pct_per_s)
        period: dict[str, object] = {"startPeriod": offset, "limit": charge}
        if ocpp_2_1:
            period["dischargeLimit"] = -discharge if discharge else 0.0
        period["customData"] = custom
        out_periods.append(period)
    in_force = next((p.envelope for p in periods if p.envelope is not None), None)
    profile = {
        "id": ENVELOPE_PROFILE_ID,
        "stackLevel": ENVELOPE_STACK_LEVEL,
        "chargingProfilePurpose": "ChargingStationMaxProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": [
            {
                "id": ENVELOPE_PROFILE_ID,
                "startSchedule": _ocpp_time(start),
                "chargingRateUnit": "W",
                "chargingSchedulePeriod": out_periods,
            }
        ],
        "customData": {
            "vendorId": ENVELOPE_VENDOR_ID,
            "siteId": site_id,
            "source": in_force.source if in_force is not None else None,
            "controlId": in_force.control_id if in_force is not None else None,
        },
    }
    return EnvelopeProfile({"evseId": 0, "chargingProfile": profile}, resend_at)


def clear_payload() -> dict[str, object]:
    """ClearChargingProfile for the envelope profile (a site without an envelope any more)."""
    return {"chargingProfileId": ENVELOPE_PROFILE_ID}


def envelopes_fingerprint(envelopes: Sequence[OperatingEnvelope]) -> str:
    """Identifies a site's set of envelopes: whether what a station holds is still current."""
    rows = sorted(
        json.dumps(
            [
                e.source,
                e.control_id,
                e.is_default,
                e.start.isoformat(),
                e.end.isoformat() if e.end else None,
                e.export_limit_w,
                e.import_limit_w,
                e.generation_limit_w,
                e.load_limit_w,
                e.energize,
                e.connect,
                e.ramp_rate_pct_per_s,
                e.ramp_time_s,
            ]
        )
        for e in envelopes
    )
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()[:16]


def announced_state(
    envelopes: Sequence[OperatingEnvelope], station_ids: Sequence[str], now: datetime
) -> str:
    """What the change listeners are called for: the site's envelopes, its stations (a
    station joining or leaving changes every share) and the envelopes in force at `now` (one
    starting or ending by its own time changes the bounds with nothing stored). With none in
    force the state is the one before the in-force part existed: an upgrade re-announces only
    the sites with an envelope in force."""
    lines = [envelopes_fingerprint(envelopes), *sorted(station_ids)]
    in_force = envelopes_in_force(envelopes, now)
    if in_force:
        lines.append(f"in force {envelopes_fingerprint(in_force)}")
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]
