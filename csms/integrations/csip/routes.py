"""`GET /sites/{site_id}/csip`: the CSIP-AUS client's view of a site (read scope), served by
any node from the database: registration state, EndDevice href, last poll, next poll, last
error, the controls in force, the server's poll rates and the node polling the site."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, FastAPI
from pydantic import BaseModel

from csms.api.app import API_PREFIX
from csms.api.deps import READ
from csms.api.errors import ApiProblem
from csms.persistence.repositories import csip as repo
from csms.persistence.repositories import sites as sites_repo


class CsipSiteRead(BaseModel):
    site_id: str
    csip_enabled: bool
    registration: str  # unregistered | registered | pin_mismatch | error
    end_device_href: str | None
    lfdi: str | None
    sfdi: int | None
    last_poll_at: datetime | None
    next_poll_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    active_control_ids: list[str]
    poll_rates_s: dict[str, int]
    polled_by: str | None


def install(app: FastAPI, db: Any, prefix: str = API_PREFIX) -> None:
    """Add the route to `app` (csms/app.py, after create_api), reading from `db`
    (csms.persistence.database.Database)."""
    router = APIRouter(prefix=prefix + "/sites/{site_id}", tags=["sites"])

    @router.get("/csip", dependencies=[READ], response_model=CsipSiteRead)
    async def site_csip(site_id: str) -> CsipSiteRead:
        return await csip_view(db, site_id)

    app.include_router(router)


async def csip_view(db: Any, site_id: str) -> CsipSiteRead:
    async with db.read() as conn:
        site = await sites_repo.get_site(conn, site_id)
        if site is None:
            raise ApiProblem(404, f"no site {site_id!r}")
        state = await repo.get_state(conn, site_id) or repo.CsipSiteState(site_id)
    return CsipSiteRead(
        site_id=site_id,
        csip_enabled=site.csip_enabled,
        registration=state.registration,
        end_device_href=state.edev_href,
        lfdi=site.lfdi,
        sfdi=site.sfdi,
        last_poll_at=state.last_poll_at,
        next_poll_at=state.next_poll_at,
        last_error=state.last_error,
        last_error_at=state.last_error_at,
        active_control_ids=state.active_controls,
        poll_rates_s=state.poll_rates,
        polled_by=state.lease_node,
    )
