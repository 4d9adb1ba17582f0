"""Block E (transactions) and J (meter values)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncConnection

from csms.domain.errors import CsmsError
from csms.domain.models import MeterSample, Transaction, TransactionEvent
from csms.domain.transactions import TransactionEventInput, apply_event, needs_status_check
from csms.ocpp_server.blocks._common import meter_samples
from csms.ocpp_server.blocks.authorization import id_token_info
from csms.persistence import repositories as repo
from csms.persistence.database import BatchedWrite
from csms.services.common import parse_ocpp_datetime

if TYPE_CHECKING:
    from csms.ocpp_server.session import Handler, Session

log = logging.getLogger(__name__)


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
    now = session.clock()
    tx, fresh = await session.services.db.write_batched(_TransactionEventWrite(event, payload, now))
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
    transactions and tariffs of the batch), the domain rule per event in arrival order (a
    seqNo already in the transaction's seen_seq_nos is a retry), then one executemany per
    table."""

    __slots__ = ("event", "now", "payload")

    def __init__(self, event: TransactionEventInput, payload: dict[str, Any], now: datetime):
        self.event = event
        self.payload = payload
        self.now = now

    @classmethod
    async def run_batch(
        cls, conn: AsyncConnection, writes: list[Any]
    ) -> list[tuple[Transaction | None, bool]]:
        batch: list[_TransactionEventWrite] = writes
        keys = [(w.event.station_id, w.event.transaction_id) for w in batch]
        state, tariffs = await repo.transactions_and_tariffs(conn, keys)
        results: list[tuple[Transaction | None, bool]] = []
        events: list[tuple[TransactionEvent, datetime]] = []
        changed: dict[tuple[str, str], tuple[Transaction, datetime]] = {}
        samples: list[MeterSample] = []
        for w, key in zip(batch, keys, strict=True):
            event = w.event
            current = state.get(key)
            if current is not None and event.seq_no in current.seen_seq_nos:
                # A retry of a stored event: answer again, change nothing.
                results.append((current, False))
                continue
            evse_id = event.evse_id
            if evse_id is None and current is not None:
                evse_id = current.evse_id
            new_samples = meter_samples(
                event.station_id,
                w.payload.get("meterValue", []),
                evse_id=evse_id,
                transaction_id=event.transaction_id,
            )
            updated = apply_event(current, event, new_samples, tariffs.get(event.station_id), w.now)
            state[key] = updated
            changed[key] = (updated, w.now)
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
        return results


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
    await session.services.db.write_rows(repo.meter_samples_write(samples))
    return {}


HANDLERS: dict[str, Handler] = {
    "TransactionEvent": transaction_event,
    "MeterValues": meter_values,
}
