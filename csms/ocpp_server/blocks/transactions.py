"""Block E (transactions) and J (meter values)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from csms.domain.csip_telemetry import MAIN_METER_EVSE_ID
from csms.domain.errors import CsmsError
from csms.domain.transactions import TransactionEventInput, needs_status_check
from csms.ocpp_server.blocks._common import meter_samples
from csms.ocpp_server.blocks.authorization import id_token_info
from csms.services.common import parse_ocpp_datetime

if TYPE_CHECKING:
    from csms.ocpp_server.session import Handler, Session
    from csms.services.site_meters import SiteMeterService

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
    # Parsed here, not in the batch: a bad sample is this station's error alone.
    samples = meter_samples(
        station_id, payload.get("meterValue", []), evse_id=event.evse_id, transaction_id=tx_id
    )
    now = session.clock()
    tx, fresh = await session.services.transaction_events.apply(event, payload, now, samples)
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
    await session.services.transaction_events.meter_values(samples)
    if evse_id == MAIN_METER_EVSE_ID:  # the station's main meter may be its site's meter
        meters = session.services.site_meters
        session.after_reply(lambda: _main_meter(meters, session.station_id, samples))
    return {}


async def _main_meter(meters: SiteMeterService, station_id: str, samples: list[Any]) -> None:
    await meters.main_meter_values(station_id, samples)


HANDLERS: dict[str, Handler] = {
    "TransactionEvent": transaction_event,
    "MeterValues": meter_values,
}
