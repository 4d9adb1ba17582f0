"""Live updates for dashboard viewers: one in-process fan-out fed by the services.

The services publish what stations report (connector status, boot, meter values, transaction
state, events) as small dicts; the feed keeps the latest power/SoC/energy per station and,
once per tick, encodes the tick's events ONCE as a server-sent-events chunk that every viewer's
queue receives as the same bytes. A viewer costs one queue put per tick, never a database
query. Connection changes come from the router's local connection list, diffed once per tick
(shared by all viewers). Only this node's stations are seen live; other nodes' reach the
dashboard through the REST API's reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from csms.domain.models import MeterSample

log = logging.getLogger(__name__)

# Bounds: what one tick carries and how far a slow viewer may fall behind before it is dropped.
MAX_EVENTS_PER_TICK = 2000
VIEWER_QUEUE_TICKS = 64
MAX_VIEWERS = 1000

POWER_IMPORT = "Power.Active.Import"
POWER_EXPORT = "Power.Active.Export"
SOC = "SoC"
ENERGY_IMPORT = "Energy.Active.Import.Register"
ENERGY_EXPORT = "Energy.Active.Export.Register"


@dataclass
class StationLive:
    """The latest measured values of one station (this node only)."""

    power_w: float = 0.0  # + charge (import), - discharge (export)
    soc: float | None = None
    energy_import_wh: float | None = None
    energy_export_wh: float | None = None
    transaction_id: str | None = None
    updated: float = 0.0


@dataclass(eq=False)  # hashed by identity: kept in a set
class Viewer:
    queue: asyncio.Queue[bytes]
    dropped: bool = False


@dataclass
class LiveFeed:
    tick_s: float = 0.5
    connected_ids: Callable[[], list[str]] | None = None
    stations: dict[str, StationLive] = field(default_factory=dict)
    _pending: list[dict[str, Any]] = field(default_factory=list)
    _viewers: set[Viewer] = field(default_factory=set)
    _connected: set[str] = field(default_factory=set)
    _task: asyncio.Task[None] | None = None
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    overflowed: int = 0
    encoded_ticks: int = 0

    # -- publishing (called by the services) --------------------------------------------------
    def publish(self, event: dict[str, Any]) -> None:
        if not self._viewers:
            return  # nobody watching: nothing to encode (a new viewer loads rows by REST)
        if len(self._pending) >= MAX_EVENTS_PER_TICK:
            self.overflowed += 1
            return
        self._pending.append(event)

    def meter_samples(self, samples: list[MeterSample], transaction_id: str | None = None) -> None:
        """Meter values: power (+ import, - export), SoC and energy registers per station; one
        `meter` event per station and timestamp (none while nobody watches: the latest values
        are kept all the same, for the dashboard's rows and power totals)."""
        watching = bool(self._viewers)
        changed: dict[str, StationLive] = {}
        measured_at: dict[str, float] = {}
        import_w: dict[str, float] = {}
        export_w: dict[str, float] = {}
        for sample in samples:
            if sample.phase is not None:
                continue  # totals only; per-phase values would count the power three times
            live = self.stations.get(sample.station_id)
            if live is None:  # not setdefault: that would build a StationLive per sample
                live = self.stations[sample.station_id] = StationLive()
            value = _to_base_unit(sample.value, sample.unit)
            if sample.measurand == POWER_IMPORT:
                import_w[sample.station_id] = import_w.get(sample.station_id, 0.0) + value
            elif sample.measurand == POWER_EXPORT:
                export_w[sample.station_id] = export_w.get(sample.station_id, 0.0) + value
            elif sample.measurand == SOC:
                live.soc = sample.value
            elif sample.measurand == ENERGY_IMPORT:
                live.energy_import_wh = value
            elif sample.measurand == ENERGY_EXPORT:
                live.energy_export_wh = value
            else:
                continue
            if transaction_id or sample.transaction_id:
                live.transaction_id = transaction_id or sample.transaction_id
            changed[sample.station_id] = live
            if watching:
                at = sample.timestamp.timestamp()
                measured_at[sample.station_id] = max(at, measured_at.get(sample.station_id, at))
        now = time.time()
        for station_id, live in changed.items():
            if station_id in import_w or station_id in export_w:
                live.power_w = import_w.get(station_id, 0.0) - export_w.get(station_id, 0.0)
            live.updated = now
            if not watching:
                continue
            self.publish(
                {
                    "type": "meter",
                    "station": station_id,
                    "t": measured_at[station_id],  # the station's clock, as in the meter values
                    "power_w": live.power_w,
                    "soc": live.soc,
                    "energy_import_wh": live.energy_import_wh,
                    "energy_export_wh": live.energy_export_wh,
                    "transaction_id": live.transaction_id,
                }
            )

    def transaction_ended(self, station_id: str, transaction_id: str) -> None:
        live = self.stations.get(station_id)
        if live is not None and live.transaction_id == transaction_id:
            live.power_w = 0.0
            live.transaction_id = None

    # -- reading ------------------------------------------------------------------------------
    def power_totals_w(self) -> tuple[float, float]:
        """(import, export) over this node's stations now, both >= 0."""
        charging = sum(s.power_w for s in self.stations.values() if s.power_w > 0)
        discharging = -sum(s.power_w for s in self.stations.values() if s.power_w < 0)
        return charging, discharging

    def connected_ids_sorted(self) -> list[str]:
        """This node's connected stations, by id (the router's list, read now)."""
        return sorted(self.connected_ids()) if self.connected_ids is not None else []

    def connected_count(self) -> int:
        return len(self.connected_ids()) if self.connected_ids is not None else 0

    @property
    def viewer_count(self) -> int:
        return len(self._viewers)

    # -- viewers ------------------------------------------------------------------------------
    def subscribe(self) -> Viewer | None:
        """A new viewer, or None when MAX_VIEWERS are watching already."""
        if len(self._viewers) >= MAX_VIEWERS:
            return None
        viewer = Viewer(asyncio.Queue(VIEWER_QUEUE_TICKS))
        self._viewers.add(viewer)
        return viewer

    def unsubscribe(self, viewer: Viewer) -> None:
        self._viewers.discard(viewer)

    def end_viewers(self) -> None:
        """End every viewer's stream (at shutdown: open streams would hold the server up)."""
        for viewer in list(self._viewers):
            viewer.dropped = True
            with contextlib.suppress(asyncio.QueueFull):
                viewer.queue.put_nowait(b"")  # wakes the stream, which sees `dropped`
        self._viewers.clear()

    # -- the tick -----------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="csms-live-feed")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            try:
                self.flush()
            except Exception:  # a bad event must not end live updates for everyone
                log.exception("live feed tick failed")

    def _connection_changes(self) -> None:
        if self.connected_ids is None:
            return
        now_connected = set(self.connected_ids())
        for station_id in sorted(now_connected - self._connected):
            self.publish({"type": "connection", "station": station_id, "connected": True})
        for station_id in sorted(self._connected - now_connected):
            self.publish({"type": "connection", "station": station_id, "connected": False})
            live = self.stations.get(station_id)
            if live is not None:
                live.power_w = 0.0
        self._connected = now_connected

    def flush(self) -> bytes | None:
        """Encode this tick's events once and hand the same bytes to every viewer."""
        self._connection_changes()
        if not self._pending:
            return None
        events, self._pending = self._pending, []
        chunk = f"id: {next(self._ids)}\nevent: batch\ndata: {json.dumps(events)}\n\n".encode()
        self.encoded_ticks += 1
        for viewer in list(self._viewers):
            try:
                viewer.queue.put_nowait(chunk)
            except asyncio.QueueFull:
                # Too slow a reader: dropped (its stream ends; the browser reconnects and
                # reloads), so that memory per viewer stays bounded.
                viewer.dropped = True
                self._viewers.discard(viewer)
        return chunk


def _to_base_unit(value: float, unit: str | None) -> float:
    if unit in ("kW", "kWh"):
        return value * 1000.0
    return value
