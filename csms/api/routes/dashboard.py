"""Reads the operator dashboard needs beyond the resource routes: the overview figures, a
station list page with connectors and live power, the live-update stream (server-sent events
from the shared fan-out, csms/services/live.py), the caller's scope, and OCA request schemas
for the generic command form."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Security
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from csms.api.deps import MAX_OFFSET, OPERATE, READ, Services, authorize
from csms.api.errors import ApiProblem
from csms.api.ocpp_actions import is_csms_initiated_action
from csms.api.schemas import ConnectorRead, StationRead, StrictModel
from csms.api.v2g_schemas import (
    CapacityKwh,
    ChemistryName,
    Efficiency,
    Fraction,
    InlinePrices,
    Moment,
    VehicleKw,
)
from csms.domain.models import ApiScope, ApiToken, Connector
from csms.oca_schemas import CSMS_INITIATED_ACTIONS, request_schema
from csms.services.live import LiveFeed
from csms.v2g import bounds as b
from csms.v2g.optimizer import PlanError, plan_vehicle
from csms.v2g.plan_chart import plan_chart
from csms.v2g.prices import PriceSeries
from csms.v2g.vehicle import Chemistry, Vehicle, VehicleSession

router = APIRouter(prefix="/dashboard", tags=["dashboard"])

# A viewer hears at least this often (a comment line), so that proxies keep the stream open
# and a dropped connection is noticed.
KEEPALIVE_S = 15.0
MAX_SEARCH = 48  # a station id is at most 48 characters


def live_feed(request: Request) -> LiveFeed:
    feed: LiveFeed = request.app.state.live
    return feed


class SessionRead(BaseModel):
    name: str
    scope: str


class OverviewRead(BaseModel):
    stations: int
    online: int = Field(description="stations connected to this node")
    power_import_kw: float = Field(description="charging now, kW (this node's stations)")
    power_export_kw: float = Field(description="discharging now, kW (this node's stations)")
    since: datetime = Field(description="start of today (UTC)")
    transactions_today: int
    energy_today_kwh: float = Field(description="metered energy of transactions updated today")
    cost_today: float = Field(description="running cost of those transactions (tariff currency)")
    viewers: int = Field(description="dashboard viewers receiving live updates")


class StationRowRead(StationRead):
    connectors: list[dict[str, Any]] = Field(default_factory=list)
    power_w: float | None = Field(None, description="+ charging, - discharging (live)")
    soc: float | None = None
    transaction_id: str | None = None


class StationRowsRead(BaseModel):
    items: list[StationRowRead]
    total: int
    offset: int
    limit: int


ReadToken = Annotated[ApiToken, Security(authorize, scopes=[ApiScope.READ.value])]


@router.get(
    "/session",
    dependencies=[READ],
    response_model=SessionRead,
    summary="The calling token's name and scope",
)
async def session(token: ReadToken) -> SessionRead:
    return SessionRead(name=token.name, scope=token.scope.value)


@router.get(
    "/overview",
    dependencies=[READ],
    response_model=OverviewRead,
    summary="Stations online, power now, energy and money today",
)
async def overview(request: Request, services: Services) -> OverviewRead:
    feed = live_feed(request)
    total = (await services.stations.list(0, 1)).total
    now = datetime.now(UTC)
    since = now.replace(hour=0, minute=0, second=0, microsecond=0)
    count, energy_wh, cost = await services.transactions.totals_since(since)
    charging_w, discharging_w = feed.power_totals_w()
    return OverviewRead(
        stations=total,
        online=feed.connected_count(),
        power_import_kw=round(charging_w / 1000, 3),
        power_export_kw=round(discharging_w / 1000, 3),
        since=since,
        transactions_today=count,
        energy_today_kwh=round(energy_wh / 1000, 3),
        cost_today=round(cost, 2),
        viewers=feed.viewer_count,
    )


@router.get(
    "/stations",
    dependencies=[READ],
    response_model=StationRowsRead,
    summary="A page of stations with connectors, connection state and live power",
)
async def station_rows(
    request: Request,
    services: Services,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    q: Annotated[str | None, Query(max_length=MAX_SEARCH, description="part of the id")] = None,
    online: Annotated[bool, Query(description="only stations connected to this node")] = False,
) -> StationRowsRead:
    feed = live_feed(request)
    if online:
        # The connected ids are in memory: filter and page them here, then read that page.
        wanted = (q or "").lower()
        ids = [s for s in feed.connected_ids_sorted() if wanted in s.lower()]
        page_ids = ids[offset : offset + limit]
        page = await services.stations.list(0, limit, only_ids=page_ids)
        stations, total = page.items, len(ids)
    else:
        page = await services.stations.list(offset, limit, id_contains=q or None)
        stations, total = page.items, page.total
    connectors: dict[str, list[Connector]] = {}
    for connector in await services.stations.connectors_of([s.id for s in stations]):
        connectors.setdefault(connector.station_id, []).append(connector)
    connected = await asyncio.gather(*(services.stations.connection_state(s.id) for s in stations))
    rows = []
    for station, state in zip(stations, connected, strict=True):
        row = StationRowRead.model_validate(station)
        row.connected = state.connected
        row.node = state.node_id
        row.connectors = [
            {"evse_id": c.evse_id, **ConnectorRead.model_validate(c).model_dump(mode="json")}
            for c in connectors.get(station.id, [])
        ]
        live = feed.stations.get(station.id)
        if live is not None:
            row.power_w = live.power_w
            row.soc = live.soc
            row.transaction_id = live.transaction_id
        rows.append(row)
    return StationRowsRead(items=rows, total=total, offset=offset, limit=limit)


@router.get(
    "/live",
    dependencies=[READ],
    summary="Live updates (text/event-stream): batches of station events, once per tick",
    response_class=StreamingResponse,
)
async def live(request: Request) -> StreamingResponse:
    feed = live_feed(request)
    viewer = feed.subscribe()
    if viewer is None:
        raise ApiProblem(503, "too many dashboard viewers on this node")

    async def stream() -> AsyncIterator[bytes]:
        try:
            yield b"retry: 2000\n: live\n\n"
            while not viewer.dropped:
                try:
                    chunk = await asyncio.wait_for(viewer.queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    yield b": keepalive\n\n"
                    continue
                if viewer.dropped:
                    break  # too slow a reader, or shutdown: the browser reconnects
                yield chunk
        finally:
            feed.unsubscribe(viewer)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.get(
    "/actions",
    dependencies=[READ],
    response_model=list[str],
    summary="The CSMS-initiated OCPP actions (the generic command form's choices)",
)
async def actions() -> list[str]:
    return sorted(CSMS_INITIATED_ACTIONS)


@router.get(
    "/actions/{action}/schema",
    dependencies=[READ],
    response_model=dict[str, Any],
    summary="The OCA JSON schema of an action's request",
)
async def action_schema(action: str) -> dict[str, Any]:
    schema = request_schema(action) if is_csms_initiated_action(action) else None
    if schema is None:
        raise ApiProblem(404, f"unknown action {action!r}")
    return schema


class WhatIfCreate(StrictModel):
    """One vehicle against inline prices: the plan and both baselines as chart data."""

    capacity_kwh: CapacityKwh
    max_charge_kw: VehicleKw
    max_discharge_kw: VehicleKw
    chemistry: ChemistryName = "NMC"
    round_trip_efficiency: Efficiency = 0.9
    driving_reserve_soc: Fraction = 0.2
    soc: Fraction
    target_soc: Fraction
    departure: Moment
    start: Moment | None = Field(None, description="default: the first price interval")
    prices: InlinePrices


@router.post(
    "/what-if",
    dependencies=[OPERATE],
    response_model=dict[str, Any],
    summary="Plan one vehicle and price the plain-charging and threshold-rule baselines "
    "(chart data; nothing is sent)",
)
async def what_if(body: WhatIfCreate) -> dict[str, Any]:
    p = body.prices
    if len(p.import_c_kwh) != len(p.export_c_kwh):
        raise ApiProblem(422, "prices: import_c_kwh and export_c_kwh differ in length")
    try:
        prices = PriceSeries(
            p.start, timedelta(seconds=p.interval_s), tuple(p.import_c_kwh), tuple(p.export_c_kwh)
        )
        start = body.start or prices.start
        b.check_horizon(start, body.departure, b.DEFAULT_MAX_HORIZON_H, "departure")
        if not prices.start <= start < prices.end or body.departure <= start:
            raise ValueError("start must lie within the prices and before the departure")
        vehicle = Vehicle(
            vehicle_id="what-if",
            capacity_kwh=body.capacity_kwh,
            max_charge_kw=body.max_charge_kw,
            max_discharge_kw=body.max_discharge_kw,
            chemistry=Chemistry.parse(body.chemistry),
            round_trip_efficiency=body.round_trip_efficiency,
            driving_reserve_soc=body.driving_reserve_soc,
        )
        session = VehicleSession(
            vehicle, soc=body.soc, departure=body.departure, target_soc=body.target_soc
        )
    except (ValueError, b.BoundError) as exc:
        raise ApiProblem(422, str(exc)) from exc

    def compute() -> dict[str, Any]:
        plan = plan_vehicle(session, prices, start)
        return {**plan_chart(plan, session, prices, start).as_dict(), "warnings": plan.warnings}

    try:
        # HiGHS holds the thread: off the event loop.
        return await asyncio.to_thread(compute)
    except PlanError as exc:
        raise ApiProblem(422, str(exc)) from exc
