"""V2G API: vehicles, prices (and NEM file upload), plans, fleet flexibility/bid/dispatch,
grid frequency samples, frequency response, backup and economics.

Errors: 404 unknown vehicle/station/plan, 409 vehicle exists or station offline, 422 invalid
input or no plan possible (the reason in `detail`), 502/504 station errors.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response, status

from csms.api.deps import ADMIN, OPERATE, READ, OperateToken, check_scope
from csms.api.errors import ApiProblem
from csms.api.routes.commands import ERROR_RESPONSES
from csms.api.v2g_schemas import (
    BackupRead,
    BidRead,
    BidsRead,
    DispatchCreate,
    DispatchRead,
    EconomicsRead,
    EmergencyBackupCreate,
    FlexibilityItemRead,
    FlexibilityRead,
    FrequencyResponseCreate,
    FrequencyResponseRead,
    FrequencySampleCreate,
    FrequencySampleRead,
    PlanCreate,
    PlanRead,
    PriceInterval,
    PricesCreate,
    PricesRead,
    PricesStoredRead,
    SentPlanRead,
    SessionContextRead,
    StoredPlanRead,
    VehicleCreate,
    VehicleLinkCreate,
    VehiclePlanRead,
    VehicleRead,
    VehicleUpdate,
)
from csms.domain.models import ApiScope
from csms.domain.v2g_records import PriceRow, VehicleRecord
from csms.services.v2g import (
    PlanRequest,
    SessionContext,
    V2gService,
    VehiclePlanRequest,
    v2g_service_for,
)
from csms.v2g import Bid, PriceSeries, VehiclePlan
from csms.v2g.economics import DEFAULT_EQUIPMENT_COST_AUD


async def get_v2g(request: Request) -> V2gService:
    """`app.state.v2g` when the app was given one, else the one kept on the services container
    (unwrapped from the API's command-counting view, which keeps it as `_services`)."""
    given: V2gService | None = getattr(request.app.state, "v2g", None)
    if given is not None:
        return given
    services = request.app.state.services
    return v2g_service_for(getattr(services, "_services", services))


V2g = Annotated[V2gService, Depends(get_v2g)]

router = APIRouter(tags=["v2g"], responses=ERROR_RESPONSES)


def _vehicle_read(record: VehicleRecord) -> VehicleRead:
    return VehicleRead.model_validate(record)


def _plan_read(plan: VehiclePlan) -> VehiclePlanRead:
    return VehiclePlanRead(
        vehicle_id=plan.vehicle_id,
        start=plan.start,
        departure=plan.departure,
        interval_starts=list(plan.interval_starts),
        hours=list(plan.hours),
        power_kw=list(plan.power_kw),
        soc_start=plan.soc_start,
        soc_after=list(plan.soc_after),
        soc_at_departure=plan.soc_at_departure,
        target_soc=plan.target_soc,
        target_met=plan.target_met,
        warnings=list(plan.warnings),
    )


def _context_read(ctx: SessionContext) -> SessionContextRead:
    return SessionContextRead(
        vehicle_id=ctx.vehicle.id,
        soc=ctx.soc,
        soc_source=ctx.soc_source,
        departure=ctx.departure,
        target_soc=ctx.target_soc,
        departure_source=ctx.departure_source,
        confidence=ctx.confidence,
        transaction_id=ctx.transaction.transaction_id if ctx.transaction else None,
    )


# ---- vehicles ---------------------------------------------------------------------------------


@router.post(
    "/vehicles",
    dependencies=[ADMIN],
    response_model=VehicleRead,
    status_code=status.HTTP_201_CREATED,
    summary="Register a vehicle (parameters; optionally linked to a station/EVSE)",
)
async def create_vehicle(v2g: V2g, body: VehicleCreate) -> VehicleRead:
    record = VehicleRecord(**body.model_dump())
    return _vehicle_read(await v2g.create_vehicle(record))


@router.get(
    "/vehicles", dependencies=[READ], response_model=list[VehicleRead], summary="List vehicles"
)
async def list_vehicles(v2g: V2g, station_id: str | None = None) -> list[VehicleRead]:
    return [_vehicle_read(v) for v in await v2g.list_vehicles(station_id)]


@router.get(
    "/vehicles/{vehicle_id}",
    dependencies=[READ],
    response_model=VehicleRead,
    summary="Show a vehicle",
)
async def get_vehicle(v2g: V2g, vehicle_id: str) -> VehicleRead:
    return _vehicle_read(await v2g.get_vehicle(vehicle_id))


# What an `operate` token may change on a vehicle: the session, not the vehicle.
SESSION_FIELDS = frozenset({"departure", "target_soc"})


@router.patch(
    "/vehicles/{vehicle_id}",
    dependencies=[OPERATE],
    response_model=VehicleRead,
    summary="Change parameters or the session context (departure, target SoC)",
    description="Scope `operate` for the session context (departure, target_soc) alone; "
    "`admin` to change the vehicle's parameters.",
)
async def update_vehicle(
    v2g: V2g, token: OperateToken, vehicle_id: str, body: VehicleUpdate
) -> VehicleRead:
    changes = body.model_dump(exclude_unset=True)
    if not changes.keys() <= SESSION_FIELDS:
        check_scope(token, ApiScope.ADMIN)
    return _vehicle_read(await v2g.update_vehicle(vehicle_id, **changes))


@router.delete(
    "/vehicles/{vehicle_id}",
    dependencies=[ADMIN],
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a vehicle",
)
async def delete_vehicle(v2g: V2g, vehicle_id: str) -> Response:
    await v2g.delete_vehicle(vehicle_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put(
    "/vehicles/{vehicle_id}/link",
    dependencies=[ADMIN],
    response_model=VehicleRead,
    summary="Link the vehicle to a station/EVSE (station_id null = unlink)",
)
async def link_vehicle(v2g: V2g, vehicle_id: str, body: VehicleLinkCreate) -> VehicleRead:
    return _vehicle_read(
        await v2g.update_vehicle(vehicle_id, station_id=body.station_id, evse_id=body.evse_id)
    )


@router.get(
    "/vehicles/{vehicle_id}/session",
    dependencies=[READ],
    response_model=SessionContextRead,
    summary="Session context: SoC, departure and target, and where each came from",
)
async def vehicle_session(v2g: V2g, vehicle_id: str) -> SessionContextRead:
    record = await v2g.get_vehicle(vehicle_id)
    return _context_read(await v2g.session_context(record, v2g.now()))


# ---- prices -----------------------------------------------------------------------------------


@router.put(
    "/prices",
    dependencies=[OPERATE],
    response_model=PricesStoredRead,
    summary="Store import/export prices per interval (replaces stored intervals by start)",
)
async def put_prices(v2g: V2g, body: PricesCreate) -> PricesStoredRead:
    rows = [
        PriceRow(i.start, i.interval_s, i.import_c_kwh, i.export_c_kwh, body.source)
        for i in body.intervals
    ]
    count = await v2g.put_prices(rows)
    return PricesStoredRead(stored=count)


@router.get(
    "/prices", dependencies=[READ], response_model=PricesRead, summary="Stored prices in [from, to)"
)
async def get_prices(
    v2g: V2g,
    start: Annotated[datetime | None, Query(alias="from")] = None,
    end: Annotated[datetime | None, Query(alias="to")] = None,
) -> PricesRead:
    for moment in (start, end):
        if moment is not None and moment.tzinfo is None:
            raise ApiProblem(422, "from/to need a timezone (e.g. 2024-08-05T00:00:00+10:00)")
    rows = await v2g.get_prices(start, end)
    return PricesRead(
        intervals=[
            PriceInterval(
                start=r.interval_start,
                interval_s=r.interval_s,
                import_c_kwh=r.import_c_kwh,
                export_c_kwh=r.export_c_kwh,
            )
            for r in rows
        ]
    )


@router.post(
    "/prices/nem",
    dependencies=[OPERATE],
    response_model=PricesStoredRead,
    summary="Upload an AEMO PRICE_AND_DEMAND CSV (5- or 30-minute) as the request body",
    description="Body: the CSV file unchanged (Content-Type text/csv). import = (RRP/10 + "
    "retail_margin) x (1 + gst); export = RRP/10 + export_offset (c/kWh).",
)
async def upload_nem(
    v2g: V2g,
    request: Request,
    region: str | None = None,
    retail_margin_c_kwh: float | None = None,
    gst: Annotated[float | None, Query(ge=0, le=0.5, allow_inf_nan=False)] = None,
    export_offset_c_kwh: float | None = None,
) -> PricesStoredRead:
    raw = await request.body()
    if len(raw) > 20_000_000:
        raise ApiProblem(413, "file too large (20 MB at most)")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ApiProblem(422, "the file is not UTF-8 text") from exc
    series: PriceSeries = await v2g.upload_nem(
        text,
        region=region,
        retail_margin_c_kwh=retail_margin_c_kwh,
        gst_rate=gst,
        export_offset_c_kwh=export_offset_c_kwh,
    )
    return PricesStoredRead(
        stored=len(series),
        start=series.start,
        end=series.end,
        interval_s=round(series.interval.total_seconds()),
    )


# ---- plans ------------------------------------------------------------------------------------


@router.post(
    "/v2g/plan",
    dependencies=[OPERATE],
    response_model=PlanRead,
    summary="What-if plan for one vehicle or a site of many (LP, HiGHS); nothing is sent",
)
async def what_if_plan(v2g: V2g, body: PlanCreate) -> PlanRead:
    prices = None
    if body.prices is not None:
        p = body.prices
        if len(p.import_c_kwh) != len(p.export_c_kwh):
            raise ApiProblem(422, "prices: import_c_kwh and export_c_kwh differ in length")
        prices = PriceSeries(
            p.start, timedelta(seconds=p.interval_s), tuple(p.import_c_kwh), tuple(p.export_c_kwh)
        )
    request = PlanRequest(
        vehicles=tuple(
            VehiclePlanRequest(v.vehicle_id, v.soc, v.departure, v.target_soc, v.arrival)
            for v in body.vehicles
        ),
        import_limit_kw=body.import_limit_kw,
        export_limit_kw=body.export_limit_kw,
        site_base_kw=tuple(body.site_base_kw) if body.site_base_kw is not None else None,
        prices=prices,
        now=body.now,
    )
    site, contexts = await v2g.plan(request)
    return PlanRead(
        now=site.now,
        objective_c=site.objective_c,
        interval_starts=list(site.interval_starts),
        site_net_kw=list(site.site_net_kw),
        vehicles=[_plan_read(p) for p in site.vehicles.values()],
        contexts=[_context_read(c) for c in contexts],
        warnings=list(site.warnings),
    )


@router.post(
    "/stations/{station_id}/v2g/optimize",
    dependencies=[OPERATE],
    response_model=SentPlanRead,
    summary="Plan the linked vehicle and send the plan as a TxProfile (SetChargingProfile)",
)
async def optimize_station(
    v2g: V2g, station_id: str, vehicle_id: str | None = None
) -> SentPlanRead:
    sent = await v2g.optimize_station(station_id, vehicle_id=vehicle_id)
    return SentPlanRead(
        plan_id=sent.plan_id,
        station_id=sent.station_id,
        evse_id=sent.evse_id,
        transaction_id=sent.transaction_id,
        status=sent.status,
        status_info=sent.status_info,
        charging_profile=sent.profile,
        plan=_plan_read(sent.plan),
    )


@router.get(
    "/stations/{station_id}/v2g/plan",
    dependencies=[READ],
    response_model=StoredPlanRead,
    summary="The station's latest V2G plan and what the station answered",
)
async def current_plan(v2g: V2g, station_id: str) -> StoredPlanRead:
    found = await v2g.current_plan(station_id)
    return StoredPlanRead(
        id=found.id,
        vehicle_id=found.vehicle_id,
        station_id=found.station_id,
        evse_id=found.evse_id,
        transaction_id=found.transaction_id,
        planned_at=found.planned_at,
        status=found.status,
        reason=found.reason,
        plan=found.plan,
    )


# ---- fleet ------------------------------------------------------------------------------------


@router.get(
    "/v2g/flexibility",
    dependencies=[READ],
    response_model=FlexibilityRead,
    summary="Headroom of each connected vehicle and of the fleet, for a response duration",
)
async def flexibility(
    v2g: V2g, duration_s: Annotated[int, Query(gt=0, le=86400)] = 1800
) -> FlexibilityRead:
    flex, fleet = await v2g.flexibility(timedelta(seconds=duration_s))
    return FlexibilityRead(
        duration_s=duration_s,
        vehicles=[
            FlexibilityItemRead(
                vehicle_id=f.vehicle_id,
                up_kw=f.up_kw,
                down_kw=f.down_kw,
                up_kwh=f.up_kwh,
                down_kwh=f.down_kwh,
                until=f.until,
            )
            for f in flex
        ],
        up_kw=fleet.up_kw,
        down_kw=fleet.down_kw,
        up_kwh=fleet.up_kwh,
        down_kwh=fleet.down_kwh,
        vehicle_count=fleet.vehicles,
    )


def _bid_read(bid: Bid | None) -> BidRead | None:
    if bid is None:
        return None
    return BidRead(
        direction=bid.direction,
        capacity_kw=bid.capacity_kw,
        energy_kwh=bid.energy_kwh,
        duration_s=bid.duration.total_seconds(),
        response_time_s=bid.response_time_s,
        vehicles=bid.vehicles,
    )


@router.get(
    "/v2g/bid",
    dependencies=[READ],
    response_model=BidsRead,
    summary="The fleet's aggregated offers",
)
async def bid(
    v2g: V2g,
    duration_s: Annotated[int, Query(gt=0, le=86400)] = 1800,
    response_time_s: Annotated[float, Query(gt=0, allow_inf_nan=False)] = 60.0,
    min_bid_kw: Annotated[float, Query(ge=0, allow_inf_nan=False)] = 10.0,
) -> BidsRead:
    fleet, bids = await v2g.bids(timedelta(seconds=duration_s), response_time_s, min_bid_kw)
    return BidsRead(
        raise_bid=_bid_read(bids["raise"]),
        lower_bid=_bid_read(bids["lower"]),
        fleet_down_kw=fleet.down_kw,
        fleet_up_kw=fleet.up_kw,
    )


@router.post(
    "/v2g/dispatch",
    dependencies=[OPERATE],
    response_model=DispatchRead,
    summary="Split a fleet power target over connected vehicles; send each its TxProfile",
)
async def dispatch(v2g: V2g, body: DispatchCreate) -> DispatchRead:
    outcome = await v2g.dispatch(body.target_kw, body.duration_s, method=body.method)
    return DispatchRead(
        id=outcome.id,
        requested_kw=outcome.requested_kw,
        allocated_kw=outcome.allocated_kw,
        accepted_kw=outcome.accepted_kw,
        measured_kw=None,
        duration_s=body.duration_s,
        method=body.method,
        per_vehicle=outcome.per_vehicle,
    )


@router.get(
    "/v2g/dispatches",
    dependencies=[READ],
    response_model=list[DispatchRead],
    summary="Recorded dispatches and frequency events, with the power measured during each",
)
async def list_dispatches(
    v2g: V2g,
    start: Annotated[datetime | None, Query(alias="from")] = None,
    end: Annotated[datetime | None, Query(alias="to")] = None,
) -> list[DispatchRead]:
    out = []
    for record, measured in await v2g.dispatches(start, end):
        out.append(
            DispatchRead(
                id=record.id or 0,
                kind=record.kind,
                requested_kw=record.requested_kw,
                allocated_kw=record.allocated_kw,
                accepted_kw=record.accepted_kw,
                measured_kw=measured,
                started_at=record.started_at,
                duration_s=record.duration_s,
                method=_dispatch_method(record.per_vehicle),
                per_vehicle=record.per_vehicle,
            )
        )
    return out


def _dispatch_method(per_vehicle: dict[str, dict[str, Any]]) -> str | None:
    """The split method recorded with a dispatch's vehicles (None: frequency events and
    dispatches recorded before methods were)."""
    methods = {item.get("method") for item in per_vehicle.values()} - {None}
    return str(methods.pop()) if len(methods) == 1 else None


# ---- frequency --------------------------------------------------------------------------------


@router.post(
    "/grid/frequency",
    dependencies=[OPERATE],
    response_model=FrequencySampleRead,
    summary="A grid frequency sample for the central under-frequency rule",
    description="Below 49.8 Hz for 5 s with SoC > 50 %: each such vehicle gets a 5 kW "
    "discharge TxProfile (stack level above its plan) for 10 minutes, then its plan resumes; "
    "when SoC falls to 50 % first, the profile is cleared at once (`restored`). Every power "
    "is held to the station's share of its site's operating envelope (`limited_by`).",
)
async def grid_frequency(v2g: V2g, body: FrequencySampleCreate) -> FrequencySampleRead:
    outcome = await v2g.grid_frequency(body.hz, body.at)
    return FrequencySampleRead(
        fired=outcome["fired"], restored=outcome["restored"], central=outcome.get("central", [])
    )


@router.put(
    "/stations/{station_id}/v2g/frequency-response",
    dependencies=[OPERATE],
    response_model=FrequencyResponseRead,
    summary="Local frequency-watt response: SetVariables V2XCtrlr.FreqWattCurve/Enabled",
)
async def frequency_response(
    v2g: V2g, station_id: str, body: FrequencyResponseCreate
) -> FrequencyResponseRead:
    curve = [[hz, w] for hz, w in body.curve] if body.curve is not None else None
    await v2g.station_settings(station_id)  # 404 first
    answer = await v2g.set_frequency_response(station_id, curve, body.enabled)
    return FrequencyResponseRead(**answer)


# ---- backup -----------------------------------------------------------------------------------


@router.get(
    "/stations/{station_id}/v2g/backup",
    dependencies=[READ],
    response_model=BackupRead,
    summary="Grid and backup state of the station, with the estimated backup time",
)
async def backup(
    v2g: V2g,
    station_id: str,
    house_load_kw: Annotated[float | None, Query(ge=0, allow_inf_nan=False)] = None,
) -> BackupRead:
    state = await v2g.backup_state(station_id, house_load_kw)
    return BackupRead(**state.__dict__)


@router.put(
    "/stations/{station_id}/v2g/emergency-backup",
    dependencies=[OPERATE],
    response_model=dict[str, Any],
    summary="Emergency backup switch: DataTransfer org.openv2g.v2x / EmergencyBackup",
    description='Sends DataTransfer vendorId "org.openv2g.v2x", messageId "EmergencyBackup", '
    "data '{\"enabled\": true|false}'; stored when the station answers Accepted. The answer "
    "is the station's DataTransfer response.",
)
async def emergency_backup(
    v2g: V2g, station_id: str, body: EmergencyBackupCreate
) -> dict[str, Any]:
    return await v2g.set_emergency_backup(station_id, body.enabled)


# ---- economics --------------------------------------------------------------------------------


@router.get(
    "/vehicles/{vehicle_id}/economics",
    dependencies=[READ],
    response_model=EconomicsRead,
    summary="Energy, money, wear and payback of a vehicle over [from, to)",
)
async def economics(
    v2g: V2g,
    vehicle_id: str,
    start: Annotated[datetime, Query(alias="from")],
    end: Annotated[datetime, Query(alias="to")],
    equipment_cost: Annotated[float, Query(ge=0, allow_inf_nan=False)] = DEFAULT_EQUIPMENT_COST_AUD,
) -> EconomicsRead:
    if start.tzinfo is None or end.tzinfo is None:
        raise ApiProblem(422, "from/to need a timezone")
    report = await v2g.economics(vehicle_id, start, end, equipment_cost)
    e = report.economics
    return EconomicsRead(
        vehicle_id=report.vehicle_id,
        start=report.start,
        end=report.end,
        days=e.days,
        imported_kwh=e.imported_kwh,
        exported_kwh=e.exported_kwh,
        import_cost_aud=e.import_cost_aud,
        export_revenue_aud=e.export_revenue_aud,
        grid_service_aud=e.grid_service_aud,
        degradation_aud=e.degradation_aud,
        equivalent_full_cycles=report.equivalent_full_cycles,
        net_value_aud=e.net_value_aud,
        daily_net_aud=e.daily_net_aud,
        annual_net_aud=e.annual_net_aud,
        v2g_benefit_aud=report.v2g_benefit_aud,
        annual_benefit_aud=report.annual_benefit_aud,
        equipment_cost_aud=report.equipment_cost_aud,
        payback_years=None if math.isinf(report.payback_years) else report.payback_years,
        unpriced_kwh=report.unpriced_kwh,
    )
