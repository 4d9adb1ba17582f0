"""The operating envelope in force on one EVSE (CSIP-AUS, issue 18), for the safety supervisor.

The CSMS sends a site's envelope as a ChargingStationMaxProfile tagged with customData vendorId
"org.openv2g.envelope" (v2g_shared.schedule.envelope), on OCPP 2.0.1 and 2.1 alike. The
composite schedule already bounds the setpoint with it; this module reads the same profile
again for the supervisor, which applies it as a local limit on every 100 ms tick (after the
frequency response, DER controls and anything else that moves the setpoint), with its ramp.

The profile is stored like every other one (agent storage, restored at start) and is never
dropped while offline: maxOfflineDuration does not lapse it (`keeps_offline`), because the
envelope only tightens and the CSMS already put the network's default envelope in its last,
open-ended period. Pure: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from v2g_shared.schedule import (
    EnvelopeBounds,
    InstalledProfile,
    envelope_bounds,
    is_envelope_profile,
    next_breakpoint,
    period_in_force,
)
from v2g_shared.schedule.envelope import is_envelope_period


def keeps_offline(installed: InstalledProfile) -> bool:
    """An envelope profile applies offline whatever its maxOfflineDuration says."""
    return is_envelope_profile(installed.profile)


def envelope_profiles(profiles: Iterable[InstalledProfile], evse_id: int) -> list[InstalledProfile]:
    return [i for i in profiles if i.evse_id in (0, evse_id) and is_envelope_profile(i.profile)]


def envelope_in_force(
    profiles: Sequence[InstalledProfile], evse_id: int, now: datetime, volts_per_a: float
) -> EnvelopeBounds | None:
    """The tightest envelope of every envelope profile in force on `evse_id` at `now` (W);
    None when none is in force. A period without the envelope's customData (refused by
    validation) reads as the composite reads it: the limit bounds both directions."""
    found: EnvelopeBounds | None = None
    for installed in envelope_profiles(profiles, evse_id):
        hit = period_in_force(installed.profile, now)
        if hit is None or hit[0].limit is None:
            continue
        period, unit = hit
        bounds = envelope_bounds(period, unit, volts_per_a)
        if not is_envelope_period(period):
            bounds = EnvelopeBounds(bounds.max_charge_w, bounds.max_charge_w, None)
        found = bounds if found is None else found.tightest(bounds)
    return found


def envelope_next_change(
    profiles: Sequence[InstalledProfile], evse_ids: Sequence[int], evse_id: int, now: datetime
) -> datetime | None:
    """When an envelope period in force may change (its values need not move the composite)."""
    mine = envelope_profiles(profiles, evse_id)
    return next_breakpoint(mine, {}, evse_ids, now=now) if mine else None
