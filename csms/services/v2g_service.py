"""V2G use cases: vehicles and their session context, prices, planning and sending plans,
fleet flexibility/bids/dispatch, central and local frequency response, backup, economics.

The pure logic is csms.v2g; this module reads and writes the database, runs the LP in a worker
thread (`asyncio.to_thread`) and sends OCPP commands through the CommandService.

Stack levels and profile ids the V2G services use for their TxProfiles (each replaces its own
previous profile on the EVSE): the plan at PLAN_STACK_LEVEL, a fleet dispatch above it, a
frequency event above both; dispatch and frequency profiles have a `duration`, so the station
falls back to the plan by itself when they end.

Several nodes (one database, a broker router): the re-planning loop of each node re-plans only
the vehicles whose station's websocket that node holds (`CommandRouter.is_local`), so each
vehicle is planned by one node per round, and a station that moves is picked up by its new
node; a price upload through any node counts (its time is read from the database). The central
under-frequency rule keeps its state in the database (`v2g_rule_states`, one row for the rule),
changed by read-modify-write under that row's lock, so samples that alternate between nodes are
one stream: an event fires once and is cleared once, whichever node answers each sample.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from csms.domain.errors import AlreadyExists, CsmsError, InvalidRequest, NotFound, UnknownStation
from csms.domain.models import Transaction, TransactionState
from csms.persistence import repositories as repo
from csms.persistence import v2g_repositories as vrepo
from csms.persistence.database import Database
from csms.persistence.v2g_repositories import (
    DispatchRecord,
    PlanRecord,
    PriceRow,
    StationV2gSettings,
    VehicleRecord,
)
from csms.routing.base import CommandRouter
from csms.services.common import Clock, ocpp_datetime, utcnow
from csms.services.v2g_models import (
    BACKUP_MESSAGE_ID,
    BACKUP_VENDOR_ID,
    DISPATCH_PROFILE_ID,
    DISPATCH_STACK_LEVEL,
    EXPORT_REGISTER,
    FREQUENCY_PROFILE_ID,
    FREQUENCY_STACK_LEVEL,
    IMPORT_REGISTER,
    PLAN_PROFILE_ID,
    PLAN_STACK_LEVEL,
    SOC,
    BackupState,
    CommandSender,
    DispatchOutcome,
    EconomicsReport,
    PlanRequest,
    SentPlan,
    SessionContext,
    V2gSettings,
    VehiclePlanRequest,
    bounded,
    departure_from_needs,
    expected_soc,
    in_time_range,
    nonzero_share,
    plan_to_json,
    price_lookup,
    replan_reasons,
    series_from_rows,
    to_vehicle,
    within_horizon,
)
from csms.v2g import (
    FreqWattCurve,
    NemTariff,
    PlanError,
    PlanInputs,
    PriceSeries,
    SessionRecord,
    SiteLimits,
    SitePlan,
    UnderFrequencyEvent,
    UnderFrequencyRule,
    VehicleSession,
    aggregate,
    backup_hours,
    battery_degradation,
    dispatch,
    make_bid,
    optimize,
    parse_nem_price_and_demand,
    payback_years,
    predict_departure,
    to_tx_profile,
    vehicle_flexibility,
)
from csms.v2g import bounds as b
from csms.v2g.economics import DEFAULT_EQUIPMENT_COST_AUD, Economics
from csms.v2g.fleet import DISPATCH_METHODS, Bid, FleetFlexibility, Flexibility
from csms.v2g.frequency import EventSnapshot, EventState
from csms.v2g.prices import PriceFileError

log = logging.getLogger(__name__)

# The row of v2g_rule_states holding the under-frequency rule: {vehicle id: EventSnapshot}.
UNDER_FREQUENCY_RULE = "under_frequency"


@dataclass(frozen=True)
class _Plugged:
    """What the frequency rule needs of a connected vehicle (a SessionContext without the
    departure and target, which cost most of its reads)."""

    vehicle: VehicleRecord
    transaction: Transaction
    soc: float


@dataclass(frozen=True)
class _FrequencyStep:
    """What one sample did to the shared rule state (decided under its row lock)."""

    fired: tuple[str, ...] = ()  # vehicle ids whose event started
    ended: tuple[str, ...] = ()  # vehicle ids whose event stopped before its duration
    error: str | None = None  # the sample was refused (out of time order): nothing changed


class V2gService:
    def __init__(
        self,
        db: Database,
        commands: CommandSender,
        *,
        clock: Clock = utcnow,
        settings: V2gSettings | None = None,
        router: CommandRouter | None = None,
    ) -> None:
        """`router`: the node's command router; with it the re-planning loop plans only the
        vehicles at stations this node holds (without it, every vehicle: one node)."""
        self._db = db
        self._commands = commands
        self._router = router
        self._clock = clock
        self.settings = settings or V2gSettings()
        # Serializes this node's samples (the row lock serializes the nodes).
        self._frequency_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.replans = 0

    def now(self) -> datetime:
        return self._clock()

    # -- lifecycle ------------------------------------------------------------------------------
    def start_background(self) -> None:
        """Start the re-planning loop when `replan_interval_s` > 0 (off by default)."""
        if self.settings.replan_interval_s > 0 and self._task is None:
            self._task = asyncio.create_task(self._replan_loop(), name="v2g-replanner")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    async def _replan_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.replan_interval_s)
            try:
                await self.replan_all()
            except Exception:  # one bad round must not end the loop
                log.exception("V2G re-planning round failed")

    def _holds(self, station_id: str) -> bool:
        """Whether this node re-plans the station's vehicles: it holds the station's websocket
        (always, without a router)."""
        return self._router is None or self._router.is_local(station_id)

    async def replan_all(self) -> dict[str, list[str]]:
        """One re-planning round over the vehicles at stations this node holds: vehicle id ->
        the reasons it was re-planned for."""
        now = self._clock()
        done: dict[str, list[str]] = {}
        async with self._db.read() as conn:
            prices_changed_at = await vrepo.prices_changed_at(conn)
        for record in await self.list_vehicles():
            if record.station_id is None or not self._holds(record.station_id):
                continue
            ctx = await self.session_context(record, now)
            if ctx.transaction is None or ctx.soc is None:
                continue
            async with self._db.read() as conn:
                last = await vrepo.latest_plan(conn, vehicle_id=record.id, sent_only=True)
            reasons = replan_reasons(last, ctx, now, prices_changed_at, self.settings)
            if not reasons:
                continue
            try:
                await self.optimize_station(record.station_id, vehicle_id=record.id)
            except CsmsError as exc:
                log.info("re-plan of %s failed: %s", record.id, exc)
                continue
            self.replans += 1
            done[record.id] = reasons
        return done

    # -- vehicles -------------------------------------------------------------------------------
    async def create_vehicle(self, record: VehicleRecord) -> VehicleRecord:
        to_vehicle(record)  # validates
        await self._check_link(record.station_id, record.evse_id)
        now = self._clock()
        self._check_departure(record, now)
        async with self._db.read() as conn:
            if await vrepo.get_vehicle(conn, record.id) is not None:
                raise AlreadyExists(f"vehicle {record.id!r} already exists")
        await self._db.write(lambda c: vrepo.save_vehicle(c, record, now))
        return await self.get_vehicle(record.id)

    async def get_vehicle(self, vehicle_id: str) -> VehicleRecord:
        async with self._db.read() as conn:
            found = await vrepo.get_vehicle(conn, vehicle_id)
        if found is None:
            raise NotFound(f"unknown vehicle {vehicle_id!r}")
        return found

    async def list_vehicles(self, station_id: str | None = None) -> list[VehicleRecord]:
        async with self._db.read() as conn:
            return await vrepo.list_vehicles(conn, station_id)

    async def update_vehicle(self, vehicle_id: str, **changes: Any) -> VehicleRecord:
        current = await self.get_vehicle(vehicle_id)
        updated = replace(current, **changes)
        to_vehicle(updated)
        if "station_id" in changes or "evse_id" in changes:
            await self._check_link(updated.station_id, updated.evse_id)
        if updated.target_soc is not None:
            bounded(updated.target_soc, b.SOC_FRACTION, "target_soc")
        now = self._clock()
        if "departure" in changes:
            self._check_departure(updated, now)
        await self._db.write(lambda c: vrepo.save_vehicle(c, updated, now))
        return await self.get_vehicle(vehicle_id)

    def _check_departure(self, record: VehicleRecord, now: datetime) -> None:
        if record.departure is not None:
            in_time_range(record.departure, "departure")
            within_horizon(now, record.departure, self.settings.max_horizon_h, "departure")

    async def delete_vehicle(self, vehicle_id: str) -> None:
        if not await self._db.write(lambda c: vrepo.delete_vehicle(c, vehicle_id)):
            raise NotFound(f"unknown vehicle {vehicle_id!r}")

    async def _check_link(self, station_id: str | None, evse_id: int | None) -> None:
        if station_id is None:
            if evse_id is not None:
                raise InvalidRequest("evse_id needs station_id")
            return
        if evse_id is not None and evse_id < 1:
            raise InvalidRequest("evse_id must be >= 1")
        async with self._db.read() as conn:
            if await repo.get_station(conn, station_id) is None:
                raise UnknownStation(station_id)

    async def _station_vehicle(self, station_id: str, vehicle_id: str | None) -> VehicleRecord:
        async with self._db.read() as conn:
            if await repo.get_station(conn, station_id) is None:
                raise UnknownStation(station_id)
            linked = await vrepo.list_vehicles(conn, station_id)
        if vehicle_id is not None:
            linked = [v for v in linked if v.id == vehicle_id]
        if not linked:
            raise InvalidRequest(f"no vehicle is linked to station {station_id!r}")
        return linked[0]

    # -- session context ------------------------------------------------------------------------
    async def session_context(self, record: VehicleRecord, now: datetime) -> SessionContext:
        tx: Transaction | None = None
        soc: float | None = None
        soc_source = "unknown"
        needs: list[tuple[str, datetime, dict[str, Any]]] = []
        history: list[Transaction] = []
        if record.station_id is not None:
            async with self._db.read() as conn:
                active = await repo.list_transactions(
                    conn, 0, 100, record.station_id, TransactionState.ACTIVE
                )
                candidates = [
                    t
                    for t in active.items
                    if record.evse_id is None or t.evse_id in (None, record.evse_id)
                ]
                tx = candidates[0] if candidates else None
                found = await vrepo.latest_measurand(
                    conn,
                    record.station_id,
                    SOC,
                    record.evse_id,
                    tx.transaction_id if tx is not None else None,
                )
                if found is None and tx is not None:
                    found = await vrepo.latest_measurand(
                        conn, record.station_id, SOC, record.evse_id
                    )
                if found is not None:
                    soc, soc_source = found[1] / 100.0, f"meter value at {found[0].isoformat()}"
                needs = await vrepo.latest_event(conn, record.station_id, ["NotifyEVChargingNeeds"])
                history = await vrepo.station_transactions(conn, record.station_id, record.evse_id)
        # 1. the API
        if record.departure is not None and record.departure > now:
            return SessionContext(
                record,
                soc,
                soc_source,
                record.departure,
                record.target_soc
                if record.target_soc is not None
                else self.settings.default_target_soc,
                "api",
                tx,
            )
        # 2. the EV (NotifyEVChargingNeeds of the running transaction's EVSE)
        for _kind, received, payload in needs:
            if record.evse_id is not None and payload.get("evseId") != record.evse_id:
                continue
            if tx is not None and tx.started_at is not None and received < tx.started_at:
                break  # from an earlier session
            departure, target = departure_from_needs(payload, record.capacity_kwh, soc)
            if departure is not None and departure > now:
                # The EV's word, not the user's: beyond the horizon, plan up to the horizon.
                departure = min(departure, now + timedelta(hours=self.settings.max_horizon_h))
                chosen = record.target_soc if record.target_soc is not None else target
                return SessionContext(
                    record,
                    soc,
                    soc_source,
                    departure,
                    chosen if chosen is not None else self.settings.default_target_soc,
                    "ev",
                    tx,
                )
            break
        # 3. predicted from this EVSE's own past sessions (SoC at plug-in/out from their
        # SoC meter values gives the SoC the likely trip needs)
        ended = [t for t in history if t.started_at is not None and t.ended_at is not None]
        bounds: dict[str, tuple[float, float]] = {}
        if ended and record.station_id is not None:
            async with self._db.read() as conn:
                bounds = await vrepo.soc_bounds_by_transaction(
                    conn, record.station_id, [t.transaction_id for t in ended]
                )
        past = [
            SessionRecord(
                t.started_at,
                t.ended_at,
                bounds[t.transaction_id][0] / 100.0 if t.transaction_id in bounds else None,
                bounds[t.transaction_id][1] / 100.0 if t.transaction_id in bounds else None,
            )
            for t in ended
            if t.started_at is not None and t.ended_at is not None
        ]
        prediction = predict_departure(past, now) if past else None
        target = (
            record.target_soc if record.target_soc is not None else self.settings.default_target_soc
        )
        if prediction is not None:
            if record.target_soc is None and prediction.needed_soc is not None:
                target = prediction.needed_soc
            return SessionContext(
                record,
                soc,
                soc_source,
                prediction.earliest if prediction.earliest > now else prediction.departure,
                target,
                "predicted",
                tx,
                prediction.confidence,
            )
        started = tx.started_at if tx is not None and tx.started_at is not None else now
        departure = started + timedelta(hours=self.settings.default_dwell_h)
        if departure <= now:
            departure = now + timedelta(hours=1)
        return SessionContext(record, soc, soc_source, departure, target, "default", tx)

    async def latest_power_kw(self, record: VehicleRecord) -> float:
        """Signed power (kW, + charge) from the latest Power.Active.Import/Export samples."""
        if record.station_id is None:
            return 0.0
        async with self._db.read() as conn:
            imp = await vrepo.latest_measurand(
                conn, record.station_id, "Power.Active.Import", record.evse_id
            )
            exp = await vrepo.latest_measurand(
                conn, record.station_id, "Power.Active.Export", record.evse_id
            )
        return ((imp[1] if imp else 0.0) - (exp[1] if exp else 0.0)) / 1000.0

    # -- prices ---------------------------------------------------------------------------------
    async def put_prices(self, rows: Sequence[PriceRow]) -> int:
        if not rows:
            raise InvalidRequest("no price intervals given")
        if len(rows) > b.MAX_PRICE_INTERVALS:
            raise InvalidRequest(f"at most {b.MAX_PRICE_INTERVALS} price intervals at once")
        for k, row in enumerate(rows):
            bounded(row.interval_s, b.PRICE_INTERVAL_S, f"intervals[{k}].interval_s")
            bounded(row.import_c_kwh, b.PRICE_C_KWH, f"intervals[{k}].import_c_kwh")
            bounded(row.export_c_kwh, b.PRICE_C_KWH, f"intervals[{k}].export_c_kwh")
            in_time_range(row.interval_start, f"intervals[{k}].start")
        now = self._clock()
        return await self._db.write(lambda c: vrepo.save_prices(c, rows, now))

    async def get_prices(self, start: datetime | None, end: datetime | None) -> list[PriceRow]:
        for moment, name in ((start, "from"), (end, "to")):
            if moment is not None:
                in_time_range(moment, name)
        async with self._db.read() as conn:
            return await vrepo.list_prices(conn, start, end)

    async def upload_nem(
        self,
        text: str,
        *,
        region: str | None = None,
        retail_margin_c_kwh: float | None = None,
        gst_rate: float | None = None,
        export_offset_c_kwh: float | None = None,
        source: str = "nem",
    ) -> PriceSeries:
        s = self.settings
        margin = s.retail_margin_c_kwh if retail_margin_c_kwh is None else retail_margin_c_kwh
        gst = s.gst_rate if gst_rate is None else gst_rate
        offset = s.export_offset_c_kwh if export_offset_c_kwh is None else export_offset_c_kwh
        tariff = NemTariff(
            retail_margin_c_kwh=bounded(margin, b.TARIFF_ADDER_C_KWH, "retail_margin_c_kwh"),
            gst_rate=bounded(gst, b.GST_RATE, "gst"),
            export_offset_c_kwh=bounded(offset, b.TARIFF_ADDER_C_KWH, "export_offset_c_kwh"),
        )
        try:
            series = await asyncio.to_thread(parse_nem_price_and_demand, text, tariff, region)
        except PriceFileError as exc:
            raise InvalidRequest(str(exc)) from exc
        step = round(series.interval.total_seconds())
        rows = [
            PriceRow(start, step, imp, exp, source[:100])
            for start, imp, exp in zip(
                series.starts(), series.import_c_kwh, series.export_c_kwh, strict=True
            )
        ]
        await self.put_prices(rows)
        return series

    async def _prices_for(self, now: datetime, until: datetime) -> PriceSeries:
        async with self._db.read() as conn:
            rows = await vrepo.list_prices(conn, now, until + timedelta(days=1))
        try:
            return series_from_rows(rows, now)
        except ValueError as exc:  # stored before the price bounds existed
            raise InvalidRequest(f"stored prices: {exc}; PUT /api/v1/prices again") from exc

    # -- planning -------------------------------------------------------------------------------
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
        try:
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

    # -- fleet ----------------------------------------------------------------------------------
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

    async def _plugged(self) -> list[_Plugged]:
        """The vehicles `_connected` gives, with the same transaction and SoC, in a few reads:
        one for the vehicles, one for the running transactions of their stations, one or two
        for each vehicle's latest SoC."""
        out: list[_Plugged] = []
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
                if tx is None or tx.evse_id is None:
                    continue
                found = await vrepo.latest_measurand(
                    conn, station_id, SOC, record.evse_id, tx.transaction_id
                ) or await vrepo.latest_measurand(conn, station_id, SOC, record.evse_id)
                if found is not None:
                    out.append(_Plugged(record, tx, found[1] / 100.0))
        return out

    async def flexibility(
        self, duration: timedelta, now: datetime | None = None
    ) -> tuple[list[Flexibility], FleetFlexibility]:
        moment = now or self._clock()
        flex = [
            vehicle_flexibility(ctx.session(), moment, duration)
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
        ctx: SessionContext | _Plugged,
        power_w: float,
        duration_s: int,
        profile_id: int,
        stack_level: int,
        now: datetime,
    ) -> dict[str, Any]:
        tx = ctx.transaction
        assert tx is not None and tx.evse_id is not None and ctx.vehicle.station_id is not None
        profile = {
            "id": profile_id,
            "stackLevel": stack_level,
            "chargingProfilePurpose": "TxProfile",
            "chargingProfileKind": "Absolute",
            "transactionId": tx.transaction_id,
            "chargingSchedule": [
                {
                    "id": profile_id,
                    "startSchedule": ocpp_datetime(now),
                    "duration": duration_s,
                    "chargingRateUnit": "W",
                    "chargingSchedulePeriod": [{"startPeriod": 0, "limit": round(power_w, 1)}],
                }
            ],
        }
        result: dict[str, Any] = {
            "station_id": ctx.vehicle.station_id,
            "evse_id": tx.evse_id,
            "transaction_id": tx.transaction_id,
            "kw": power_w / 1000.0,
        }
        try:
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
        flex = [vehicle_flexibility(ctx.session(), moment, duration) for ctx in contexts]
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

    # -- frequency response ---------------------------------------------------------------------
    def _rule(self) -> UnderFrequencyRule:
        s = self.settings
        return UnderFrequencyRule(
            threshold_hz=s.frequency_rule_threshold_hz,
            hold_s=s.frequency_rule_hold_s,
            discharge_kw=s.frequency_discharge_kw,
            duration_s=s.frequency_duration_s,
            min_soc=s.frequency_min_soc,
            stop_soc=s.frequency_min_soc,
        )

    async def grid_frequency(self, hz: float, at: datetime) -> dict[str, list[dict[str, Any]]]:
        """Feed one frequency sample to each connected vehicle's under-frequency rule. When it
        fires, send that vehicle a discharge TxProfile lasting the rule's duration (the station
        falls back to the plan by itself afterwards); when the rule stops early (SoC down to
        its stop level) clear that profile at once. Returns {"fired": [...], "restored": [...]}.

        The rule state is shared by every node (the database row of UNDER_FREQUENCY_RULE): the
        node that answers a sample decides, under the row lock, what it changes, and alone
        sends the commands for it.
        """
        if not 40.0 <= hz <= 70.0:
            raise InvalidRequest("hz must be between 40 and 70")
        async with self._frequency_lock:
            contexts = await self._plugged()
            step = _FrequencyStep()
            if contexts:
                now = self._clock()
                step = await self._db.write(
                    lambda conn: self._frequency_step(conn, contexts, hz, at, now)
                )
            if step.error is not None:
                raise InvalidRequest(step.error)
            by_id = {ctx.vehicle.id: ctx for ctx in contexts}
            fired = [by_id[vid] for vid in step.fired]
            ended = [by_id[vid] for vid in step.ended]
            restored = list(await asyncio.gather(*(self._clear_frequency(c) for c in ended)))
            if not fired:
                return {"fired": [], "restored": restored}
            s = self.settings
            duration_s = round(s.frequency_duration_s)
            results = await asyncio.gather(
                *(
                    self._send_power(
                        ctx,
                        -s.frequency_discharge_kw * 1000.0,
                        duration_s,
                        FREQUENCY_PROFILE_ID,
                        FREQUENCY_STACK_LEVEL,
                        at,
                    )
                    for ctx in fired
                )
            )
            per_vehicle = {
                ctx.vehicle.id: result for ctx, result in zip(fired, results, strict=True)
            }
            requested = -s.frequency_discharge_kw * len(fired)
            await self._record_dispatch(
                "frequency", at, duration_s, requested, requested, per_vehicle
            )
            return {
                "fired": [dict(r, vehicle_id=v) for v, r in per_vehicle.items()],
                "restored": restored,
            }

    async def _frequency_step(
        self,
        conn: AsyncConnection,
        contexts: list[_Plugged],
        hz: float,
        at: datetime,
        now: datetime,
    ) -> _FrequencyStep:
        """Inside one write transaction: read the rule state under its row lock, feed the
        sample to each connected vehicle's event, write the state back. Depends on nothing but
        the database and its arguments (the writer may run it again after a rollback)."""
        stored = await vrepo.lock_rule_state(conn, UNDER_FREQUENCY_RULE, now)
        rule = self._rule()
        t = at.timestamp()
        events: dict[str, UnderFrequencyEvent] = {}
        for vid, data in stored.items():
            try:
                events[vid] = UnderFrequencyEvent(rule, EventSnapshot.from_dict(data))
            except ValueError:
                log.warning("dropping unreadable under-frequency state of %s: %r", vid, data)
        for ctx in contexts:
            last_t = events[ctx.vehicle.id].last_t if ctx.vehicle.id in events else None
            if last_t is not None and t < last_t:
                return _FrequencyStep(error=f"samples must come in time order ({t} after {last_t})")
        fired: list[str] = []
        ended: list[str] = []
        for ctx in contexts:
            vid = ctx.vehicle.id
            event = events.setdefault(vid, UnderFrequencyEvent(rule))
            started = event.events_started
            until = event.active_until
            event.feed(t, hz, ctx.soc)
            if event.events_started > started:
                fired.append(vid)
            elif until is not None and event.state is not EventState.ACTIVE and t < until:
                ended.append(vid)  # stopped before its duration: SoC reached stop_soc
        connected = {ctx.vehicle.id for ctx in contexts}
        state = {
            vid: event.snapshot().as_dict()
            for vid, event in sorted(events.items())
            # an idle vehicle that is not plugged in has nothing to remember
            if vid in connected or event.state is not EventState.IDLE
        }
        await vrepo.save_rule_state(conn, UNDER_FREQUENCY_RULE, state, now)
        return _FrequencyStep(tuple(fired), tuple(ended))

    async def _clear_frequency(self, ctx: _Plugged) -> dict[str, Any]:
        station_id = ctx.vehicle.station_id
        assert station_id is not None
        result: dict[str, Any] = {"vehicle_id": ctx.vehicle.id, "station_id": station_id}
        try:
            answer = await self._commands.send(
                station_id, "ClearChargingProfile", {"chargingProfileId": FREQUENCY_PROFILE_ID}
            )
            result["status"] = str(answer.get("status"))
        except CsmsError as exc:
            result["status"], result["error"] = "failed", str(exc)
        return result

    async def set_frequency_response(
        self, station_id: str, curve: list[list[float]] | None, enabled: bool
    ) -> dict[str, Any]:
        """SetVariables V2XCtrlr.FreqWattCurve (JSON [[Hz, W], ...]) and FreqWattEnabled; the
        setting is stored when the station accepts every variable."""
        if curve is not None:
            try:
                FreqWattCurve(tuple((float(p[0]), float(p[1])) for p in curve))
            except (ValueError, IndexError, TypeError) as exc:
                raise InvalidRequest(f"curve: {exc}") from exc
            if not 2 <= len(curve) <= 20 or any(not 40 <= p[0] <= 70 for p in curve):
                raise InvalidRequest("curve: 2 to 20 points, Hz between 40 and 70")
        data: list[dict[str, Any]] = []
        if curve is not None:
            data.append(
                {
                    "component": {"name": "V2XCtrlr"},
                    "variable": {"name": "FreqWattCurve"},
                    "attributeValue": json.dumps([[float(h), float(w)] for h, w in curve]),
                }
            )
        data.append(
            {
                "component": {"name": "V2XCtrlr"},
                "variable": {"name": "FreqWattEnabled"},
                "attributeValue": "true" if enabled else "false",
            }
        )
        answer = await self._commands.send(station_id, "SetVariables", {"setVariableData": data})
        results = answer.get("setVariableResult", [])
        accepted = bool(results) and all(r.get("attributeStatus") == "Accepted" for r in results)
        if accepted:
            now = self._clock()
            async with self._db.read() as conn:
                current = await vrepo.get_station_settings(conn, station_id)
            updated = replace(
                current,
                freq_watt_enabled=enabled,
                freq_watt_curve=curve if curve is not None else current.freq_watt_curve,
            )
            await self._db.write(lambda c: vrepo.save_station_settings(c, updated, now))
        return {"accepted": accepted, "results": results}

    async def station_settings(self, station_id: str) -> StationV2gSettings:
        async with self._db.read() as conn:
            if await repo.get_station(conn, station_id) is None:
                raise UnknownStation(station_id)
            return await vrepo.get_station_settings(conn, station_id)

    # -- backup ---------------------------------------------------------------------------------
    async def backup_state(
        self, station_id: str, house_load_kw: float | None = None
    ) -> BackupState:
        load = self.settings.house_load_kw if house_load_kw is None else house_load_kw
        bounded(load, b.HOUSE_LOAD_KW, "house_load_kw")
        settings = await self.station_settings(station_id)
        async with self._db.read() as conn:
            events = await vrepo.latest_event(conn, station_id, ["NotifyEvent"])
            linked = await vrepo.list_vehicles(conn, station_id)
        grid_present, backup_active, since = True, False, None
        found_grid = found_backup = False
        for _kind, received, payload in events:  # newest first
            for item in payload.get("eventData", []):
                code = item.get("techCode")
                active = str(item.get("actualValue", "")).lower() == "true"
                when = datetime.fromisoformat(
                    str(item.get("timestamp", received.isoformat())).replace("Z", "+00:00")
                )
                if code in ("grid_lost", "grid_restored") and not found_grid:
                    found_grid = True
                    grid_present = code == "grid_restored" or not active
                    since = when
                if code == "backup_mode" and not found_backup:
                    found_backup = True
                    backup_active = active and "end" not in str(item.get("techInfo", "")).lower()
        vehicle = linked[0] if linked else None
        soc = hours = None
        if vehicle is not None:
            ctx = await self.session_context(vehicle, self._clock())
            soc = ctx.soc
            if soc is not None:
                value = backup_hours(to_vehicle(vehicle), soc, load)
                hours = None if math.isinf(value) else value
        return BackupState(
            station_id=station_id,
            grid_present=grid_present,
            backup_active=backup_active or (not grid_present and settings.emergency_backup),
            emergency_backup=settings.emergency_backup,
            since=since,
            vehicle_id=vehicle.id if vehicle else None,
            soc=soc,
            house_load_kw=load,
            backup_hours=hours,
        )

    async def set_emergency_backup(self, station_id: str, enabled: bool) -> dict[str, Any]:
        """DataTransfer vendorId org.openv2g.v2x, messageId EmergencyBackup, data
        {"enabled": bool}: stored when the station answers Accepted."""
        await self.station_settings(station_id)  # 404 for an unknown station
        answer = await self._commands.send(
            station_id,
            "DataTransfer",
            {
                "vendorId": BACKUP_VENDOR_ID,
                "messageId": BACKUP_MESSAGE_ID,
                "data": json.dumps({"enabled": enabled}),
            },
        )
        if answer.get("status") == "Accepted":
            now = self._clock()
            async with self._db.read() as conn:
                current = await vrepo.get_station_settings(conn, station_id)
            updated = replace(current, emergency_backup=enabled)
            await self._db.write(lambda c: vrepo.save_station_settings(c, updated, now))
        return answer

    # -- economics ------------------------------------------------------------------------------
    async def economics(
        self,
        vehicle_id: str,
        start: datetime,
        end: datetime,
        equipment_cost_aud: float = DEFAULT_EQUIPMENT_COST_AUD,
    ) -> EconomicsReport:
        """From meter values at the vehicle's station: energy per register step, priced at the
        stored price of the interval it ended in; wear by rainflow over the SoC trace; grid
        services = accepted dispatch/frequency kWh of this vehicle x the configured rate."""
        in_time_range(start, "from")
        in_time_range(end, "to")
        if end <= start:
            raise InvalidRequest("'to' must be after 'from'")
        bounded(equipment_cost_aud, b.EQUIPMENT_COST_AUD, "equipment_cost")
        record = await self.get_vehicle(vehicle_id)
        vehicle = to_vehicle(record)
        samples: list[tuple[datetime, str, float, str | None, str | None]] = []
        async with self._db.read() as conn:
            if record.station_id is not None:
                samples = await vrepo.samples_between(
                    conn,
                    record.station_id,
                    (IMPORT_REGISTER, EXPORT_REGISTER, SOC),
                    start,
                    end,
                    record.evse_id,
                )
            prices = await vrepo.list_prices(conn, start, end)
            events = await vrepo.list_dispatches(conn, start, end)
        price_at = price_lookup(prices)
        imported = exported = cost = revenue = priced = unpriced = 0.0
        last: dict[str, float] = {}
        soc_trace: list[float] = []
        for when, measurand, value, unit, _tx in samples:
            if measurand == SOC:
                soc_trace.append(value / 100.0)
                continue
            wh = value * 1000.0 if unit == "kWh" else value
            before = last.get(measurand)
            last[measurand] = wh
            if before is None or wh < before:
                continue  # first reading, or a register reset
            kwh = (wh - before) / 1000.0
            price = price_at(when)
            if price is None:
                unpriced += kwh
            else:
                priced += kwh
            if measurand == IMPORT_REGISTER:
                imported += kwh
                cost += kwh * (price[0] if price else 0.0) / 100.0
            else:
                exported += kwh
                revenue += kwh * (price[1] if price else 0.0) / 100.0
        grid_kwh = sum(
            abs(d.per_vehicle[vehicle_id]["kw"]) * d.duration_s / 3600.0
            for d in events
            if d.per_vehicle.get(vehicle_id, {}).get("status") == "Accepted"
        )
        days = (end - start).total_seconds() / 86400.0
        wear = battery_degradation(soc_trace, days, vehicle)
        economics = Economics(
            imported_kwh=imported,
            exported_kwh=exported,
            import_cost_aud=cost,
            export_revenue_aud=revenue,
            grid_service_aud=grid_kwh * self.settings.grid_service_aud_per_kwh,
            degradation_aud=wear.cost_aud,
            days=days,
        )
        # What V2G earns: exports and grid services less the wear of cycling (calendar ageing
        # and the cost of charging for driving happen without V2G too).
        cycle_cost = wear.cost_aud * (wear.cycle_damage / wear.damage if wear.damage else 0.0)
        benefit = revenue + economics.grid_service_aud - cycle_cost
        annual = benefit / days * 365.25 if days > 0 else 0.0
        return EconomicsReport(
            vehicle_id=vehicle_id,
            start=start,
            end=end,
            economics=economics,
            equivalent_full_cycles=wear.equivalent_full_cycles,
            v2g_benefit_aud=benefit,
            annual_benefit_aud=annual,
            payback_years=payback_years(annual, equipment_cost_aud),
            equipment_cost_aud=equipment_cost_aud,
            priced_kwh=priced,
            unpriced_kwh=unpriced,
        )


def v2g_service_for(services: Any) -> V2gService:
    """The V2G service of a CSMS `Services` container, built once and kept on it."""
    found: V2gService | None = getattr(services, "_v2g_service", None)
    if found is None:
        settings = services.settings
        found = V2gService(
            services.db,
            services.commands,
            clock=services.clock,
            settings=V2gSettings.from_settings(settings),
            router=getattr(services, "router", None),  # None: a container without one
        )
        services._v2g_service = found
    return found


__all__ = [
    "BackupState",
    "DispatchOutcome",
    "EconomicsReport",
    "PlanRequest",
    "SentPlan",
    "SessionContext",
    "V2gService",
    "V2gSettings",
    "VehiclePlanRequest",
    "departure_from_needs",
    "expected_soc",
    "plan_to_json",
    "replan_reasons",
    "series_from_rows",
    "to_vehicle",
    "v2g_service_for",
]
