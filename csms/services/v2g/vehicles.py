"""Vehicles: create, read, update, delete; their link to a station and EVSE."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from typing import Any

from csms.domain.errors import AlreadyExists, InvalidRequest, NotFound, UnknownStation
from csms.domain.v2g_records import (
    VehicleRecord,
)
from csms.persistence import repositories as repo
from csms.persistence.repositories import v2g as vrepo
from csms.services.v2g.checks import bounded, in_time_range, to_vehicle, within_horizon
from csms.services.v2g.core import V2gCore
from csms.v2g import bounds as b

log = logging.getLogger(__name__)


class VehiclesPart(V2gCore):
    async def create_vehicle(self, record: VehicleRecord) -> VehicleRecord:
        to_vehicle(record)  # validates
        await self._check_link(record.station_id, record.evse_id)
        now = self._clock()
        self._check_departure(record, now)
        async with self._db.read() as conn:
            if await vrepo.get_vehicle(conn, record.id) is not None:
                raise AlreadyExists(f"vehicle {record.id!r} already exists")
        await self._db.write(lambda c: vrepo.save_vehicle(c, record, now))
        return await self.get_vehicle(record.id)

    async def get_vehicle(self, vehicle_id: str) -> VehicleRecord:
        async with self._db.read() as conn:
            found = await vrepo.get_vehicle(conn, vehicle_id)
        if found is None:
            raise NotFound(f"unknown vehicle {vehicle_id!r}")
        return found

    async def list_vehicles(self, station_id: str | None = None) -> list[VehicleRecord]:
        async with self._db.read() as conn:
            return await vrepo.list_vehicles(conn, station_id)

    async def update_vehicle(self, vehicle_id: str, **changes: Any) -> VehicleRecord:
        current = await self.get_vehicle(vehicle_id)
        updated = replace(current, **changes)
        to_vehicle(updated)
        if "station_id" in changes or "evse_id" in changes:
            await self._check_link(updated.station_id, updated.evse_id)
        if updated.target_soc is not None:
            bounded(updated.target_soc, b.SOC_FRACTION, "target_soc")
        now = self._clock()
        if "departure" in changes:
            self._check_departure(updated, now)
        await self._db.write(lambda c: vrepo.save_vehicle(c, updated, now))
        return await self.get_vehicle(vehicle_id)

    def _check_departure(self, record: VehicleRecord, now: datetime) -> None:
        if record.departure is not None:
            in_time_range(record.departure, "departure")
            within_horizon(now, record.departure, self.settings.max_horizon_h, "departure")

    async def delete_vehicle(self, vehicle_id: str) -> None:
        if not await self._db.write(lambda c: vrepo.delete_vehicle(c, vehicle_id)):
            raise NotFound(f"unknown vehicle {vehicle_id!r}")

    async def _check_link(self, station_id: str | None, evse_id: int | None) -> None:
        if station_id is None:
            if evse_id is not None:
                raise InvalidRequest("evse_id needs station_id")
            return
        if evse_id is not None and evse_id < 1:
            raise InvalidRequest("evse_id must be >= 1")
        async with self._db.read() as conn:
            if await repo.get_station(conn, station_id) is None:
                raise UnknownStation(station_id)

    async def _station_vehicle(self, station_id: str, vehicle_id: str | None) -> VehicleRecord:
        async with self._db.read() as conn:
            if await repo.get_station(conn, station_id) is None:
                raise UnknownStation(station_id)
            linked = await vrepo.list_vehicles(conn, station_id)
        if vehicle_id is not None:
            linked = [v for v in linked if v.id == vehicle_id]
        if not linked:
            raise InvalidRequest(f"no vehicle is linked to station {station_id!r}")
        return linked[0]
