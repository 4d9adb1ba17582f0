"""Block B (provisioning) and G (availability): boot, heartbeat, status, device model."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from csms.domain.errors import UnknownStation
from csms.domain.models import (
    BootInfo,
    BootPolicy,
    DeviceVariable,
    EventRecord,
    RegistrationStatus,
)
from csms.ocpp_server import limits
from csms.ocpp_server.protocol import PropertyConstraintViolation
from csms.services.common import ocpp_datetime, parse_ocpp_datetime

if TYPE_CHECKING:
    from csms.ocpp_server.session import Handler, Session

log = logging.getLogger(__name__)


async def boot_notification(session: Session, payload: dict[str, Any]) -> dict[str, Any]:
    cs = payload["chargingStation"]
    info = BootInfo(
        vendor_name=cs["vendorName"],
        model=cs["model"],
        serial_number=cs.get("serialNumber"),
        firmware_version=cs.get("firmwareVersion"),
    )
    # A fresh read (the boot policy may have changed since the handshake), batched with
    # the other stations booting at the same moment.
    admission = await session.services.stations.admission(session.station_id)
    if admission is None:
        raise UnknownStation(session.station_id)
    station = admission[0]
    status = RegistrationStatus(
        {
            BootPolicy.ACCEPTED: "Accepted",
            BootPolicy.PENDING: "Pending",
            BootPolicy.REJECTED: "Rejected",
        }[station.boot_policy]
    )
    now = session.clock()
    await session.services.station_messages.boot(session.station_id, info, status, now)
    session.registration = status
    session.triggered.discard("BootNotification")
    envelopes = getattr(session.services, "envelopes", None)
    if status is RegistrationStatus.ACCEPTED and envelopes is not None:
        # A booted station may have lost its profiles: its site's envelope again (issue 18).
        station_id = session.station_id
        session.after_reply(lambda: envelopes.station_booted(station_id))
    settings = session.settings
    interval = (
        settings.heartbeat_interval_s
        if status is RegistrationStatus.ACCEPTED
        else settings.boot_retry_interval_s
    )
    return {"currentTime": ocpp_datetime(now), "interval": interval, "status": status.value}


async def heartbeat(session: Session, payload: dict[str, Any]) -> dict[str, Any]:
    now = session.clock()
    await session.services.station_messages.heartbeat(session.station_id, now)
    return {"currentTime": ocpp_datetime(now)}


async def status_notification(session: Session, payload: dict[str, Any]) -> dict[str, Any]:
    evse_id, connector_id = payload["evseId"], payload["connectorId"]
    # Every new (evse, connector) pair is a stored row served by GET .../evses: bounded.
    settings = session.settings
    if not 0 <= evse_id <= settings.station_max_evse_id:
        raise PropertyConstraintViolation(
            f"evseId {evse_id} is outside 0..{settings.station_max_evse_id}"
        )
    if not 0 <= connector_id <= settings.station_max_connector_id:
        raise PropertyConstraintViolation(
            f"connectorId {connector_id} is outside 0..{settings.station_max_connector_id}"
        )
    status = payload["connectorStatus"]
    parse_ocpp_datetime(payload["timestamp"])
    now = session.clock()
    await session.services.station_messages.connector_status(
        session.station_id, evse_id, connector_id, status, now
    )
    return {}


def _variables(station_id: str, report: dict[str, Any]) -> list[DeviceVariable]:
    component, variable = report["component"], report["variable"]
    evse = component.get("evse") or {}
    characteristics = report.get("variableCharacteristics")
    out = []
    for attribute in report["variableAttribute"]:
        out.append(
            DeviceVariable(
                station_id=station_id,
                component=component["name"],
                component_instance=component.get("instance"),
                evse_id=evse.get("id"),
                connector_id=evse.get("connectorId"),
                variable=variable["name"],
                variable_instance=variable.get("instance"),
                attribute_type=attribute.get("type", "Actual"),
                value=attribute.get("value"),
                mutability=attribute.get("mutability"),
                characteristics=characteristics,
            )
        )
    return out


async def notify_report(session: Session, payload: dict[str, Any]) -> dict[str, Any]:
    """B07/B08: every part is stored as it comes; the last part (tbc false) closes the
    report with a summary event listing the parts received. The parts kept in memory are
    bounded (session.reports); gaps are counted, never enumerated up to the seqNo."""
    # Device variables are free-form (names, values): charged to the station's quota; a
    # part is chunked by the station (BytesPerMessage), so no per-message limit.
    await limits.charge_storage(
        session, "NotifyReport", limits.payload_size(payload), per_message_limit=False
    )
    request_id, seq_no = payload["requestId"], payload["seqNo"]
    variables = [
        v
        for report in payload.get("reportData", [])
        for v in _variables(session.station_id, report)
    ]
    now = session.clock()
    done, abandoned = session.reports.add(
        request_id, seq_no, not payload.get("tbc", False), limits.monotonic()
    )
    for gone in abandoned:
        log.warning(
            "%s: NotifyReport requestId %d abandoned after %d parts (%s)",
            session.station_id,
            gone.request_id,
            gone.parts,
            gone.why,
        )
    summary: dict[str, Any] | None = None
    if done is not None:
        summary = {
            "requestId": request_id,
            "parts": done.parts,
            "missingParts": done.missing_parts,  # the first MISSING_LISTED
            "missingCount": done.missing_count,
            "generatedAt": payload["generatedAt"],
        }
    events = [
        EventRecord(
            session.station_id,
            "NotifyReportAbandoned",
            {"requestId": gone.request_id, "parts": gone.parts, "reason": gone.why},
            received_at=now,
        )
        for gone in abandoned
    ]
    if summary is not None:
        events.append(
            EventRecord(
                session.station_id,
                "NotifyReport",
                summary,
                received_at=now,
                timestamp=parse_ocpp_datetime(payload["generatedAt"]),
            )
        )
    await session.services.station_messages.device_report(variables, events, now)
    return {}


HANDLERS: dict[str, Handler] = {
    "BootNotification": boot_notification,
    "Heartbeat": heartbeat,
    "StatusNotification": status_notification,
    "NotifyReport": notify_report,
}
