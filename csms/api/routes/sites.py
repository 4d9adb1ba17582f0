"""Sites and their operating envelopes (issue 18): CRUD, the envelope in force and what each
station was sent, and the operator's own envelopes (enforced at once)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, status

from csms.api.deps import ADMIN, READ
from csms.api.routes.site_meter import Meters, meter_read
from csms.api.schemas import ProblemRead
from csms.api.site_schemas import (
    ChargerBoundsRead,
    EnvelopeRead,
    EnvelopeViewRead,
    MeterSource,
    OperatorEnvelopesIn,
    SiteIn,
    SiteRead,
    StationEnforcementRead,
)
from csms.domain.envelopes import OperatingEnvelope
from csms.domain.errors import InvalidRequest
from csms.domain.sites import Site
from csms.services.envelopes import OPERATOR_SOURCE, EnvelopeService
from csms.services.sites import SiteService, site_or_422

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"model": ProblemRead, "description": "unknown site or station"},
    409: {"model": ProblemRead, "description": "station in another site, id or LFDI taken"},
    422: {"model": ProblemRead, "description": "invalid field (named in `errors`)"},
}

router = APIRouter(prefix="/sites", tags=["sites"], responses=ERROR_RESPONSES)


def _container(request: Request) -> Any:
    services = request.app.state.services
    return getattr(services, "_services", services)  # unwrapped from the counting view


def get_sites(request: Request) -> SiteService:
    found: SiteService = _container(request).sites
    return found


def get_envelopes(request: Request) -> EnvelopeService:
    found: EnvelopeService = _container(request).envelopes
    return found


Sites = Annotated[SiteService, Depends(get_sites)]
Envelopes = Annotated[EnvelopeService, Depends(get_envelopes)]


def site_read(site: Site) -> SiteRead:
    return SiteRead(
        id=site.id,
        name=site.name,
        nmi=site.nmi,
        lfdi=site.lfdi,
        sfdi=site.sfdi,
        csip_enabled=site.csip_enabled,
        station_ids=list(site.station_ids),
        has_registration_pin=site.registration_pin is not None,
        meter_source=(
            None if site.meter_station_id is None else MeterSource(station_id=site.meter_station_id)
        ),
    )


def _site(body: SiteIn) -> Site:
    return site_or_422(
        id=body.id,
        name=body.name,
        nmi=body.nmi,
        lfdi=body.lfdi,
        sfdi=body.sfdi,
        registration_pin=body.registration_pin,
        csip_enabled=body.csip_enabled,
        station_ids=tuple(body.station_ids),
        meter_station_id=None if body.meter_source is None else body.meter_source.station_id,
    )


def envelope_read(e: OperatingEnvelope) -> EnvelopeRead:
    return EnvelopeRead(
        source=e.source,
        control_id=e.control_id,
        is_default=e.is_default,
        start=e.start,
        end=e.end,
        received_at=e.received_at,
        export_limit_w=e.export_limit_w,
        import_limit_w=e.import_limit_w,
        generation_limit_w=e.generation_limit_w,
        load_limit_w=e.load_limit_w,
        energize=e.energize,
        connect=e.connect,
        ramp_rate_pct_per_s=e.ramp_rate_pct_per_s,
        ramp_time_s=e.ramp_time_s,
    )


@router.get("", dependencies=[READ], response_model=list[SiteRead], summary="List sites")
async def list_sites(sites: Sites) -> list[SiteRead]:
    return [site_read(s) for s in await sites.all()]


@router.post(
    "",
    dependencies=[ADMIN],
    response_model=SiteRead,
    status_code=status.HTTP_201_CREATED,
    summary="Create a site (its stations get the site's envelope at once)",
)
async def create_site(sites: Sites, body: SiteIn) -> SiteRead:
    return site_read(await sites.create(_site(body)))


@router.get("/{site_id}", dependencies=[READ], response_model=SiteRead, summary="A site")
async def get_site(sites: Sites, site_id: str) -> SiteRead:
    return site_read(await sites.get(site_id))


@router.put(
    "/{site_id}",
    dependencies=[ADMIN],
    response_model=SiteRead,
    summary="Replace a site (the body's id must be the path's)",
    description="Stations joining get the site's envelope, stations leaving have it cleared.",
)
async def replace_site(sites: Sites, site_id: str, body: SiteIn) -> SiteRead:
    if body.id != site_id:
        raise InvalidRequest(f"id: the body's id {body.id!r} is not the path's {site_id!r}")
    return site_read(await sites.replace(_site(body)))


@router.delete(
    "/{site_id}",
    dependencies=[ADMIN],
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a site (its stations' envelope profile is cleared)",
)
async def delete_site(sites: Sites, site_id: str) -> Response:
    await sites.delete(site_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{site_id}/envelope",
    dependencies=[READ],
    response_model=EnvelopeViewRead,
    summary="The envelope in force, the bounds it leaves and what each station was sent",
)
async def site_envelope(envelopes: Envelopes, meters: Meters, site_id: str) -> EnvelopeViewRead:
    view = await envelopes.view(site_id)
    return EnvelopeViewRead(
        site_id=view.site_id,
        now=view.now,
        in_force=envelope_read(view.in_force) if view.in_force is not None else None,
        charger_bounds=ChargerBoundsRead(
            max_charge_w=view.charger_bounds.max_charge_w,
            max_discharge_w=view.charger_bounds.max_discharge_w,
        ),
        stations=[
            StationEnforcementRead(
                station_id=station_id,
                max_charge_w=bounds.max_charge_w,
                max_discharge_w=bounds.max_discharge_w,
                enforced=enforced,
                sent_at=last.sent_at,
                status=last.status,
                action=last.action,
                detail=last.detail,
            )
            for station_id, bounds, enforced, last in view.stations
        ],
        upcoming=[envelope_read(e) for e in view.upcoming],
        meter=meter_read(site_id, await meters.view(site_id)),
    )


@router.put(
    "/{site_id}/envelopes/operator",
    dependencies=[ADMIN],
    response_model=EnvelopeViewRead,
    summary="Replace the operator's own envelopes for the site; enforced at once",
    description="Answers the site's envelope view after the stations were sent their profile.",
)
async def put_operator_envelopes(
    envelopes: Envelopes, meters: Meters, site_id: str, body: OperatorEnvelopesIn
) -> EnvelopeViewRead:
    now = envelopes.now()
    items = [
        OperatingEnvelope(
            site_id=site_id,
            source=OPERATOR_SOURCE,
            received_at=now,
            **e.model_dump(),
        )
        for e in body.envelopes
    ]
    await envelopes.replace_operator_envelopes(site_id, items)
    return await site_envelope(envelopes, meters, site_id)


@router.delete(
    "/{site_id}/envelopes/operator",
    dependencies=[ADMIN],
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Clear the operator's own envelopes for the site; enforced at once",
)
async def delete_operator_envelopes(envelopes: Envelopes, site_id: str) -> Response:
    await envelopes.replace_operator_envelopes(site_id, [])
    return Response(status_code=status.HTTP_204_NO_CONTENT)
