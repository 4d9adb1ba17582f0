"""Sites (issue 18): create, change, delete a site and its stations, with the errors the API
answers (404 unknown site or station, 409 a station in another site or a taken id/LFDI, 422
invalid fields). A change of a site's stations is enforced at once: stations joining get the
site's envelope, stations leaving have it cleared."""

from __future__ import annotations

import logging

from csms.domain.errors import AlreadyExists, InvalidRequest, NotFound, UnknownStation
from csms.domain.sites import Site
from csms.persistence import repositories as repo
from csms.persistence.database import Database
from csms.persistence.repositories import sites as srepo
from csms.services.common import Clock, utcnow
from csms.services.envelopes import EnvelopeService

log = logging.getLogger(__name__)


class SiteService:
    def __init__(
        self,
        db: Database,
        envelopes: EnvelopeService,
        *,
        clock: Clock = utcnow,
        enforce: bool = True,
    ) -> None:
        """`enforce` False (the one-shot CLI, which holds no station): changes reach the
        stations through the running server's refresh round (EnvelopeService.refresh_due)."""
        self._db = db
        self._envelopes = envelopes
        self._clock = clock
        self.enforce = enforce

    async def all(self) -> list[Site]:
        async with self._db.read() as conn:
            return await srepo.list_sites(conn)

    async def get(self, site_id: str) -> Site:
        async with self._db.read() as conn:
            site = await srepo.get_site(conn, site_id)
        if site is None:
            raise NotFound(f"no site {site_id!r}")
        return site

    async def _check(self, site: Site, *, new: bool) -> None:
        async with self._db.read() as conn:
            if new and await srepo.get_site(conn, site.id) is not None:
                raise AlreadyExists(f"site {site.id!r} exists already")
            if site.lfdi is not None:
                for other in await srepo.list_sites(conn):
                    if other.id != site.id and (other.lfdi or "").lower() == site.lfdi.lower():
                        raise AlreadyExists(f"lfdi belongs to site {other.id!r} already")
            for station_id in site.station_ids:
                if await repo.get_station(conn, station_id) is None:
                    raise UnknownStation(station_id)
                owner = await srepo.site_of_station(conn, station_id)
                if owner is not None and owner != site.id:
                    raise AlreadyExists(f"station {station_id!r} already belongs to site {owner!r}")

    async def create(self, site: Site) -> Site:
        await self._check(site, new=True)
        now = self._clock()
        try:
            await self._db.write(lambda c: srepo.insert_site(c, site, now))
        except srepo.StationInAnotherSite as exc:  # a concurrent change
            raise AlreadyExists(str(exc)) from exc
        if site.station_ids and self.enforce:
            await self._envelopes.envelopes_changed(site.id)
        return await self.get(site.id)

    async def replace(self, site: Site) -> Site:
        before = await self.get(site.id)
        await self._check(site, new=False)
        now = self._clock()
        try:
            found = await self._db.write(lambda c: srepo.update_site(c, site, now))
        except srepo.StationInAnotherSite as exc:
            raise AlreadyExists(str(exc)) from exc
        if not found:
            raise NotFound(f"no site {site.id!r}")
        left = [s for s in before.station_ids if s not in site.station_ids]
        if before.station_ids != site.station_ids and self.enforce:
            await self._envelopes.envelopes_changed(site.id)
        await self._release(left)
        return await self.get(site.id)

    async def delete(self, site_id: str) -> None:
        before = await self.get(site_id)
        if not await self._db.write(lambda c: srepo.delete_site(c, site_id)):
            raise NotFound(f"no site {site_id!r}")
        await self._release(list(before.station_ids))

    async def _release(self, station_ids: list[str]) -> None:
        """Stations no longer in the site: the envelope profile they may hold is cleared."""
        if not self.enforce:
            return
        for station_id in station_ids:
            await self._envelopes.release_station(station_id)


def site_or_422(**fields: object) -> Site:
    """A Site from API fields; its own checks (NMI checksum ...) answer 422."""
    try:
        return Site(**fields)  # type: ignore[arg-type]
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from exc
