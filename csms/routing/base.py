"""How a command reaches the node that holds a station's websocket.

Minimal on purpose: a broker-backed router (NATS/Redis) implements the same methods.
Errors: StationOffline, StationDisconnected, CommandTimeout, CallErrorReceived, and with a
broker BrokerUnavailable (csms.domain.errors).
"""

from __future__ import annotations

from typing import Any, Protocol


class StationLink(Protocol):
    """One live connection, as the router sees it (an OCPP session)."""

    station_id: str

    async def call(self, action: str, payload: dict[str, Any], timeout: float) -> dict[str, Any]:  # noqa: ASYNC109
        """Send a CALL and return the CALLRESULT payload (raises the errors above)."""
        ...

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the websocket."""
        ...


class CommandRouter(Protocol):
    node_id: str

    async def call(
        self,
        station_id: str,
        action: str,
        payload: dict[str, Any],
        timeout: float,  # noqa: ASYNC109
    ) -> dict[str, Any]: ...

    async def is_connected(self, station_id: str) -> bool: ...

    def is_local(self, station_id: str) -> bool:
        """Whether this node holds the station's websocket (no broker read): work done per
        station on every node (V2G re-planning) is done by that node alone."""
        ...

    async def node_of(self, station_id: str) -> str | None:
        """The node id holding the station's connection, None when offline."""
        ...

    async def disconnect(self, station_id: str, reason: str) -> bool:
        """Close the station's websocket on whichever node holds it (a deleted station, a
        revoked credential); True when a connection was closed."""
        ...
