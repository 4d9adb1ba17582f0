"""Grid services a station holds until they end, kept within its envelope share (issue 18):
an armed aFRR curve, a 2.1 LocalFrequency profile, a local-control hand-over.

Each is held to the station's share of its site's operating envelope when sent; what is needed
to build it again (csms.v2g.armed_services.ArmedService) is kept, per station and kind, in the
`armed_grid_services` row of v2g_rule_states (changed under its row lock, so every node sees
the same). When the site's envelope changes (EnvelopeService listener), each station of that
site holding one gets it again: same profile id (the station replaces the old one), the time it
has left, its bounds narrowed to the new share, or the vehicle's own once no envelope applies.
A change that leaves a station's bounds as they were sends it nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from csms.domain.errors import CsmsError
from csms.persistence.repositories import v2g as vrepo
from csms.services.common import ocpp_datetime
from csms.services.v2g.fleet import FleetPart, Plugged
from csms.services.v2g.profiles import (
    AFRR_PROFILE_ID,
    AFRR_STACK_LEVEL,
    FREQUENCY_PROFILE_ID,
    FREQUENCY_STACK_LEVEL,
    LOCAL_CONTROL_PROFILE_ID,
    LOCAL_CONTROL_STACK_LEVEL,
)
from csms.v2g.armed_services import (
    ArmedKind,
    ArmedService,
    pruned,
    read_armed,
    resend_due,
    time_left_s,
)
from csms.v2g.envelope_caps import held_bounds
from csms.v2g.v2x import (
    OperationMode,
    PowerBounds,
    afrr_period,
    frequency_period,
    local_control_period,
    v21_profile,
)

log = logging.getLogger(__name__)

ARMED_RULE = "armed_grid_services"  # {station id: {kind: ArmedService.as_dict()}}


def vehicle_bounds(ctx: Plugged) -> PowerBounds:
    """The vehicle's own bounds (W), as aFRR and local control send them: no discharge with
    V2G switched off."""
    v = ctx.vehicle
    discharge_kw = v.max_discharge_kw if v.v2g_enabled else 0.0
    return PowerBounds(v.max_charge_kw * 1000.0, discharge_kw * 1000.0)


class ArmedPart(FleetPart):
    async def remember_armed(
        self, station_id: str, kind: ArmedKind, armed: ArmedService | None
    ) -> None:
        """Keep (or, with None, forget) what the station holds of `kind`; the station's
        entries that ended are dropped on the way."""
        now = self._clock()

        async def op(conn: AsyncConnection) -> None:
            state = await vrepo.lock_rule_state(conn, ARMED_RULE, now)
            entries = pruned(state.get(station_id) or {}, now)
            if armed is None:
                entries.pop(kind.value, None)
            else:
                entries[kind.value] = armed.as_dict()
            if entries:
                state[station_id] = entries
            else:
                state.pop(station_id, None)
            await vrepo.save_rule_state(conn, ARMED_RULE, state, now)

        await self._db.write(op)

    async def armed_envelope_changed(
        self, site_id: str, station_ids: Sequence[str], *, frequency_held: Collection[str] = ()
    ) -> list[dict[str, Any]]:
        """The site's envelope changed: each of its stations holding an armed service gets it
        again within the new share (once per change; nothing when its bounds stay the same).
        `frequency_held`: stations whose frequency profile slot now holds a re-sent
        under-frequency event (their LocalFrequency profile is not sent over it). One result
        per message sent, each with `limited_by: "envelope"` where the share cut it."""
        now = self._clock()
        async with self._db.read() as conn:
            state = await vrepo.get_rule_state(conn, ARMED_RULE) or {}
        wanted = [s for s in dict.fromkeys(station_ids) if s in state]
        if not wanted:
            return []
        # (station, EVSE) -> the vehicle there with its running transaction
        contexts = {(c.vehicle.station_id, c.transaction.evse_id): c for c in await self._plugged()}
        jobs = []
        for station_id in wanted:
            for kind, armed in read_armed(state[station_id]).items():
                ctx = contexts.get((station_id, armed.evse_id))
                if ctx is None:
                    continue
                if kind is ArmedKind.LOCAL_FREQUENCY and station_id in frequency_held:
                    continue
                bounds, limited = await self._armed_bounds(ctx, armed, now)
                if resend_due(armed, bounds, now, ctx.transaction.transaction_id):
                    jobs.append(self._resend(ctx, armed, bounds, limited, now))
        sent = [found for found in await asyncio.gather(*jobs) if found is not None]
        await self._after_resend(wanted, sent, now)
        results = [result for _, result in sent]
        for result in results:
            result["site_id"] = site_id
        return results

    async def _armed_bounds(
        self, ctx: Plugged, armed: ArmedService, now: datetime
    ) -> tuple[PowerBounds, bool]:
        """The bounds the service carries from `now`: the vehicle's, narrowed to the station's
        share over the time it has left (LocalFrequency, without an end: the share now)."""
        if armed.kind is ArmedKind.LOCAL_FREQUENCY:
            record = ctx.vehicle
            vehicle = await self.power_bounds(await self.session_context(record, now))
            end = now + timedelta(seconds=1)
        else:
            vehicle = vehicle_bounds(ctx)
            end = armed.until or now + timedelta(seconds=1)
        share = await self.power_caps(ctx.vehicle.station_id, now)
        return held_bounds(vehicle, share, now, end)

    async def _resend(
        self, ctx: Plugged, armed: ArmedService, bounds: PowerBounds, limited: bool, now: datetime
    ) -> tuple[ArmedService, dict[str, Any]] | None:
        station_id = ctx.vehicle.station_id
        assert station_id is not None
        left = time_left_s(armed, now)
        duration_s = None if left is None else max(1, round(left))
        result: dict[str, Any] = {
            "station_id": station_id,
            "evse_id": armed.evse_id,
            "service": armed.kind.value,
            "duration_s": duration_s,
            "max_charge_w": round(bounds.max_charge_w, 1),
            "max_discharge_w": round(bounds.max_discharge_w, 1),
        }
        if limited:
            result["limited_by"] = "envelope"
        try:
            if armed.kind is ArmedKind.AFRR:
                signal = tuple((int(s), w) for s, w in armed.curve)
                period = afrr_period(signal, bounds, baseline_w=armed.baseline_w)
                ids = (AFRR_PROFILE_ID, AFRR_STACK_LEVEL)
            elif armed.kind is ArmedKind.LOCAL_FREQUENCY:
                period = frequency_period(armed.curve, bounds)
                ids = (FREQUENCY_PROFILE_ID, FREQUENCY_STACK_LEVEL)
            else:
                period = local_control_period(
                    OperationMode(armed.mode or ""),  # ValueError: none stored
                    bounds,
                    max_charge_w=armed.max_charge_w,
                    max_discharge_w=armed.max_discharge_w,
                )
                ids = (LOCAL_CONTROL_PROFILE_ID, LOCAL_CONTROL_STACK_LEVEL)
            profile = v21_profile(
                [period],
                profile_id=ids[0],
                stack_level=ids[1],
                start_schedule=ocpp_datetime(now),
                duration_s=duration_s,
                transaction_id=armed.transaction_id,
            )
        except ValueError as exc:  # stored values the rules refuse now: nothing to send
            log.warning("station %s: %s not re-sent: %s", station_id, armed.kind.value, exc)
            return None
        try:
            answer = await self._commands.send(
                station_id,
                "SetChargingProfile",
                {"evseId": armed.evse_id, "chargingProfile": profile},
            )
            result["status"] = str(answer.get("status"))
        except CsmsError as exc:
            result["status"], result["error"] = "failed", str(exc)
        return armed, result

    async def _after_resend(
        self,
        station_ids: Sequence[str],
        sent: list[tuple[ArmedService, dict[str, Any]]],
        now: datetime,
    ) -> None:
        """Remember the bounds each accepted re-send carried (unless the service was armed
        anew meanwhile) and drop what ended or whose transaction ended; an aFRR re-send is
        recorded in the dispatch history like the arming ("afrr-curve")."""
        accepted = {
            (r["station_id"], armed.kind): (
                armed,
                PowerBounds(r["max_charge_w"], r["max_discharge_w"]),
            )
            for armed, r in sent
            if r.get("status") == "Accepted"
        }

        async def op(conn: AsyncConnection) -> None:
            state = await vrepo.lock_rule_state(conn, ARMED_RULE, now)
            held = [s for s in station_ids if s in state]
            active = await vrepo.active_transactions(conn, set(held))
            for station_id in held:
                running = [t.transaction_id for t in active.get(station_id, [])]
                entries = pruned(state[station_id], now, running)
                for kind, armed in read_armed(entries).items():
                    found = accepted.get((station_id, kind))
                    if found is not None and found[0] == armed:
                        entries[kind.value] = replace(armed, sent=found[1]).as_dict()
                if entries:
                    state[station_id] = entries
                else:
                    state.pop(station_id, None)
            await vrepo.save_rule_state(conn, ARMED_RULE, state, now)

        await self._db.write(op)
        for armed, result in sent:
            if armed.kind is ArmedKind.AFRR:
                entry = {**result, "kw": 0.0, "resent": "envelope"}
                await self._record_dispatch(
                    "afrr-curve", now, result["duration_s"], 0.0, 0.0, {result["station_id"]: entry}
                )
