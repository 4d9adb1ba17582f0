"""Fleet: flexibility of the connected vehicles, bids, dispatch and its history."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from csms.domain.errors import CsmsError, InvalidRequest
from csms.domain.models import Transaction
from csms.domain.v2g_records import (
    DispatchRecord,
    VehicleRecord,
)
from csms.persistence.repositories import v2g as vrepo
from csms.services.v2g.checks import bounded, in_time_range
from csms.services.v2g.profiles import (
    DISPATCH_PROFILE_ID,
    DISPATCH_STACK_LEVEL,
    SOC,
)
from csms.services.v2g.records import (
    DispatchOutcome,
    SessionContext,
)
from csms.services.v2g.rules import (
    nonzero_share,
)
from csms.services.v2g.v2x import V2xPart
from csms.v2g import (
    VehicleSession,
    aggregate,
    dispatch,
    make_bid,
    vehicle_flexibility,
)
from csms.v2g import bounds as b
from csms.v2g.envelope_caps import envelope_share_w, held_power_w, narrowed_session
from csms.v2g.fleet import DISPATCH_METHODS, Bid, FleetFlexibility, Flexibility

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plugged:
    """What the frequency rule needs of a connected vehicle (a SessionContext without the
    departure and target, which cost most of its reads)."""

    vehicle: VehicleRecord
    transaction: Transaction
    soc: float


class FleetPart(V2xPart):
    async def _connected(self, now: datetime) -> list[SessionContext]:
        """Vehicles plugged in with an active transaction and a known SoC."""
        out = []
        for record in await self.list_vehicles():
            if record.station_id is None:
                continue
            ctx = await self.session_context(record, now)
            if (
                ctx.transaction is not None
                and ctx.transaction.evse_id is not None
                and ctx.soc is not None
            ):
                out.append(ctx)
        return out

    async def _plugged(self) -> list[Plugged]:
        """The vehicles `_connected` gives, with the same transaction and SoC, in a few reads:
        one for the vehicles, one for the running transactions of their stations, one or two
        for each vehicle's latest SoC."""
        out: list[Plugged] = []
        async with self._db.read() as conn:
            linked = [(v.station_id, v) for v in await vrepo.list_vehicles(conn) if v.station_id]
            if not linked:
                return out
            active = await vrepo.active_transactions(conn, {s for s, _ in linked})
            for station_id, record in linked:
                tx = next(
                    (
                        t
                        for t in active.get(station_id, [])
                        if record.evse_id is None or t.evse_id in (None, record.evse_id)
                    ),
                    None,
                )
                if tx is None or tx.evse_id is None or not record.v2g_enabled:
                    continue  # V2G switched off: no frequency response either
                found = await vrepo.latest_measurand(
                    conn, station_id, SOC, record.evse_id, tx.transaction_id
                ) or await vrepo.latest_measurand(conn, station_id, SOC, record.evse_id)
                if found is not None:
                    out.append(Plugged(record, tx, found[1] / 100.0))
        return out

    async def _enveloped(
        self, ctx: SessionContext, now: datetime, duration: timedelta
    ) -> VehicleSession:
        """The vehicle's session with its power narrowed to its station's share of the site's
        operating envelope over the response (issue 18)."""
        session = await self.within_envelope(ctx.vehicle.station_id, ctx.session(), now)
        return narrowed_session(session, now, now + duration)

    async def flexibility(
        self, duration: timedelta, now: datetime | None = None
    ) -> tuple[list[Flexibility], FleetFlexibility]:
        moment = now or self._clock()
        flex = [
            vehicle_flexibility(await self._enveloped(ctx, moment, duration), moment, duration)
            for ctx in await self._connected(moment)
        ]
        fleet = aggregate(flex) if flex else aggregate([])
        if not flex:
            fleet = replace(fleet, duration=duration)
        return flex, fleet

    async def bids(
        self, duration: timedelta, response_time_s: float, min_bid_kw: float
    ) -> tuple[FleetFlexibility, dict[str, Bid | None]]:
        bounded(response_time_s, b.RESPONSE_TIME_S, "response_time_s")
        bounded(min_bid_kw, b.MIN_BID_KW, "min_bid_kw")
        _, fleet = await self.flexibility(duration)
        return fleet, {
            direction: make_bid(fleet, direction, response_time_s, min_bid_kw)
            for direction in ("raise", "lower")
        }

    async def _send_power(
        self,
        ctx: SessionContext | Plugged,
        power_w: float,
        duration_s: int,
        profile_id: int,
        stack_level: int,
        now: datetime,
        *,
        frequency: bool = False,
    ) -> dict[str, Any]:
        """A TxProfile running the vehicle at `power_w` for `duration_s`, in the station's own
        version's means (v2x.py: 2.1 operation modes, or the 2.0.1 negative limit), held within
        the station's envelope share over the whole duration (issue 18): a cut power is sent
        and recorded as `kw`, with `requested_kw` and `limited_by: "envelope"`."""
        tx = ctx.transaction
        assert tx is not None and tx.evse_id is not None and ctx.vehicle.station_id is not None
        caps = await self.power_caps(ctx.vehicle.station_id, now)
        end = now + timedelta(seconds=duration_s)
        sent_w, limited = held_power_w(power_w, caps, now, end)
        result: dict[str, Any] = {
            "station_id": ctx.vehicle.station_id,
            "evse_id": tx.evse_id,
            "transaction_id": tx.transaction_id,
            "kw": sent_w / 1000.0,
        }
        if limited:
            result.update(requested_kw=power_w / 1000.0, limited_by="envelope")
        try:
            profile, version = await self.power_profile(
                ctx,
                sent_w,
                duration_s,
                profile_id,
                stack_level,
                now,
                frequency=frequency,
                share_w=envelope_share_w(caps, now, end),
            )
            result["ocpp_version"] = version.label
            answer = await self._commands.send(
                ctx.vehicle.station_id,
                "SetChargingProfile",
                {"evseId": tx.evse_id, "chargingProfile": profile},
            )
            result["status"] = str(answer.get("status"))
        except CsmsError as exc:
            result["status"] = "failed"
            result["error"] = str(exc)
        return result

    async def dispatch(
        self,
        target_kw: float,
        duration_s: int,
        now: datetime | None = None,
        method: str = "proportional",
    ) -> DispatchOutcome:
        """Split a fleet target over the connected vehicles (proportional to available power
        by default, or water-filling) and send each its share."""
        if duration_s <= 0:
            raise InvalidRequest("duration_s must be > 0")
        if method not in DISPATCH_METHODS:
            raise InvalidRequest(f"method must be one of {', '.join(DISPATCH_METHODS)}")
        bounded(target_kw, b.SITE_POWER_KW, "target_kw")
        moment = now or self._clock()
        contexts = await self._connected(moment)
        if not contexts:
            raise InvalidRequest("no connected vehicle with an active transaction and SoC")
        duration = timedelta(seconds=duration_s)
        flex = [
            vehicle_flexibility(await self._enveloped(ctx, moment, duration), moment, duration)
            for ctx in contexts
        ]
        allocation = dispatch(target_kw, flex, method=method)
        chosen = nonzero_share(contexts, allocation.per_vehicle_kw)
        results = await asyncio.gather(
            *(
                self._send_power(
                    ctx,
                    allocation.per_vehicle_kw[ctx.vehicle.id] * 1000.0,
                    duration_s,
                    DISPATCH_PROFILE_ID,
                    DISPATCH_STACK_LEVEL,
                    moment,
                )
                for ctx in chosen
            )
        )
        # the history keeps the split method with each vehicle's entry (no schema change)
        per_vehicle = {
            ctx.vehicle.id: {**r, "method": method} for ctx, r in zip(chosen, results, strict=True)
        }
        return await self._record_dispatch(
            "dispatch", moment, duration_s, target_kw, allocation.delivered_kw, per_vehicle
        )

    async def _record_dispatch(
        self,
        kind: str,
        moment: datetime,
        duration_s: int,
        requested_kw: float,
        allocated_kw: float,
        per_vehicle: dict[str, dict[str, Any]],
    ) -> DispatchOutcome:
        accepted = sum(r["kw"] for r in per_vehicle.values() if r.get("status") == "Accepted")
        record = DispatchRecord(
            kind, moment, duration_s, requested_kw, allocated_kw, accepted, per_vehicle
        )
        dispatch_id = await self._db.write(lambda c: vrepo.insert_dispatch(c, record, moment))
        return DispatchOutcome(dispatch_id, requested_kw, allocated_kw, accepted, per_vehicle)

    async def dispatches(
        self, start: datetime | None = None, end: datetime | None = None
    ) -> list[tuple[DispatchRecord, float | None]]:
        """Recorded dispatches with the power measured during each (kW, meter values:
        Power.Active.Import - Power.Active.Export averaged over the window; None = no data)."""
        for moment, name in ((start, "from"), (end, "to")):
            if moment is not None:
                in_time_range(moment, name)
        async with self._db.read() as conn:
            records = await vrepo.list_dispatches(conn, start, end)
            out: list[tuple[DispatchRecord, float | None]] = []
            for record in records:
                window_end = record.started_at + timedelta(seconds=record.duration_s)
                total, seen = 0.0, False
                for item in record.per_vehicle.values():
                    samples = await vrepo.samples_between(
                        conn,
                        item["station_id"],
                        ("Power.Active.Import", "Power.Active.Export"),
                        record.started_at,
                        window_end,
                        item.get("evse_id"),
                    )
                    imp = [s[2] for s in samples if s[1] == "Power.Active.Import"]
                    exp = [s[2] for s in samples if s[1] == "Power.Active.Export"]
                    if imp or exp:
                        seen = True
                        mean_imp = sum(imp) / len(imp) if imp else 0.0
                        mean_exp = sum(exp) / len(exp) if exp else 0.0
                        total += (mean_imp - mean_exp) / 1000.0
                out.append((record, total if seen else None))
        return out
