"""Notifications stored as events: smart charging (K; ISO 15118 in iso15118.py), firmware
(L), diagnostics and monitoring (N), display messages (O), reservations (H), security events
(A)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from csms.domain.models import EventRecord
from csms.ocpp_server import limits
from csms.ocpp_server.blocks._common import record_event
from csms.services.commands import profile_record

if TYPE_CHECKING:
    from csms.ocpp_server.session import Handler, Session


def _stored_as_event(kind: str, timestamp_field: str | None = None) -> Handler:
    async def handler(session: Session, payload: dict[str, Any]) -> dict[str, Any]:
        await record_event(session, kind, payload, timestamp_field)
        return {}

    handler.__name__ = f"on_{kind}"
    return handler


async def report_charging_profiles(session: Session, payload: dict[str, Any]) -> dict[str, Any]:
    """K09: the station's installed profiles replace what the CSMS had for them."""
    await limits.charge_storage(session, "ReportChargingProfiles", limits.payload_size(payload))
    source = f"Reported:{payload['chargingLimitSource']}"
    records = [
        profile_record(session.station_id, payload["evseId"], profile, source)
        for profile in payload["chargingProfile"]
    ]
    now = session.clock()
    event = EventRecord(session.station_id, "ReportChargingProfiles", payload, received_at=now)
    await session.services.station_messages.reported_profiles(records, event, now)
    return {}


HANDLERS: dict[str, Handler] = {
    "ReportChargingProfiles": report_charging_profiles,
    "NotifyChargingLimit": _stored_as_event("NotifyChargingLimit"),
    "ClearedChargingLimit": _stored_as_event("ClearedChargingLimit"),
    "FirmwareStatusNotification": _stored_as_event("FirmwareStatusNotification"),
    "PublishFirmwareStatusNotification": _stored_as_event("PublishFirmwareStatusNotification"),
    "LogStatusNotification": _stored_as_event("LogStatusNotification"),
    "SecurityEventNotification": _stored_as_event("SecurityEventNotification", "timestamp"),
    "NotifyEvent": _stored_as_event("NotifyEvent", "generatedAt"),
    "NotifyMonitoringReport": _stored_as_event("NotifyMonitoringReport", "generatedAt"),
    "NotifyCustomerInformation": _stored_as_event("NotifyCustomerInformation", "generatedAt"),
    "NotifyDisplayMessages": _stored_as_event("NotifyDisplayMessages"),
    "ReservationStatusUpdate": _stored_as_event("ReservationStatusUpdate"),
}
