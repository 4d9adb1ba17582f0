"""Block E use case: a station's TransactionEvents applied in group commits (the domain rule
per event, idempotent by seqNo, older transactions on the EVSE superseded), and its meter
values stored."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from csms.domain.models import EventRecord, MeterSample, Tariff, Transaction, TransactionEvent
from csms.domain.transactions import (
    TransactionEventInput,
    apply_event,
    seq_no_maybe_stored,
    supersede,
    supersedes,
)
from csms.persistence import repositories as repo
from csms.persistence.database import BatchedWrite, Database
from csms.persistence.meter_packing import PackedRow, RowKey
from csms.services.common import ocpp_datetime
from csms.services.live import LiveFeed

log = logging.getLogger(__name__)

# Event kind stored when a newer transaction on an EVSE ends an older one never ended.
SUPERSEDED_EVENT = "TransactionSuperseded"


class TransactionEventService:
    def __init__(self, db: Database, live: LiveFeed | None = None) -> None:
        self._db = db
        self._live = live

    async def apply(
        self,
        event: TransactionEventInput,
        payload: dict[str, Any],
        now: datetime,
        samples: list[MeterSample],
    ) -> tuple[Transaction | None, bool]:
        """Store `event` (with its raw `payload` and parsed `samples`) in the next group
        commit: the transaction as it now stands, and False when the event was a retry of
        one already stored (nothing changed)."""
        result: tuple[Transaction | None, bool] = await self._db.write_batched(
            TransactionEventWrite(event, payload, now, samples)
        )
        tx, fresh = result
        if self._live is not None and fresh and tx is not None:
            self._publish(tx, samples)
        return result

    def _publish(self, tx: Transaction, samples: list[MeterSample]) -> None:
        assert self._live is not None
        ended = tx.state.value == "Ended"
        if ended:
            self._live.transaction_ended(tx.station_id, tx.transaction_id)
        else:
            self._live.meter_samples(samples, tx.transaction_id)
        if not self._live.viewer_count:
            return  # nobody watching: no event to build
        energy = (
            tx.energy_last_wh - tx.energy_start_wh
            if tx.energy_last_wh is not None and tx.energy_start_wh is not None
            else None
        )
        self._live.publish(
            {
                "type": "transaction",
                "station": tx.station_id,
                "transaction_id": tx.transaction_id,
                "state": tx.state.value,
                "evse": tx.evse_id,
                "charging_state": tx.charging_state,
                "energy_wh": energy,
                "total_cost": tx.total_cost,
            }
        )

    async def meter_values(self, samples: list[MeterSample]) -> None:
        """J01: meter values sent outside a transaction event, stored in the next group commit
        together with every other MeterValues of that commit (one statement)."""
        await self._db.write_batched(MeterValuesWrite(samples))
        if self._live is not None:
            self._live.meter_samples(samples)


class MeterValuesWrite(BatchedWrite):
    """One MeterValues message; a group commit's run as one insert of packed rows."""

    __slots__ = ("samples",)

    def __init__(self, samples: list[MeterSample]):
        self.samples = samples

    @classmethod
    async def run_batch(cls, conn: AsyncConnection, writes: list[Any]) -> list[None]:
        rows: dict[RowKey, PackedRow] = {}
        for w in writes:
            repo.add_samples_on_evse(rows, w.samples, None)
        await repo.insert_packed_rows(conn, rows)
        return [None] * len(writes)


class TransactionEventWrite(BatchedWrite):
    """One TransactionEvent; every one of a group commit runs together: one read (the
    transactions and tariffs of the batch), the domain rule per event in arrival order, then
    one executemany per table. Work per event is bounded by the batch, never by how many
    events the transaction already has or by the seqNo values (issue 11 findings 1 and 6)."""

    __slots__ = ("event", "now", "payload", "samples")

    def __init__(
        self,
        event: TransactionEventInput,
        payload: dict[str, Any],
        now: datetime,
        samples: list[MeterSample],
    ):
        self.event = event
        self.payload = payload
        self.now = now
        self.samples = samples  # evse_id from the event; the batch fills the stored one in

    @classmethod
    async def run_batch(
        cls, conn: AsyncConnection, writes: list[Any]
    ) -> list[tuple[Transaction | None, bool]]:
        batch: list[TransactionEventWrite] = writes
        keys = [(w.event.station_id, w.event.transaction_id) for w in batch]
        # The running transactions on the EVSEs where a transaction starts come with the keys'
        # own read (one round trip); those where one is first seen without a Started can only
        # be known after it (rare: _load_running_on_evses reads them).
        starting = {
            (w.event.station_id, w.event.evse_id)
            for w in batch
            if w.event.evse_id is not None and w.event.event_type == "Started"
        }
        state, tariffs, running = await repo.transactions_tariffs_and_running(conn, keys, starting)
        for tx in running:
            state.setdefault((tx.station_id, tx.transaction_id), tx)
        # A seqNo inside a stored transaction's seqNo span may be a retry: look those up by
        # the events' unique key (one read, and none at all for in-order events).
        stored = await repo.stored_seq_nos(
            conn,
            [
                (*key, w.event.seq_no)
                for w, key in zip(batch, keys, strict=True)
                if seq_no_maybe_stored(state.get(key), w.event.seq_no)
            ],
        )
        await _load_running_on_evses(conn, batch, keys, state, loaded=starting)
        added: set[tuple[str, str, int]] = set()
        results: list[tuple[Transaction | None, bool]] = []
        events: list[tuple[TransactionEvent, datetime]] = []
        changed: dict[tuple[str, str], tuple[Transaction, datetime]] = {}
        meter_rows: dict[RowKey, PackedRow] = {}
        notes: list[EventRecord] = []
        for w, key in zip(batch, keys, strict=True):
            event = w.event
            current = state.get(key)
            seq_key = (*key, event.seq_no)
            if seq_key in stored or seq_key in added:
                # A retry of a stored event: answer again, change nothing.
                results.append((current, False))
                continue
            added.add(seq_key)
            # Samples of an event without an EVSE are stored on the transaction's EVSE
            # (the energy rule does not look at the EVSE).
            new_samples = w.samples
            tariff = tariffs.get(event.station_id)
            updated = apply_event(current, event, new_samples, tariff, w.now)
            state[key] = updated
            changed[key] = (updated, w.now)
            if current is None or event.event_type == "Started":
                for old in _supersede_older(state, updated, event.timestamp, tariff):
                    state[(old.station_id, old.transaction_id)] = old
                    changed[(old.station_id, old.transaction_id)] = (old, w.now)
                    notes.append(_superseded_note(old, updated, w.now))
            if new_samples:
                repo.add_samples_on_evse(
                    meter_rows,
                    new_samples,
                    current.evse_id if event.evse_id is None and current is not None else None,
                )
            events.append(
                (
                    TransactionEvent(
                        station_id=event.station_id,
                        transaction_id=event.transaction_id,
                        seq_no=event.seq_no,
                        event_type=event.event_type,
                        trigger_reason=event.trigger_reason,
                        timestamp=event.timestamp,
                        offline=event.offline,
                        payload=w.payload,
                    ),
                    w.now,
                )
            )
            results.append((updated, True))
        await repo.insert_transaction_events(conn, events)
        await repo.save_transactions(conn, list(changed.values()))
        await repo.insert_packed_rows(conn, meter_rows)
        await repo.insert_events(conn, notes)
        return results


async def _load_running_on_evses(
    conn: AsyncConnection,
    batch: list[TransactionEventWrite],
    keys: list[tuple[str, str]],
    state: dict[tuple[str, str], Transaction],
    *,
    loaded: set[tuple[str, int]],
) -> None:
    """Add to `state` the Active transactions on the EVSEs where a transaction of the batch
    starts (or is first seen): those a new one may supersede. Those of `loaded` EVSEs are in
    `state` already; one read for the others, only for batches with such an event (once per
    transaction, not per event)."""
    evses = {
        (w.event.station_id, w.event.evse_id)
        for w, key in zip(batch, keys, strict=True)
        if w.event.evse_id is not None and (key not in state or w.event.event_type == "Started")
    } - loaded
    if not evses:
        return
    for tx in await repo.active_transactions_on_evses(conn, evses):
        state.setdefault((tx.station_id, tx.transaction_id), tx)


def _supersede_older(
    state: dict[tuple[str, str], Transaction],
    new: Transaction,
    new_start: datetime,
    tariff: Tariff | None,
) -> list[Transaction]:
    """Issue 11 finding 7: the transactions `new` ends on its EVSE (see domain `supersedes`)."""
    older = [old for old in state.values() if supersedes(new, old, new_start)]
    ended = [supersede(old, new_start, tariff) for old in older]
    for old in ended:
        log.info(
            "transaction %s/%s superseded by %s on EVSE %s (never ended)",
            old.station_id,
            old.transaction_id,
            new.transaction_id,
            old.evse_id,
        )
    return ended


def _superseded_note(old: Transaction, new: Transaction, now: datetime) -> EventRecord:
    return EventRecord(
        station_id=old.station_id,
        kind=SUPERSEDED_EVENT,
        payload={
            "transactionId": old.transaction_id,
            "supersededBy": new.transaction_id,
            "evseId": old.evse_id,
            "endedAt": ocpp_datetime(old.ended_at) if old.ended_at else None,
        },
        received_at=now,
        timestamp=old.ended_at,
    )
