"""Block E (transactions) and J (meter values)."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncConnection

from csms.domain.errors import CsmsError
from csms.domain.models import EventRecord, MeterSample, Tariff, Transaction, TransactionEvent
from csms.domain.transactions import (
    TransactionEventInput,
    apply_event,
    needs_status_check,
    seq_no_maybe_stored,
    supersede,
    supersedes,
)
from csms.ocpp_server.blocks._common import meter_samples
from csms.ocpp_server.blocks.authorization import id_token_info
from csms.persistence import repositories as repo
from csms.persistence.database import BatchedWrite
from csms.services.common import ocpp_datetime, parse_ocpp_datetime

if TYPE_CHECKING:
    from csms.ocpp_server.session import Handler, Session

log = logging.getLogger(__name__)

# Event kind stored when a newer transaction on an EVSE ends an older one never ended.
SUPERSEDED_EVENT = "TransactionSuperseded"


async def transaction_event(session: Session, payload: dict[str, Any]) -> dict[str, Any]:
    info = payload["transactionInfo"]
    evse = payload.get("evse") or {}
    token = payload.get("idToken")
    station_id = session.station_id
    tx_id = info["transactionId"]
    event = TransactionEventInput(
        station_id=station_id,
        transaction_id=tx_id,
        event_type=payload["eventType"],
        timestamp=parse_ocpp_datetime(payload["timestamp"]),
        seq_no=payload["seqNo"],
        trigger_reason=payload["triggerReason"],
        offline=bool(payload.get("offline", False)),
        charging_state=info.get("chargingState"),
        stopped_reason=info.get("stoppedReason"),
        evse_id=evse.get("id"),
        connector_id=evse.get("connectorId"),
        id_token=token["idToken"] if token else None,
        id_token_type=token["type"] if token else None,
    )
    # Parsed here, not in the batch: a bad sample is this station's error alone.
    samples = meter_samples(
        station_id, payload.get("meterValue", []), evse_id=event.evse_id, transaction_id=tx_id
    )
    now = session.clock()
    tx, fresh = await session.services.db.write_batched(
        _TransactionEventWrite(event, payload, now, samples)
    )
    response: dict[str, Any] = {}
    if tx is not None and tx.total_cost is not None and event.event_type != "Started":
        response["totalCost"] = tx.total_cost
    if token is not None:
        result = await session.services.id_tokens.authorize(
            token["idToken"],
            token["type"],
            station_id=station_id,
            remote_start_id=info.get("remoteStartId"),
        )
        response["idTokenInfo"] = id_token_info(result)
    if fresh and tx is not None and needs_status_check(tx):
        session.after_reply(lambda: _ask_transaction_status(session, tx_id))
    return response


class _TransactionEventWrite(BatchedWrite):
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
        batch: list[_TransactionEventWrite] = writes
        keys = [(w.event.station_id, w.event.transaction_id) for w in batch]
        state, tariffs = await repo.transactions_and_tariffs(conn, keys)
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
        await _load_running_on_evses(conn, batch, keys, state)
        added: set[tuple[str, str, int]] = set()
        results: list[tuple[Transaction | None, bool]] = []
        events: list[tuple[TransactionEvent, datetime]] = []
        changed: dict[tuple[str, str], tuple[Transaction, datetime]] = {}
        samples: list[MeterSample] = []
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
            new_samples = w.samples
            if new_samples and event.evse_id is None and current is not None:
                new_samples = [replace(s, evse_id=current.evse_id) for s in new_samples]
            tariff = tariffs.get(event.station_id)
            updated = apply_event(current, event, new_samples, tariff, w.now)
            state[key] = updated
            changed[key] = (updated, w.now)
            if current is None or event.event_type == "Started":
                for old in _supersede_older(state, updated, event.timestamp, tariff):
                    state[(old.station_id, old.transaction_id)] = old
                    changed[(old.station_id, old.transaction_id)] = (old, w.now)
                    notes.append(_superseded_note(old, updated, w.now))
            samples.extend(new_samples)
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
        await repo.insert_meter_samples(conn, samples)
        await repo.insert_events(conn, notes)
        return results


async def _load_running_on_evses(
    conn: AsyncConnection,
    batch: list[_TransactionEventWrite],
    keys: list[tuple[str, str]],
    state: dict[tuple[str, str], Transaction],
) -> None:
    """Add to `state` the Active transactions on the EVSEs where a transaction of the batch
    starts (or is first seen): those a new one may supersede. One read, only for batches with
    such an event (once per transaction, not per event)."""
    evses = {
        (w.event.station_id, w.event.evse_id)
        for w, key in zip(batch, keys, strict=True)
        if w.event.evse_id is not None and (key not in state or w.event.event_type == "Started")
    }
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


async def _ask_transaction_status(session: Session, transaction_id: str) -> None:
    """E07/E14: offline events were lost; ask whether messages are still queued."""
    try:
        answer = await session.call(
            "GetTransactionStatus",
            {"transactionId": transaction_id},
            session.settings.command_timeout_s,
        )
    except CsmsError as exc:
        log.info("GetTransactionStatus to %s failed: %s", session.station_id, exc)
        return
    log.info("GetTransactionStatus %s/%s: %s", session.station_id, transaction_id, answer)


async def meter_values(session: Session, payload: dict[str, Any]) -> dict[str, Any]:
    evse_id = payload["evseId"]
    samples = meter_samples(
        session.station_id, payload["meterValue"], evse_id=evse_id, transaction_id=None
    )
    db = session.services.db
    await db.write_rows(repo.meter_samples_write(db.dialect, samples))
    return {}


HANDLERS: dict[str, Handler] = {
    "TransactionEvent": transaction_event,
    "MeterValues": meter_values,
}
