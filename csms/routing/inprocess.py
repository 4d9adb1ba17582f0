"""The embedded router: every station connection lives in this process."""

from __future__ import annotations

import os
import socket
from typing import Any

from csms.domain.errors import StationOffline
from csms.routing.base import StationLink


class InProcessRouter:
    def __init__(self, node_id: str | None = None) -> None:
        self.node_id = node_id or f"{socket.gethostname()}:{os.getpid()}"
        self._links: dict[str, StationLink] = {}

    # -- registry, used by the OCPP server --
    def register(self, link: StationLink) -> StationLink | None:
        """Make `link` the station's connection; returns the one it replaces, if any."""
        previous = self._links.get(link.station_id)
        self._links[link.station_id] = link
        return previous if previous is not link else None

    def unregister(self, link: StationLink) -> None:
        """Forget `link`, unless a newer connection has already replaced it."""
        if self._links.get(link.station_id) is link:
            del self._links[link.station_id]

    def link(self, station_id: str) -> StationLink | None:
        return self._links.get(station_id)

    def connected_station_ids(self) -> list[str]:
        return sorted(self._links)

    # -- CommandRouter --
    async def call(
        self,
        station_id: str,
        action: str,
        payload: dict[str, Any],
        timeout: float,  # noqa: ASYNC109
    ) -> dict[str, Any]:
        link = self._links.get(station_id)
        if link is None:
            raise StationOffline(station_id)
        return await link.call(action, payload, timeout)

    async def is_connected(self, station_id: str) -> bool:
        return station_id in self._links

    def is_local(self, station_id: str) -> bool:
        return station_id in self._links

    async def node_of(self, station_id: str) -> str | None:
        return self.node_id if station_id in self._links else None

    async def disconnect(self, station_id: str, reason: str) -> bool:
        link = self._links.get(station_id)
        if link is None:
            return False
        await link.close(1000, reason)
        return True
