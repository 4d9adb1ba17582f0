"""The V2G service: one object made of the parts (vehicles, sessions, prices, planning, fleet,
frequency, backup, economics) plus the background re-planning loop.

Several nodes (one database, a broker router): the re-planning loop of each node re-plans only
the vehicles whose station's websocket that node holds (`CommandRouter.is_local`), so each
vehicle is planned by one node per round, and a station that moves is picked up by its new
node; a price upload through any node counts (its time is read from the database).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from csms.domain.errors import CsmsError
from csms.persistence.repositories import v2g as vrepo
from csms.services.v2g.backup import BackupPart
from csms.services.v2g.charging_needs import ChargingNeedsPart
from csms.services.v2g.control import ControlPart
from csms.services.v2g.economics import EconomicsPart
from csms.services.v2g.grid_services import GridServicesPart
from csms.services.v2g.rules import (
    replan_reasons,
)
from csms.services.v2g.settings import V2gSettings
from csms.services.v2g.telemetry import FleetFiguresPart

log = logging.getLogger(__name__)


class V2gService(
    ChargingNeedsPart, ControlPart, GridServicesPart, BackupPart, EconomicsPart, FleetFiguresPart
):
    """The API, the CLI and the Home Assistant bridge use this one object."""

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

    async def replan_stations(self, site_id: str, station_ids: Sequence[str]) -> list[str]:
        """The site's envelope changed: re-plan the vehicles with a running session at its
        stations, within the new envelope (station ids re-planned). Every station of the site,
        wherever it is connected: the node that learnt of the change re-plans, the command
        router reaches the station's node."""
        done = []
        for station_id in station_ids:
            for record in await self.list_vehicles():
                if record.station_id != station_id:
                    continue
                ctx = await self.session_context(record, self._clock())
                if ctx.transaction is None or ctx.soc is None:
                    continue
                try:
                    await self.optimize_station(station_id, vehicle_id=record.id)
                except CsmsError as exc:
                    log.info("re-plan of %s after site %s's envelope: %s", record.id, site_id, exc)
                    continue
                self.replans += 1
                done.append(station_id)
        return done

    async def grid_services_envelope_changed(
        self, site_id: str, station_ids: Sequence[str]
    ) -> None:
        """The site's envelope changed: a frequency response running at its stations is held
        to the new share (frequency.py), and so is an armed aFRR curve, LocalFrequency profile
        or local-control hand-over (armed.py)."""
        frequency = await self.frequency_envelope_changed(site_id, station_ids)
        for result in frequency:
            log.info("site %s envelope change, frequency response: %s", site_id, result)
        # an under-frequency event re-sent (its results carry the vehicle) holds the slot a
        # LocalFrequency profile uses (FREQUENCY_PROFILE_ID): that profile is not sent over it
        events = {r["station_id"] for r in frequency if "vehicle_id" in r}
        for result in await self.armed_envelope_changed(
            site_id, station_ids, frequency_held=events
        ):
            log.info("site %s envelope change, armed grid service: %s", site_id, result)

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


def v2g_service_for(services: Any) -> V2gService:
    """The V2G service of a CSMS `Services` container, built once and kept on it."""
    found: V2gService | None = getattr(services, "_v2g_service", None)
    if found is None:
        settings = services.settings
        envelopes = getattr(services, "envelopes", None)
        found = V2gService(
            services.db,
            services.commands,
            clock=services.clock,
            settings=V2gSettings.from_settings(settings),
            router=getattr(services, "router", None),  # None: a container without one
            envelope_caps=envelopes.power_caps if envelopes is not None else None,
        )
        services._v2g_service = found
        if envelopes is not None:  # an envelope change re-plans the site's vehicles
            envelopes.add_listener(found.replan_stations)
            envelopes.add_listener(found.grid_services_envelope_changed)
    return found
