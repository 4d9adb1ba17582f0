"""Read-mostly services over what stations reported: transactions, device model, charging
profiles, message log, events, tariffs."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

from csms.domain.errors import InvalidRequest, NotFound, UnknownStation
from csms.domain.models import (
    ChargingProfileRecord,
    DeviceVariable,
    Direction,
    EventRecord,
    MessageLogEntry,
    Page,
    Tariff,
    Transaction,
    TransactionDetail,
    TransactionState,
)
from csms.persistence import repositories as repo
from csms.persistence.database import Database
from csms.services.common import Clock, check_page, utcnow
from csms.services.redaction import REDACTED, SECRET_VARIABLES, redact_payload


class TransactionService:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def list(
        self,
        offset: int = 0,
        limit: int = 50,
        *,
        station_id: str | None = None,
        state: TransactionState | None = None,
    ) -> Page[Transaction]:
        check_page(offset, limit)
        async with self._db.read() as conn:
            return await repo.list_transactions(
                conn, offset, limit, station_id, TransactionState(state) if state else None
            )

    async def get(self, station_id: str, transaction_id: str) -> TransactionDetail:
        async with self._db.read() as conn:
            tx = await repo.get_transaction(conn, station_id, transaction_id)
            if tx is None:
                raise NotFound(f"transaction {transaction_id!r} of {station_id!r} not found")
            events = await repo.list_transaction_events(conn, station_id, transaction_id)
            samples = await repo.list_meter_samples(conn, station_id, transaction_id)
        return TransactionDetail(tx, events, samples)

    async def totals_since(self, since: datetime) -> tuple[int, float, float]:
        """(transactions, energy Wh, cost) of the transactions updated since `since`."""
        async with self._db.read() as conn:
            return await repo.totals_since(conn, since)


class DeviceModelService:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def list(
        self, station_id: str, *, component: str | None = None, variable: str | None = None
    ) -> list[DeviceVariable]:
        async with self._db.read() as conn:
            found = await repo.list_device_variables(conn, station_id, component, variable)
        # A write-only secret (BasicAuthPassword) a station reported anyway is not shown.
        return [
            dataclasses.replace(v, value=REDACTED)
            if v.variable in SECRET_VARIABLES and v.value is not None
            else v
            for v in found
        ]

    async def get_int(self, station_id: str, component: str, variable: str) -> int | None:
        """An integer Actual value the station reported, e.g. ItemsPerMessageGetVariables."""
        for v in await self.list(station_id, component=component, variable=variable):
            if v.attribute_type == "Actual" and v.value is not None:
                try:
                    return int(v.value)
                except ValueError:
                    return None
        return None


class ChargingProfileService:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def list(
        self, station_id: str, evse_id: int | None = None
    ) -> list[ChargingProfileRecord]:
        async with self._db.read() as conn:
            return await repo.list_charging_profiles(conn, station_id, evse_id)


class MessageLogService:
    """OCPP message log. Commands and their answers are always logged; every incoming
    frame only when `log_incoming` is on (it costs throughput). Secrets (e.g. the password a
    rotation sends) are redacted before they are stored, and again when read (rows stored by
    an older version)."""

    def __init__(
        self,
        db: Database,
        *,
        log_incoming: bool = False,
        retention: timedelta | None = timedelta(days=30),
        clock: Clock = utcnow,
    ) -> None:
        self._db = db
        self.log_incoming = log_incoming
        self.retention = retention
        self._clock = clock

    async def list(
        self, station_id: str, offset: int = 0, limit: int = 50
    ) -> Page[MessageLogEntry]:
        check_page(offset, limit)
        async with self._db.read() as conn:
            page = await repo.list_log_entries(conn, station_id, offset, limit)
        items = [
            dataclasses.replace(entry, payload=redact_payload(entry.action, entry.payload))
            for entry in page.items
        ]
        return dataclasses.replace(page, items=items)

    def entry(
        self,
        station_id: str,
        direction: Direction,
        kind: str,
        message_id: str,
        action: str | None,
        payload: object,
    ) -> MessageLogEntry:
        return MessageLogEntry(
            station_id,
            direction,
            kind,
            message_id,
            action,
            redact_payload(action, payload),
            self._clock(),
        )

    async def record(self, *entries: MessageLogEntry) -> None:
        await self._db.write_rows(repo.log_entries_write(entries))

    async def prune(self, before: datetime) -> int:
        return await self._db.write(lambda c: repo.prune_log(c, before))

    async def prune_expired(self) -> int:
        """Drop entries older than the retention (bounded log); 0 when retention is None."""
        if self.retention is None:
            return 0
        return await self.prune(self._clock() - self.retention)


class EventService:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def list(
        self, station_id: str, offset: int = 0, limit: int = 50, *, kind: str | None = None
    ) -> Page[EventRecord]:
        check_page(offset, limit)
        async with self._db.read() as conn:
            return await repo.list_events(conn, station_id, offset, limit, kind)


class TariffService:
    def __init__(self, db: Database, *, clock: Clock = utcnow) -> None:
        self._db = db
        self._clock = clock

    async def set(
        self,
        station_id: str,
        *,
        currency: str,
        price_per_kwh: float = 0.0,
        price_per_hour: float = 0.0,
    ) -> Tariff:
        if len(currency) != 3 or not currency.isalpha():
            raise InvalidRequest("currency must be an ISO 4217 code, e.g. AUD")
        if price_per_kwh < 0 or price_per_hour < 0:
            raise InvalidRequest("prices must be >= 0")
        async with self._db.read() as conn:
            if await repo.get_station(conn, station_id) is None:
                raise UnknownStation(station_id)
        tariff = Tariff(station_id, currency.upper(), float(price_per_kwh), float(price_per_hour))
        now = self._clock()
        await self._db.write(lambda c: repo.upsert_tariff(c, tariff, now))
        return tariff

    async def get(self, station_id: str) -> Tariff | None:
        async with self._db.read() as conn:
            return await repo.get_tariff(conn, station_id)

    async def delete(self, station_id: str) -> None:
        if not await self._db.write(lambda c: repo.delete_tariff(c, station_id)):
            raise NotFound(f"no tariff for {station_id!r}")
