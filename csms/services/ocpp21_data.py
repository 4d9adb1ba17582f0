"""OCPP 2.1 data that has a table of its own: periodic event streams (N: Open/Close and the
NotifyPeriodicEventStream SEND) and the schedule updates held for Dynamic charging profiles
(K: PullDynamicScheduleUpdate). Other 2.1 notifications (DER alarms and reports, settlements,
battery swaps, ...) are station events (`EventService`, `GET /stations/{id}/events?kind=`).

Read by the V2G services (grid-service measurement, dynamic setpoints) through this service.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from csms.domain.errors import InvalidRequest, UnknownStation
from csms.domain.models import DynamicScheduleUpdate, Page, PeriodicStream, PeriodicStreamValue
from csms.oca_schemas import RequestRefused, check_request
from csms.persistence import repositories as repo
from csms.persistence.database import Database
from csms.persistence.repositories import ocpp21 as r21
from csms.services.common import Clock, check_page, parse_ocpp_datetime, utcnow
from v2g_shared.ocpp_versions import OcppVersion

# Values kept from one NotifyPeriodicEventStream (the schema sets no maximum; the frame size
# limit bounds it anyway, this keeps one message to one bounded insert).
MAX_STREAM_VALUES_PER_MESSAGE = 5000
# |t| beyond this is no offset of a stream message (about 11.6 days); basetime + t must fit.
MAX_STREAM_OFFSET_S = 1e6


class StreamDataRefused(ValueError):
    """A NotifyPeriodicEventStream the CSMS does not store (out of bounds)."""


class Ocpp21DataService:
    def __init__(self, db: Database, *, clock: Clock = utcnow) -> None:
        self._db = db
        self._clock = clock

    # ---- periodic event streams ----------------------------------------------------------

    async def open_stream(self, station_id: str, constant_data: dict[str, Any]) -> PeriodicStream:
        params = constant_data.get("params") or {}
        stream = PeriodicStream(
            station_id=station_id,
            stream_id=int(constant_data["id"]),
            variable_monitoring_id=int(constant_data["variableMonitoringId"]),
            interval_s=params.get("interval"),
            values_per_message=params.get("values"),
            constant_data=constant_data,
            opened_at=self._clock(),
        )
        await self._db.write(lambda c: r21.upsert_periodic_stream(c, stream))
        return stream

    async def close_stream(self, station_id: str, stream_id: int) -> bool:
        now = self._clock()
        return bool(
            await self._db.write(lambda c: r21.close_periodic_stream(c, station_id, stream_id, now))
        )

    @staticmethod
    def stream_values(
        station_id: str, payload: dict[str, Any], now: datetime
    ) -> list[PeriodicStreamValue]:
        """The rows of one NotifyPeriodicEventStream; StreamDataRefused when out of bounds."""
        data = payload["data"]
        if len(data) > MAX_STREAM_VALUES_PER_MESSAGE:
            raise StreamDataRefused(
                f"{len(data)} data elements; at most {MAX_STREAM_VALUES_PER_MESSAGE} per message"
            )
        basetime = parse_ocpp_datetime(payload["basetime"])
        stream_id = int(payload["id"])
        rows = []
        for element in data:
            offset = float(element["t"])
            if not (math.isfinite(offset) and abs(offset) <= MAX_STREAM_OFFSET_S):
                raise StreamDataRefused(f"t {offset!r} is beyond +-{MAX_STREAM_OFFSET_S:g} s")
            try:
                timestamp = basetime + timedelta(seconds=offset)
            except OverflowError as exc:
                raise StreamDataRefused("basetime + t is out of range") from exc
            rows.append(
                PeriodicStreamValue(station_id, stream_id, timestamp, str(element["v"]), now)
            )
        return rows

    async def record_stream_values(self, station_id: str, payload: dict[str, Any]) -> int:
        rows = self.stream_values(station_id, payload, self._clock())
        await self._db.write(lambda c: r21.insert_stream_values(c, rows))
        return len(rows)

    async def streams(self, station_id: str) -> list[PeriodicStream]:
        async with self._db.read() as conn:
            if await repo.get_station(conn, station_id) is None:
                raise UnknownStation(station_id)
            return await r21.list_periodic_streams(conn, station_id)

    async def values(
        self,
        station_id: str,
        stream_id: int,
        offset: int = 0,
        limit: int = 100,
        since: datetime | None = None,
    ) -> Page[PeriodicStreamValue]:
        check_page(offset, limit)
        async with self._db.read() as conn:
            if await repo.get_station(conn, station_id) is None:
                raise UnknownStation(station_id)
            return await r21.list_stream_values(conn, station_id, stream_id, offset, limit, since)

    # ---- dynamic schedules ---------------------------------------------------------------

    async def set_schedule_update(
        self, station_id: str, charging_profile_id: int, schedule_update: dict[str, Any]
    ) -> DynamicScheduleUpdate:
        """Hold `schedule_update` (ChargingScheduleUpdateType) for the station's Dynamic
        profile: the answer to its next PullDynamicScheduleUpdate. Checked against the 2.1
        schema (InvalidRequest)."""
        try:
            check_request(
                "UpdateDynamicSchedule",
                {"chargingProfileId": charging_profile_id, "scheduleUpdate": schedule_update},
                OcppVersion.V21,
            )
        except RequestRefused as refused:
            raise InvalidRequest(f"scheduleUpdate invalid: {refused}") from refused
        update = DynamicScheduleUpdate(
            station_id, charging_profile_id, schedule_update, self._clock()
        )
        async with self._db.read() as conn:
            if await repo.get_station(conn, station_id) is None:
                raise UnknownStation(station_id)
        await self._db.write(lambda c: r21.upsert_schedule_update(c, update))
        return update

    async def schedule_update(
        self, station_id: str, charging_profile_id: int
    ) -> DynamicScheduleUpdate | None:
        async with self._db.read() as conn:
            return await r21.get_schedule_update(conn, station_id, charging_profile_id)

    async def pull_answer(self, station_id: str, charging_profile_id: int) -> dict[str, Any]:
        """PullDynamicScheduleUpdateResponse: Accepted with the update held for the profile;
        Accepted without one for a profile the CSMS knows but holds no update for; Rejected
        for a profile the CSMS does not know."""
        async with self._db.read() as conn:
            held = await r21.get_schedule_update(conn, station_id, charging_profile_id)
            if held is not None:
                return {"status": "Accepted", "scheduleUpdate": held.schedule_update}
            profiles = await repo.list_charging_profiles(conn, station_id)
        if any(p.profile_id == charging_profile_id for p in profiles):
            return {"status": "Accepted"}
        return {
            "status": "Rejected",
            "statusInfo": {
                "reasonCode": "UnknownProfile",
                "additionalInfo": f"no charging profile {charging_profile_id} known",
            },
        }
