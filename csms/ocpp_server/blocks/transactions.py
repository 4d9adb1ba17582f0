"""Block E (transactions) and J (meter values)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncConnection

from csms.domain.errors import CsmsError
from csms.domain.models import Transaction, TransactionEvent
from csms.domain.transactions import TransactionEventInput, apply_event, needs_status_check
from csms.ocpp_server.blocks._common import meter_samples
from csms.ocpp_server.blocks.authorization import id_token_info
from csms.persistence import repositories as repo
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

    async def op(conn: AsyncConnection) -> tuple[Transaction | None, bool]:
        current, tariff = await repo.get_transaction_and_tariff(conn, station_id, tx_id)
        evse_id = event.evse_id
        if evse_id is None and current is not None:
            evse_id = current.evse_id
        samples = meter_samples(
            station_id, payload.get("meterValue", []), evse_id=evse_id, transaction_id=tx_id
        )
        fresh = await repo.insert_transaction_event(
            conn,
            TransactionEvent(
                station_id=station_id,
                transaction_id=tx_id,
                seq_no=event.seq_no,
                event_type=event.event_type,
                trigger_reason=event.trigger_reason,
                timestamp=event.timestamp,
                offline=event.offline,
                payload=payload,
            ),
            now,
        )
        if not fresh:  # a retry of a stored event: answer again, change nothing
            return current, False
        updated = apply_event(current, event, samples, tariff, now)
        await repo.save_transaction(conn, updated, now)
        await repo.insert_meter_samples(conn, samples)
        return updated, True

    tx, fresh = await session.services.db.write(op)
    response: dict[str, Any] = {}
    if tx is not None and tx.total_cost is not None and event.event_type != "Started":
        response["totalCost"] = tx.total_cost
    if token is not None:
        result = await session.services.id_tokens.authorize(token["idToken"], token["type"])
        response["idTokenInfo"] = id_token_info(result)
    if fresh and tx is not None and needs_status_check(tx):
        session.after_reply(lambda: _ask_transaction_status(session, tx_id))
    return response


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
