"""A site's household meter (issue 18): readings pushed in, the latest one and the site base
shown, or forgotten (the chargers alone again)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status

from csms.api.deps import OPERATE, READ
from csms.api.errors import ApiProblem
from csms.api.schemas import ProblemRead
from csms.api.site_meter_schemas import BaseRule, MeterRead, MeterReadingIn
from csms.domain.errors import NotFound
from csms.domain.site_meter import MeterReadingError, reading_from
from csms.services.site_meters import MeterView, SiteMeterService

router = APIRouter(
    prefix="/sites",
    tags=["sites"],
    responses={
        404: {"model": ProblemRead, "description": "unknown site"},
        422: {"model": ProblemRead, "description": "invalid field (named in `errors`)"},
    },
)


def get_site_meters(request: Request) -> SiteMeterService:
    services = request.app.state.services
    found: SiteMeterService = getattr(services, "_services", services).site_meters
    return found


Meters = Annotated[SiteMeterService, Depends(get_site_meters)]


def meter_read(site_id: str, view: MeterView) -> MeterRead:
    r, i = view.reading, view.interval
    rule: BaseRule = "chargers-alone" if r is None else ("metered" if view.fresh else "stale")
    return MeterRead(
        site_id=site_id,
        rule=rule,
        source=None if r is None else r.source,
        measured_at=None if r is None else r.measured_at,
        received_at=None if r is None else r.received_at,
        age_s=None if view.age_s is None else round(view.age_s, 3),
        max_age_s=view.max_age_s,
        grid_import_w=None if r is None else r.grid_import_w,
        load_w=None if r is None else r.load_w,
        solar_w=None if r is None else r.solar_w,
        chargers_w=None if i is None else i.chargers_w,
        unknown_stations=None if i is None else i.unknown_stations,
        base_low_w=None if i is None else i.low_w,
        base_high_w=None if i is None else i.high_w,
        charge_base_w=view.base.charge_base_w,
        discharge_base_w=view.base.discharge_base_w,
    )


@router.post(
    "/{site_id}/meter",
    dependencies=[OPERATE],
    response_model=MeterRead,
    summary="Push the site's household meter reading (net import, or load and solar)",
    description="The stations get a new envelope profile when the site base moves by the "
    "hysteresis (CSMS_SITE_METER_HYSTERESIS_W), at most every CSMS_SITE_METER_MIN_RESEND_S.",
)
async def post_meter(meters: Meters, site_id: str, body: MeterReadingIn) -> MeterRead:
    try:
        reading = reading_from(
            site_id,
            measured_at=body.timestamp,
            received_at=meters.now(),
            source="api",
            grid_import_w=body.grid_import_w,
            load_w=body.load_w,
            solar_w=body.solar_w,
        )
    except MeterReadingError as exc:  # the schema checked the rest: the timestamp is ahead
        raise ApiProblem(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"invalid request: timestamp: {exc}",
            errors=[{"field": "timestamp", "message": str(exc)}],
        ) from exc
    return meter_read(site_id, await meters.record(reading))


@router.get(
    "/{site_id}/meter",
    dependencies=[READ],
    response_model=MeterRead,
    summary="The site's latest household meter reading, its age and the base used",
)
async def get_meter(meters: Meters, site_id: str) -> MeterRead:
    await _site_exists(meters, site_id)
    return meter_read(site_id, await meters.view(site_id))


@router.delete(
    "/{site_id}/meter",
    dependencies=[OPERATE],
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Forget the site's meter reading (the chargers alone again, enforced at once)",
)
async def delete_meter(meters: Meters, site_id: str) -> Response:
    await _site_exists(meters, site_id)
    await meters.delete(site_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


async def _site_exists(meters: SiteMeterService, site_id: str) -> None:
    if not await meters.site_exists(site_id):
        raise NotFound(f"no site {site_id!r}")
