"""What a station reports, stored: boot, heartbeat, connector status, device-model reports,
reported charging profiles, notifications kept as events, and CSRs with their certificates.
The OCPP handlers parse the frames; this service only stores (each call returns once its
rows are durably committed in the next group commit)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from csms.domain.models import (
    BootInfo,
    CertificateRecord,
    ChargingProfileRecord,
    DeviceVariable,
    EventRecord,
    RegistrationStatus,
)
from csms.persistence import repositories as repo
from csms.persistence.database import Database
from csms.services.live import LiveFeed


class StationMessageService:
    def __init__(self, db: Database, live: LiveFeed | None = None) -> None:
        self._db = db
        self._live = live

    async def record_event(self, event: EventRecord) -> None:
        await self._db.write_rows(repo.event_write(event))
        if self._live is not None:
            self._live.publish({"type": "event", "station": event.station_id, "kind": event.kind})

    async def boot(
        self, station_id: str, info: BootInfo, status: RegistrationStatus, now: datetime
    ) -> None:
        await self._db.write_rows(repo.boot_write(station_id, info, status, now))
        if self._live is not None:
            self._live.publish({"type": "boot", "station": station_id, "status": status.value})

    async def heartbeat(self, station_id: str, now: datetime) -> None:
        await self._db.write_rows(repo.heartbeat_write(station_id, now))

    async def connector_status(
        self, station_id: str, evse_id: int, connector_id: int, status: str, now: datetime
    ) -> None:
        await self._db.write_rows(
            *repo.connector_status_writes(
                self._db.dialect, station_id, evse_id, connector_id, status, now
            )
        )
        if self._live is not None:
            self._live.publish(
                {
                    "type": "connector",
                    "station": station_id,
                    "evse": evse_id,
                    "connector": connector_id,
                    "status": status,
                }
            )

    async def device_report(
        self, variables: list[DeviceVariable], events: list[EventRecord], now: datetime
    ) -> None:
        """B07/B08: one NotifyReport part's variables, with its events (summary, abandoned
        reports), in one transaction."""

        async def op(conn: AsyncConnection) -> None:
            await repo.upsert_device_variables(conn, variables, now)
            for event in events:
                await repo.insert_event(conn, event)

        await self._db.write(op)

    async def reported_profiles(
        self, records: list[ChargingProfileRecord], event: EventRecord, now: datetime
    ) -> None:
        """K09: the station's installed profiles replace what the CSMS had for them."""

        async def op(conn: AsyncConnection) -> None:
            for record in records:
                await repo.upsert_charging_profile(conn, record, now)
            await repo.insert_event(conn, event)

        await self._db.write(op)

    async def add_certificate_request(self, record: CertificateRecord, now: datetime) -> int:
        """A02/A03: a station's CSR; its id for `set_certificate_status`."""
        cert_id: int = await self._db.write(lambda c: repo.insert_certificate(c, record, now))
        return cert_id

    async def set_certificate_status(self, cert_id: int, status: str, chain: str | None) -> None:
        await self._db.write(lambda c: repo.update_certificate(c, cert_id, status, chain))
