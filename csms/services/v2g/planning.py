"""Planning: what-if plans (the LP in a worker thread) and sending a plan as the TxProfile."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import replace
from datetime import datetime, timedelta

from csms.domain.errors import CsmsError, InvalidRequest, NotFound, UnknownStation
from csms.domain.v2g_records import (
    PlanRecord,
)
from csms.persistence import repositories as repo
from csms.persistence.repositories import v2g as vrepo
from csms.services.v2g.checks import in_time_range, within_horizon
from csms.services.v2g.prices import PricesPart
from csms.services.v2g.profiles import (
    PLAN_PROFILE_ID,
    PLAN_STACK_LEVEL,
)
from csms.services.v2g.records import (
    PlanRequest,
    SentPlan,
    SessionContext,
    VehiclePlanRequest,
)
from csms.services.v2g.rules import (
    plan_to_json,
)
from csms.services.v2g.v2x import V2xPart
from csms.v2g import (
    PlanError,
    PlanInputs,
    SiteLimits,
    SitePlan,
    VehicleSession,
    optimize,
    to_tx_profile,
)
from csms.v2g.envelope_caps import clip_plan
from csms.v2g.v2x import plan_to_v21_profile

log = logging.getLogger(__name__)


class PlanningPart(V2xPart, PricesPart):
    async def plan(self, request: PlanRequest) -> tuple[SitePlan, list[SessionContext]]:
        """What-if: plan the given vehicles (a site when several), send nothing."""
        now = in_time_range(request.now or self._clock(), "now")
        if not request.vehicles:
            raise InvalidRequest("give at least one vehicle")
        horizon = self.settings.max_horizon_h
        sessions: list[VehicleSession] = []
        contexts: list[SessionContext] = []
        for k, item in enumerate(request.vehicles):
            record = await self.get_vehicle(item.vehicle_id)
            ctx = await self.session_context(record, now)
            if item.departure is not None:
                in_time_range(item.departure, f"vehicles[{k}].departure")
                ctx = replace(ctx, departure=item.departure, departure_source="request")
            if ctx.departure_source in ("request", "api"):
                # The user's own departure: beyond the horizon is an error naming the limit.
                within_horizon(now, ctx.departure, horizon, f"vehicles[{k}].departure")
            elif ctx.departure > now + timedelta(hours=horizon):
                ctx = replace(ctx, departure=now + timedelta(hours=horizon))
            if item.arrival is not None:
                in_time_range(item.arrival, f"vehicles[{k}].arrival")
            if item.target_soc is not None:
                ctx = replace(ctx, target_soc=item.target_soc)
            contexts.append(ctx)
            try:
                session = ctx.session(item.soc)
                if item.arrival is not None:
                    session = replace(session, arrival=item.arrival)
            except ValueError as exc:
                raise InvalidRequest(str(exc)) from exc
            session = await self.with_ev_limits(ctx, session)
            # Within the site's operating envelope (issue 18): a hard bound below the plan.
            session = await self.within_envelope(ctx.vehicle.station_id, session, now)
            sessions.append(session)
        last_departure = max(s.departure for s in sessions)
        prices = request.prices or await self._prices_for(now, last_departure)
        base = request.site_base_kw
        if base is not None:
            if len(base) < len(prices):
                base = (*base, *([0.0] * (len(prices) - len(base))))
            base = tuple(base[: len(prices)])
        try:
            inputs = PlanInputs(
                now=now,
                prices=prices,
                sessions=tuple(sessions),
                site_limits=SiteLimits(request.import_limit_kw, request.export_limit_kw),
                site_base_kw=base,
            )
            site = await asyncio.to_thread(optimize, inputs)
        except (ValueError, PlanError) as exc:
            raise InvalidRequest(f"no plan: {exc}") from exc
        # The last guard: whatever the solver returned, no interval leaves the envelope.
        by_id = {s.vehicle_id: s for s in sessions}
        clipped = {k: clip_plan(p, by_id[k]) for k, p in site.vehicles.items()}
        if any(clipped[k] is not p for k, p in site.vehicles.items()):
            site = replace(site, vehicles=clipped)
        return site, contexts

    async def optimize_station(
        self, station_id: str, *, vehicle_id: str | None = None, now: datetime | None = None
    ) -> SentPlan:
        """Plan the vehicle linked to the station and send the plan as its TxProfile."""
        record = await self._station_vehicle(station_id, vehicle_id)
        moment = now or self._clock()
        ctx = await self.session_context(record, moment)
        tx = ctx.transaction
        if tx is None or tx.evse_id is None:
            raise InvalidRequest(f"station {station_id!r} has no active transaction to plan for")
        site, _ = await self.plan(PlanRequest((VehiclePlanRequest(record.id),), now=moment))
        plan = site.vehicles[record.id]
        if not plan.power_kw:
            raise InvalidRequest(f"nothing to plan: {'; '.join(plan.warnings)}")
        native = await self.is_v21(station_id)
        try:
            if native:  # 2.1: native V2X operation modes
                caps = await self.capabilities(station_id)
                profile = plan_to_v21_profile(
                    plan,
                    PLAN_PROFILE_ID,
                    tx.transaction_id,
                    PLAN_STACK_LEVEL,
                    await self.power_bounds(ctx),
                    modes=caps.operation_modes if caps.enabled and caps.operation_modes else None,
                )
            else:  # 2.0.1: negative limit = discharge
                profile = to_tx_profile(plan, PLAN_PROFILE_ID, tx.transaction_id, PLAN_STACK_LEVEL)
        except ValueError as exc:  # e.g. more periods than a schedule may hold
            raise InvalidRequest(f"plan cannot be sent: {exc}") from exc
        payload = {"evseId": tx.evse_id, "chargingProfile": profile}
        status, info, reason = "failed", None, None
        try:
            answer = await self._commands.send(station_id, "SetChargingProfile", payload)
            status, info = str(answer.get("status")), answer.get("statusInfo")
        except CsmsError as exc:
            reason = str(exc)
            raise
        finally:
            stored = plan_to_json(plan)
            stored["departure_source"] = ctx.departure_source
            record_ = PlanRecord(
                vehicle_id=record.id,
                planned_at=moment,
                status=status,
                plan=stored,
                station_id=station_id,
                evse_id=tx.evse_id,
                transaction_id=tx.transaction_id,
                reason=reason or (json.dumps(info) if info else None),
            )
            plan_id = await self._db.write(lambda c: vrepo.insert_plan(c, record_, moment))
        if status == "Accepted" and native:
            try:  # the plan went out; a refused notice must not undo it
                await self.restrict_transfer_if_needed(station_id, ctx)
            except CsmsError as exc:
                log.info("NotifyAllowedEnergyTransfer to %s failed: %s", station_id, exc)
        return SentPlan(
            plan, station_id, tx.evse_id, tx.transaction_id, status, info, profile, plan_id
        )

    async def current_plan(self, station_id: str) -> PlanRecord:
        async with self._db.read() as conn:
            if await repo.get_station(conn, station_id) is None:
                raise UnknownStation(station_id)
            found = await vrepo.latest_plan(conn, station_id=station_id)
        if found is None:
            raise NotFound(f"no V2G plan for station {station_id!r} yet")
        return found
