"""The holder cache of a broker router: which node holds each remote station, as last read or
announced. A hint, never trusted for a result (csms.routing.broker says how it is verified).

An entry is only replaced by a record of the same or a newer revision; stations held by this
node itself are never cached; a cache built with `enabled=False` stays empty (every remote
command reads the presence record first).
"""

from __future__ import annotations

from csms.routing.wire import Claimed


class HolderCache:
    def __init__(self, own_node_id: str, *, enabled: bool = True) -> None:
        self.own_node_id = own_node_id
        self.enabled = enabled
        self._entries: dict[str, Claimed] = {}

    def __contains__(self, station_id: object) -> bool:
        return station_id in self._entries

    def get(self, station_id: str) -> Claimed | None:
        return self._entries.get(station_id)

    def remember(self, station_id: str, claimed: Claimed) -> None:
        if not self.enabled or claimed.holder.node_id == self.own_node_id:
            return
        cached = self._entries.get(station_id)
        if cached is None or claimed.revision >= cached.revision:
            self._entries[station_id] = claimed

    def discard(self, station_id: str) -> None:
        """Forget whatever is cached for the station."""
        self._entries.pop(station_id, None)

    def forget(self, station_id: str, claimed: Claimed) -> None:
        """Forget the entry if it is still `claimed` (that holder failed)."""
        if self._entries.get(station_id) == claimed:
            del self._entries[station_id]

    def forget_older(self, station_id: str, revision: int) -> None:
        """Forget the entry if it was written before `revision` (a newer claim exists)."""
        cached = self._entries.get(station_id)
        if cached is not None and cached.revision < revision:
            del self._entries[station_id]

    def forget_released(self, station_id: str, node_id: str, revision: int) -> None:
        """`node_id` released the claim it wrote at `revision`."""
        cached = self._entries.get(station_id)
        if cached is not None and cached.holder.node_id == node_id and cached.revision <= revision:
            del self._entries[station_id]

    def forget_node(self, node_id: str, keep_incarnation: str | None = None) -> None:
        """Forget the cached holders on `node_id` (all, or those of another life than
        `keep_incarnation`): it died, left or restarted."""
        stale = [
            station_id
            for station_id, claimed in self._entries.items()
            if claimed.holder.node_id == node_id and claimed.holder.incarnation != keep_incarnation
        ]
        for station_id in stale:
            del self._entries[station_id]

    def clear(self) -> None:
        self._entries.clear()


__all__ = ["HolderCache"]
