"""Read-mostly services over what stations reported: transactions, device model, charging
profiles, message log, events, tariffs."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

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
from csms.services.redaction import REDACTED, SECRET_VARIABLES, redact_logged, redact_payload

log = logging.getLogger(__name__)

# A station's meter values are read over at most this range per request.
MAX_METER_RANGE = timedelta(days=31)


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

    async def meter_values(
        self,
        station_id: str,
        transaction_id: str,
        *,
        measurand: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> Page[dict[str, Any]]:
        """A transaction's samples, oldest first, paged in the database (NotFound when the
        transaction is not known); each item a dict of MeterSample's fields but station_id
        and id (PackedPage.fields)."""
        check_page(offset, limit)
        async with self._db.read() as conn:
            if await repo.get_transaction(conn, station_id, transaction_id) is None:
                raise NotFound(f"transaction {transaction_id!r} of {station_id!r} not found")
            page = await repo.page_meter_rows(
                conn,
                station_id,
                transaction_id=transaction_id,
                measurand=measurand,
                offset=offset,
                limit=limit,
            )
        return Page(page.fields(), page.total, offset, limit)  # unpacked off the connection

    async def station_meter_values(
        self,
        station_id: str,
        since: datetime,
        until: datetime,
        *,
        measurand: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> Page[dict[str, Any]]:
        """A station's samples in [since, until), oldest first, paged in the database; the range
        at most MAX_METER_RANGE long (InvalidRequest otherwise); items as `meter_values`."""
        check_page(offset, limit)
        if since.tzinfo is None or until.tzinfo is None:
            raise InvalidRequest("since and until need a time zone")
        if not since < until:
            raise InvalidRequest("since must be before until")
        if until - since > MAX_METER_RANGE:
            raise InvalidRequest(f"a range of at most {MAX_METER_RANGE.days} days")
        async with self._db.read() as conn:
            page = await repo.page_meter_rows(
                conn,
                station_id,
                measurand=measurand,
                since=since,
                until=until,
                offset=offset,
                limit=limit,
            )
        return Page(page.fields(), page.total, offset, limit)

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
    """OCPP message log. Commands the CSMS sends and their answers are always logged (awaited:
    a RequestStartTransaction is on record before it is sent); the messages stations send and
    the CSMS's answers when `log_incoming` is on (setting `message_log_incoming`).

    Station messages are on the hot path, so they are not awaited: `append` puts them in a
    bounded buffer that a background task writes in batches (one group-commit write per
    batch, every `flush_interval_s` or at `flush_rows`); a full buffer drops entries and
    counts them (`dropped`). Secrets are redacted before they are stored; certificates, CSRs
    and id tokens of station messages too; and everything again when read
    (redaction.redact_logged). Bounded: entries older than `retention` and beyond
    `max_rows_per_station` per station are pruned (`prune_expired`, hourly)."""

    def __init__(
        self,
        db: Database,
        *,
        log_incoming: bool = False,
        retention: timedelta | None = timedelta(days=30),
        max_rows_per_station: int = 0,
        clock: Clock = utcnow,
        flush_interval_s: float = 0.25,
        flush_rows: int = 2000,
        max_buffered: int = 50_000,
        on_dropped: Callable[[int], None] | None = None,
    ) -> None:
        self._db = db
        self.log_incoming = log_incoming
        self.retention = retention
        self.max_rows_per_station = max_rows_per_station
        self._clock = clock
        self._flush_interval_s = flush_interval_s
        self._flush_rows = flush_rows
        self._max_buffered = max_buffered
        self._on_dropped = on_dropped
        self._buffer: list[MessageLogEntry] = []
        self._wake = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self.dropped = 0
        self.batches_written = 0

    async def list(
        self, station_id: str, offset: int = 0, limit: int = 50
    ) -> Page[MessageLogEntry]:
        check_page(offset, limit)
        async with self._db.read() as conn:
            page = await repo.list_log_entries(conn, station_id, offset, limit)
        items = [
            dataclasses.replace(entry, payload=redact_logged(entry.action, entry.payload))
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
        """Write now and wait for the commit (the CSMS's own commands)."""
        await self._db.write_rows(repo.log_entries_write(entries))

    def append_exchange(
        self,
        station_id: str,
        message_id: str,
        action: str,
        request: object,
        kind: str,
        response: object,
    ) -> None:
        """Buffer a station's CALL and the CSMS's answer (`kind` CALLRESULT or CALLERROR) for
        the next batch; never waits. Their certificates, CSRs and id tokens are not stored (the
        CSMS never reads them back): the payloads are redacted once, here."""
        if len(self._buffer) + 2 > self._max_buffered:
            self.dropped += 2
            if self._on_dropped is not None:
                self._on_dropped(2)
            return
        now = self._clock()
        self._buffer.append(
            MessageLogEntry(
                station_id,
                Direction.IN,
                "CALL",
                message_id,
                action,
                redact_logged(action, request),
                now,
            )
        )
        self._buffer.append(
            MessageLogEntry(
                station_id,
                Direction.OUT,
                kind,
                message_id,
                action,
                redact_logged(action, response),
                now,
            )
        )
        if len(self._buffer) >= self._flush_rows:
            self._wake.set()

    def append_one(
        self, station_id: str, kind: str, message_id: str, action: str, payload: object
    ) -> None:
        """Buffer one station-initiated entry that has no answer (an OCPP 2.1 SEND)."""
        if len(self._buffer) + 1 > self._max_buffered:
            self.dropped += 1
            if self._on_dropped is not None:
                self._on_dropped(1)
            return
        self._buffer.append(
            MessageLogEntry(
                station_id,
                Direction.IN,
                kind,
                message_id,
                action,
                redact_logged(action, payload),
                self._clock(),
            )
        )
        if len(self._buffer) >= self._flush_rows:
            self._wake.set()

    def start(self) -> None:
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_loop(), name="csms-message-log")

    async def close(self) -> None:
        """Stop the background writer; what is buffered is written first."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        await self.flush()

    async def flush(self) -> int:
        """Write what is buffered in one batch; the number of entries written."""
        batch, self._buffer = self._buffer, []
        if batch:
            await self._db.write_rows(repo.log_entries_write(batch))
            self.batches_written += 1
        return len(batch)

    async def _flush_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._flush_interval_s)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:  # the database is down: this batch is lost, the next may pass
                log.exception("message log: a batch could not be written")

    async def prune(self, before: datetime) -> int:
        return await self._db.write(lambda c: repo.prune_log(c, before))

    async def prune_expired(self) -> int:
        """Drop entries older than the retention and beyond `max_rows_per_station` per
        station (the newest kept); 0 when neither is set."""
        removed = 0
        if self.retention is not None:
            removed += await self.prune(self._clock() - self.retention)
        if self.max_rows_per_station > 0:
            keep = self.max_rows_per_station
            removed += await self._db.write(lambda c: repo.prune_log_rows(c, keep))
        return removed


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
