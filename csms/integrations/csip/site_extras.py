"""What the poller does for each site it holds besides `CsipSiteClient.tick` (issue 18):
telemetry, subscriptions, and the re-poll a notification asks for.

- before the client's tick: a notification served for the site since we last looked (by this
  node or any other: `latest_notification` in csip_subscriptions) makes the FSA and DERProgram
  stages due now, so the tick re-reads the controls at once instead of at the server's
  pollRate. The node serving the notification only wakes its own poller; the node holding the
  site's lease finds the notification in the database on its next round.
- after the tick, for a registered site: `CsipTelemetry.tick` (the MirrorUsagePoints, then a
  reading per postRate period; it decides what is due) and, when a notification base URL is
  configured, `CsipSubscriptions.ensure_for_site` once registered, after every notified re-poll
  (a new program brings new lists to subscribe to) and every `resubscribe_s`.
A server error here is logged and retried on a later round; it never stops the poll.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from csms.domain.sites import Site
from csms.integrations.csip.notifications import CsipSubscriptions
from csms.integrations.csip.telemetry import CsipTelemetry, Db
from csms.integrations.csip.transport import CsipError
from csms.persistence.repositories import csip as repo
from csms.persistence.repositories import csip_telemetry as telemetry_repo
from csms.persistence.repositories import sites as sites_repo
from csms.persistence.repositories.csip import CsipSiteState

log = logging.getLogger("csms.csip")

# A notification re-reads what decides the controls: the program lists and the controls.
NOTIFIED_STAGES = ("fsa", "derp")


class CsipSiteExtras:
    def __init__(
        self,
        db: Db,
        telemetry: CsipTelemetry,
        subscriptions: CsipSubscriptions | None,
        *,
        clock: Callable[[], datetime],
        resubscribe_s: float = 900.0,
    ) -> None:
        self.db = db
        self.telemetry = telemetry
        self.subscriptions = subscriptions
        self.clock = clock
        self.resubscribe_s = resubscribe_s
        self._seen: dict[str, datetime | None] = {}  # site -> the latest notification seen
        self._subscribed_at: dict[str, datetime] = {}

    async def before_tick(self, site: Site) -> bool:
        """True when a notification made the site's control stages due now."""
        if self.subscriptions is None:
            return False
        async with self.db.read() as conn:
            latest = await telemetry_repo.latest_notification(conn, site.id)
        first_look = site.id not in self._seen
        seen = self._seen.get(site.id)
        self._seen[site.id] = latest
        # First look (just took the site over): the client reads everything anyway.
        if first_look or latest is None or (seen is not None and latest <= seen):
            return False
        now = self.clock()

        async def op(conn: AsyncConnection) -> None:
            state = await repo.get_state(conn, site.id)
            if state is None:
                return
            for stage in NOTIFIED_STAGES:
                state.hrefs.pop(f"due:{stage}", None)  # not scheduled = due
            await repo.save_state(conn, state, now)

        await self.db.write(op)
        self._subscribed_at.pop(site.id, None)  # re-discover what to subscribe to after it
        return True

    async def after_tick(self, site: Site, state: CsipSiteState) -> None:
        if state.registration != "registered" or state.edev_href is None:
            return
        now = self.clock()
        if site.lfdi is None:  # registered in this very tick: the stored site has its LFDI
            async with self.db.read() as conn:
                site = await sites_repo.get_site(conn, site.id) or site
        mup_list = state.hrefs.get("mup_list")
        if mup_list:
            try:
                await self.telemetry.tick(site, mup_list, now)
            except CsipError as error:
                log.warning("CSIP-AUS telemetry of site %s: %s", site.id, error)
        edev_list = state.hrefs.get("edev_list")
        if self.subscriptions is None or not edev_list:
            return
        last = self._subscribed_at.get(site.id)
        if last is not None and timedelta(0) <= now - last < timedelta(seconds=self.resubscribe_s):
            return
        try:
            made = await self.subscriptions.ensure_for_site(site, edev_list, state.edev_href, now)
        except CsipError as error:
            log.warning("CSIP-AUS subscriptions of site %s: %s", site.id, error)
            return
        if made:
            log.info("CSIP-AUS site %s subscribed to %s", site.id, ", ".join(made))
        self._subscribed_at[site.id] = now

    def forget(self, site_id: str) -> None:
        self._seen.pop(site_id, None)
        self._subscribed_at.pop(site_id, None)
