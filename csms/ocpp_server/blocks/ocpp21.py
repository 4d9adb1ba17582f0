"""OCPP 2.1 CS -> CSMS messages (on 2.1 connections only: the session's action table for 2.0.1
does not have them, so a 2.0.1 station gets NotImplemented).

- DER control (R): NotifyDERAlarm, NotifyDERStartStop, ReportDERControl -> station events.
- Periodic event streams (N): OpenPeriodicEventStream / ClosePeriodicEventStream -> the
  stream table; NotifyPeriodicEventStream (a SEND, never answered) -> the values table.
- Dynamic schedules (K): PullDynamicScheduleUpdate -> the update the CSMS holds.
- Payment, battery swap, priority charging (C, 2.1 additions): NotifySettlement, BatterySwap,
  NotifyPriorityCharging -> station events, acknowledged (the responses have no status).
- What this CSMS does not offer is answered as OCPP-J says for an unsupported feature
  (CALLERROR NotSupported) after the request is kept as an event: VatNumberValidation (no VAT
  registry). GetCertificateChainStatus asks each certificate's OCSP responder (services/pnc).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from csms.ocpp_server import limits, protocol
from csms.ocpp_server.blocks._common import record_event
from csms.services.ocpp21_data import StreamDataRefused

if TYPE_CHECKING:
    from csms.ocpp_server.session import Handler, Session


def _acknowledged(kind: str, timestamp_field: str | None = None) -> Handler:
    async def handler(session: Session, payload: dict[str, Any]) -> dict[str, Any]:
        await record_event(session, kind, payload, timestamp_field)
        return {}

    handler.__name__ = f"on_{kind}"
    return handler


async def open_periodic_event_stream(session: Session, payload: dict[str, Any]) -> dict[str, Any]:
    await limits.charge_storage(session, "OpenPeriodicEventStream", limits.payload_size(payload))
    await session.services.ocpp21.open_stream(session.station_id, payload["constantStreamData"])
    await record_event(session, "OpenPeriodicEventStream", payload, skip_if_refused=True)
    return {"status": "Accepted"}


async def close_periodic_event_stream(session: Session, payload: dict[str, Any]) -> dict[str, Any]:
    # The CSMS cannot refuse a close (the response has no status).
    await session.services.ocpp21.close_stream(session.station_id, int(payload["id"]))
    await record_event(session, "ClosePeriodicEventStream", payload, skip_if_refused=True)
    return {}


async def notify_periodic_event_stream(session: Session, payload: dict[str, Any]) -> dict[str, Any]:
    """A SEND: the return value is never sent; a refusal is logged by the session."""
    await limits.charge_storage(session, "NotifyPeriodicEventStream", limits.payload_size(payload))
    try:
        await session.services.ocpp21.record_stream_values(session.station_id, payload)
    except StreamDataRefused as exc:
        raise protocol.PropertyConstraintViolation(str(exc)) from exc
    return {}


async def pull_dynamic_schedule_update(session: Session, payload: dict[str, Any]) -> dict[str, Any]:
    await record_event(session, "PullDynamicScheduleUpdate", payload, skip_if_refused=True)
    return await session.services.ocpp21.pull_answer(
        session.station_id, int(payload["chargingProfileId"])
    )


async def get_certificate_chain_status(session: Session, payload: dict[str, Any]) -> dict[str, Any]:
    """Each certificate's revocation status from its OCSP responder, through the same OCSP client
    and cache as Authorize and GetCertificateStatus (Plug & Charge settings); CRL sources, and
    responders the settings do not allow, are Failed. The schema bounds the work: at most 4
    certificates, each tried at the first of at most 5 URLs."""
    await record_event(session, "GetCertificateChainStatus", payload, skip_if_refused=True)
    now = session.clock()
    statuses = []
    for item in payload["certificateStatusRequests"]:
        status, next_update = await session.services.pnc.chain_certificate_status(
            item["certificateHashData"], item["source"], item["urls"]
        )
        statuses.append(
            {
                "certificateHashData": item["certificateHashData"],
                "source": item["source"],
                "status": status,
                "nextUpdate": (next_update or now).isoformat().replace("+00:00", "Z"),
            }
        )
    return {"certificateStatus": statuses}


async def vat_number_validation(session: Session, payload: dict[str, Any]) -> dict[str, Any]:
    await record_event(session, "VatNumberValidation", payload, skip_if_refused=True)
    raise protocol.NotSupported("VAT number validation is not offered by this CSMS")


HANDLERS: dict[str, Handler] = {
    "NotifyDERAlarm": _acknowledged("NotifyDERAlarm", "timestamp"),
    "NotifyDERStartStop": _acknowledged("NotifyDERStartStop", "timestamp"),
    "ReportDERControl": _acknowledged("ReportDERControl"),
    "OpenPeriodicEventStream": open_periodic_event_stream,
    "ClosePeriodicEventStream": close_periodic_event_stream,
    "NotifyPeriodicEventStream": notify_periodic_event_stream,
    "PullDynamicScheduleUpdate": pull_dynamic_schedule_update,
    "NotifySettlement": _acknowledged("NotifySettlement", "settlementTime"),
    "BatterySwap": _acknowledged("BatterySwap"),
    "NotifyPriorityCharging": _acknowledged("NotifyPriorityCharging"),
    "GetCertificateChainStatus": get_certificate_chain_status,
    "VatNumberValidation": vat_number_validation,
}
