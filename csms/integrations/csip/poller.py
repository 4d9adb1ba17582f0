"""The CSIP-AUS client's loop over the csip-enabled sites; one node polls each site.

Every `tick_s` the poller lists the csip-enabled sites, takes or renews the polling lease of
each (csms.persistence.repositories.csip: a database row lease, `lease_s` long, renewed at
half-life) and runs `CsipSiteClient.tick` for the sites it holds. A node that dies stops
renewing; after `lease_s` another node's poller takes the site over and resumes from the
stored state (the EndDevice is found again by its LFDI, not registered twice). Any node serves
`GET /sites/{id}/csip` from the database.

`StationsSiteSource` is the default source of what the client reports: the site's ratings
are the sum of its stations' (csms.services.station_ratings: what each station reported in
its device model, else the `station_rated_*` settings; the same function the envelope share
uses), connected when a station is connected to this node, operating when it moves power
(> 50 W).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from csms.domain.sites import Site
from csms.domain.station_ratings import RatingFallback
from csms.integrations.csip.client import CsipSiteClient, Db
from csms.integrations.csip.convert import SiteLiveState, SiteRatings
from csms.integrations.csip.site_extras import CsipSiteExtras
from csms.persistence.repositories import csip as repo
from csms.persistence.repositories import sites as sites_repo
from csms.services.station_ratings import station_ratings

log = logging.getLogger("csms.csip")

OPERATING_W = 50.0


class StationsSiteSource:
    def __init__(
        self,
        connected_ids: Callable[[], Collection[str]],
        power_w: Callable[[str], float | None],
        *,
        db: Db,
        fallback: RatingFallback,
    ) -> None:
        self.connected_ids = connected_ids
        self.power_w = power_w
        self.db = db
        self.fallback = fallback

    async def ratings(self, site: Site) -> SiteRatings:
        """The site's stations together (a site without stations yet: one station's
        fallback, so the DER is never reported as rated 0 W)."""
        if not site.station_ids:
            return SiteRatings(self.fallback.charge_w, self.fallback.discharge_w)
        async with self.db.read() as conn:  # type: ignore[attr-defined]
            found = await station_ratings(conn, site.station_ids, self.fallback)
        return SiteRatings(sum(c for c, _ in found), sum(d for _, d in found))

    async def live_state(self, site: Site) -> SiteLiveState:
        connected = set(self.connected_ids())
        powers = [p for s in site.station_ids if s in connected and (p := self.power_w(s))]
        return SiteLiveState(
            connected=any(s in connected for s in site.station_ids),
            operating=any(abs(p) > OPERATING_W for p in powers),
            charging=any(p > OPERATING_W for p in powers),
            discharging=any(p < -OPERATING_W for p in powers),
        )


class CsipPoller:
    def __init__(
        self,
        client: CsipSiteClient,
        db: Db,
        node_id: str,
        *,
        clock: Callable[[], datetime],
        tick_s: float = 2.0,
        lease_s: float = 60.0,
        extras: CsipSiteExtras | None = None,
    ) -> None:
        self.client = client
        self.db = db
        self.node_id = node_id[:128]
        self.clock = clock
        self.tick_s = tick_s
        self.lease_s = lease_s
        self._held: dict[str, datetime] = {}  # site -> our lease's end
        self._task: asyncio.Task[None] | None = None
        # -- telemetry, subscriptions, notifications (csms/integrations/csip/site_extras.py)
        self.extras = extras
        self._wake = asyncio.Event()

    async def _hold(self, site_id: str, now: datetime) -> bool:
        until = self._held.get(site_id)
        if until is not None and until - now > timedelta(seconds=self.lease_s / 2):
            return True
        new_until = now + timedelta(seconds=self.lease_s)

        async def op(conn: AsyncConnection) -> bool:
            return await repo.acquire_lease(conn, site_id, self.node_id, now, new_until)

        if await self.db.write(op):
            self._held[site_id] = new_until
            return True
        self._held.pop(site_id, None)
        return False

    async def run_once(self) -> list[str]:
        """One round: the sites this node polled."""
        async with self.db.read() as conn:  # type: ignore[attr-defined]
            sites = await sites_repo.list_sites(conn, csip_only=True)
        polled = []
        for site in sites:
            if await self._hold(site.id, self.clock()):
                if self.extras is not None:
                    await self.extras.before_tick(site)
                state = await self.client.tick(site)
                if self.extras is not None:
                    await self.extras.after_tick(site, state)
                polled.append(site.id)
        for gone in set(self._held) - {s.id for s in sites}:
            self._held.pop(gone, None)
            if self.extras is not None:
                self.extras.forget(gone)
        return polled

    async def run(self) -> None:
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database or a bug: the next round tries again
                log.exception("CSIP-AUS poll round failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.tick_s)
            self._wake.clear()

    def wake(self, site_id: str | None = None) -> None:
        """A notification was served (on_notification): run a round now rather than after
        tick_s; the round finds it in the database (site_extras) for the sites held here."""
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="csip-poller")

    async def stop(self) -> None:
        """Stop and release the leases so another node takes the sites over at once."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for site_id in list(self._held):

            async def op(conn: AsyncConnection, site_id: str = site_id) -> None:
                await repo.release_lease(conn, site_id, self.node_id)

            with contextlib.suppress(Exception):
                await self.db.write(op)
        self._held.clear()
        await self.client.transport.aclose()
