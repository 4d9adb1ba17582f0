"""Dynamic operating envelopes (CSIP-AUS, issue 18): the limits a distribution network gives a
site, and what they leave each of the site's stations (pure).

A site's envelope comes from a CSIP-AUS DERControl (or its DefaultDERControl) or from an
operator. Its limits, all W and magnitudes (>= 0):
- export_limit_w / import_limit_w: at the site's connection point (opModExpLimW / ImpLimW);
- generation_limit_w / load_limit_w: of the DER itself, here the site's chargers together
  (opModGenLimW / LoadLimW);
- energize / connect False: no energy transfer at all (opModEnergize / opModConnect);
- ramp_rate_pct_per_s: setGradW / 100, % of rated power per second.

`envelope_at` picks the envelope in force; `charger_bounds` turns it into the charge and
discharge the site's chargers may do together, given what the rest of the site draws
(household load minus solar) when that is known; `share` splits those bounds between the
stations. Nothing here reads the clock or does I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime

MAX_ENVELOPE_W = 1e7  # 10 MW: far above any site this project serves; larger is an error
MAX_RAMP_PCT_PER_S = 100.0


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
        ):
            values[name] = _tightest(values[name], getattr(other, name))
        for name in ("energize", "connect"):
            mine, theirs = values[name], getattr(other, name)
            values[name] = False if False in (mine, theirs) else (mine or theirs)
    return OperatingEnvelope(**values)


def envelope_at(schedule: Sequence[OperatingEnvelope], t: datetime) -> OperatingEnvelope | None:
    """The envelope in force at `t`: the non-default ones covering `t` (their source resolved
    primacy and supersede; if several still overlap, the tightest of each), else the newest
    default covering `t`, else None."""
    active = [e for e in schedule if not e.is_default and e.covers(t)]
    if active:
        return _merge(active)
    defaults = [e for e in schedule if e.is_default and e.covers(t)]
    if defaults:
        return max(defaults, key=lambda e: e.received_at)
    return None


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
