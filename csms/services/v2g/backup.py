"""Backup: station V2G settings, grid/backup state and the emergency-backup switch."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import replace
from datetime import datetime
from typing import Any

from csms.domain.errors import UnknownStation
from csms.domain.v2g_records import (
    StationV2gSettings,
)
from csms.persistence import repositories as repo
from csms.persistence.repositories import v2g as vrepo
from csms.services.v2g.checks import bounded, to_vehicle
from csms.services.v2g.profiles import (
    BACKUP_MESSAGE_ID,
    BACKUP_VENDOR_ID,
)
from csms.services.v2g.records import (
    BackupState,
)
from csms.services.v2g.sessions import SessionsPart
from csms.v2g import (
    backup_hours,
)
from csms.v2g import bounds as b

log = logging.getLogger(__name__)


class BackupPart(SessionsPart):
    async def station_settings(self, station_id: str) -> StationV2gSettings:
        async with self._db.read() as conn:
            if await repo.get_station(conn, station_id) is None:
                raise UnknownStation(station_id)
            return await vrepo.get_station_settings(conn, station_id)

    async def backup_state(
        self, station_id: str, house_load_kw: float | None = None
    ) -> BackupState:
        load = self.settings.house_load_kw if house_load_kw is None else house_load_kw
        bounded(load, b.HOUSE_LOAD_KW, "house_load_kw")
        settings = await self.station_settings(station_id)
        async with self._db.read() as conn:
            events = await vrepo.latest_event(conn, station_id, ["NotifyEvent"])
            linked = await vrepo.list_vehicles(conn, station_id)
        grid_present, backup_active, since = True, False, None
        found_grid = found_backup = False
        for _kind, received, payload in events:  # newest first
            for item in payload.get("eventData", []):
                code = item.get("techCode")
                active = str(item.get("actualValue", "")).lower() == "true"
                when = datetime.fromisoformat(
                    str(item.get("timestamp", received.isoformat())).replace("Z", "+00:00")
                )
                if code in ("grid_lost", "grid_restored") and not found_grid:
                    found_grid = True
                    grid_present = code == "grid_restored" or not active
                    since = when
                if code == "backup_mode" and not found_backup:
                    found_backup = True
                    backup_active = active and "end" not in str(item.get("techInfo", "")).lower()
        vehicle = linked[0] if linked else None
        soc = hours = None
        if vehicle is not None:
            ctx = await self.session_context(vehicle, self._clock())
            soc = ctx.soc
            if soc is not None:
                # V2H backup: the energy above the backup reserve, whether V2G export is on or not.
                value = backup_hours(to_vehicle(vehicle, for_backup=True), soc, load)
                hours = None if math.isinf(value) else value
        return BackupState(
            station_id=station_id,
            grid_present=grid_present,
            backup_active=backup_active or (not grid_present and settings.emergency_backup),
            emergency_backup=settings.emergency_backup,
            since=since,
            vehicle_id=vehicle.id if vehicle else None,
            soc=soc,
            house_load_kw=load,
            backup_hours=hours,
        )

    async def set_emergency_backup(self, station_id: str, enabled: bool) -> dict[str, Any]:
        """DataTransfer vendorId org.openv2g.v2x, messageId EmergencyBackup, data
        {"enabled": bool}: stored when the station answers Accepted."""
        await self.station_settings(station_id)  # 404 for an unknown station
        answer = await self._commands.send(
            station_id,
            "DataTransfer",
            {
                "vendorId": BACKUP_VENDOR_ID,
                "messageId": BACKUP_MESSAGE_ID,
                "data": json.dumps({"enabled": enabled}),
            },
        )
        if answer.get("status") == "Accepted":
            now = self._clock()
            async with self._db.read() as conn:
                current = await vrepo.get_station_settings(conn, station_id)
            updated = replace(current, emergency_backup=enabled)
            await self._db.write(lambda c: vrepo.save_station_settings(c, updated, now))
        return answer
