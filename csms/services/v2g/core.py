"""What every V2G service part shares: the database, the command sender, the clock, the
settings and the node's router."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from csms.persistence.database import Database
from csms.routing.base import CommandRouter
from csms.services.common import Clock, CommandSender, utcnow
from csms.services.v2g.settings import V2gSettings
from csms.v2g.vehicle import PowerCap, VehicleSession

# Station id -> its OCPP version as negotiated ("2.1", "ocpp2.1", ...; None = not known).
StationVersionLookup = Callable[[str], Awaitable[str | None]]
# (station id, now) -> the station's share of its site's operating envelope from now (empty:
# no envelope); services/envelopes.py gives it.
EnvelopeCapsLookup = Callable[[str, datetime], Awaitable[tuple[PowerCap, ...]]]


class V2gCore:
    """The state each part (vehicles.py, sessions.py, ...) reads; V2gService combines them."""

    def __init__(
        self,
        db: Database,
        commands: CommandSender,
        *,
        clock: Clock = utcnow,
        settings: V2gSettings | None = None,
        router: CommandRouter | None = None,
        versions: StationVersionLookup | None = None,
        envelope_caps: EnvelopeCapsLookup | None = None,
    ) -> None:
        """`router`: the node's command router; with it the re-planning loop plans only the
        vehicles at stations this node holds (without it, every vehicle: one node).
        `versions`: each station's OCPP version (services/v2g/v2x.py says the fallback)."""
        self._db = db
        self._commands = commands
        self._router = router
        self._versions = versions
        self._envelope_caps = envelope_caps
        self._clock = clock
        self.settings = settings or V2gSettings()
        # Serializes this node's samples (the row lock serializes the nodes).
        self._frequency_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.replans = 0
        # (station, transaction) -> EV-schedule renegotiations sent (bounded, oldest dropped).
        self._renegotiations: OrderedDict[tuple[str, str], int] = OrderedDict()
        # (station, EVSE) -> the TxProfile being sent for the EV's needs: the EV may answer
        # with its schedule before the CSMS has stored the station's Accepted.
        self._needs_in_flight: dict[tuple[str, int], dict[str, Any]] = {}

    def now(self) -> datetime:
        return self._clock()

    async def power_caps(self, station_id: str | None, now: datetime) -> tuple[PowerCap, ...]:
        """The station's share of its site's envelope from `now` (empty: none applies)."""
        if station_id is None or self._envelope_caps is None:
            return ()
        return await self._envelope_caps(station_id, now)

    async def within_envelope(
        self, station_id: str | None, session: VehicleSession, now: datetime
    ) -> VehicleSession:
        """The session with its station's envelope caps, for the planners."""
        caps = await self.power_caps(station_id, now)
        return replace(session, power_caps=caps) if caps else session
