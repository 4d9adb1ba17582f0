"""A site's operating envelope as an OCPP 2.1 DER control (issue 18): the station's share of the
envelope's discharge bound as SetDERControl LimitMaxDischarge (R04), next to the
ChargingStationMaxProfile that stays the hard bound (csms.domain.envelopes). Pure.

- controlType LimitMaxDischarge, isDefault false, priority 0 (the highest: the network's limit
  wins over any other LimitMaxDischarge the operator set), controlId derived from the site, so
  every re-send replaces the control the station holds under that id (rather than adding one
  per change; R04.FR.09-11 then pick it over the default and lower-priority controls).
- pctMaxDischargePower: the station's discharge share of the period in force / its rated
  discharge power x 100, rounded down to 0.01 % and bounded to 0..100 (a station rated lower
  than the CSMS assumes ends up tighter, never looser).
- startTime: the envelope's start (or now, if it starts later than the period, i.e. several
  envelopes merged); duration: to the end of the period in force, whole seconds rounded down;
  absent when the period is open-ended. The CSMS sends the next period's control when this one
  ends (`until`).
- No envelope in force (a gap between envelopes, or none at all): nothing to set, the control
  is cleared (ClearDERControl by controlId, csms.services.envelope_der).

setGradW is not sent as a Gradients control: GradientType has no startTime/duration (it would
outlive the envelope it came from unless cleared in time) and its `gradient` is a ramp time in
seconds, not the %/s of setGradW; the envelope's ramp reaches the agent in the profile's
customData instead (envelope_wire.md), and the agent answers Gradients NotSupported.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from csms.domain.envelopes import StationPeriod

CONTROL_TYPE = "LimitMaxDischarge"
PRIORITY = 0


def control_id(site_id: str) -> str:
    """The LimitMaxDischarge controlId of a site's envelope (<= 36 characters, schema)."""
    digest = hashlib.sha256(site_id.encode()).hexdigest()[:24]
    return f"envelope-{digest}"


def pct_of_rating(share_w: float, rated_w: float) -> float:
    """share_w / rated_w x 100, rounded down to 0.01 % and bounded to 0..100 (0 when either
    is unusable: a limit must never come out looser than the share)."""
    if not (math.isfinite(share_w) and math.isfinite(rated_w)) or rated_w <= 0 or share_w <= 0:
        return 0.0
    return min(100.0, math.floor(share_w / rated_w * 10_000) / 100)


@dataclass(frozen=True)
class DerLimit:
    """What to send one 2.1 station now: a SetDERControl payload, or None (clear)."""

    payload: dict[str, Any] | None
    until: datetime | None  # when the period in force ends: send the next one then


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def envelope_der_limit(
    periods: Sequence[StationPeriod], rated_discharge_w: float, site_id: str, now: datetime
) -> DerLimit:
    """The LimitMaxDischarge for the period of `periods` in force at `now` (the first one, as
    csms.domain.envelopes.station_timelines builds them from `now`)."""
    current = next((p for p in periods if p.start <= now and (p.end is None or now < p.end)), None)
    if current is None or current.envelope is None:
        return DerLimit(None, None if current is None else current.end)
    start = current.envelope.start if current.envelope.start <= current.start else current.start
    settings: dict[str, Any] = {
        "priority": PRIORITY,
        "pctMaxDischargePower": pct_of_rating(current.bounds.max_discharge_w, rated_discharge_w),
        "startTime": _iso(start),
    }
    if current.end is not None:
        settings["duration"] = max(0, math.floor((current.end - start).total_seconds()))
    payload = {
        "isDefault": False,
        "controlId": control_id(site_id),
        "controlType": CONTROL_TYPE,
        "limitMaxDischarge": settings,
    }
    return DerLimit(payload, current.end)
