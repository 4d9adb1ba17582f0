"""Sending one envelope command to a station and recording the attempt (issue 18): the
ChargingStationMaxProfile (csms.services.envelopes) and the OCPP 2.1 DER control
(csms.services.envelope_der) are both sent this way, so both record what was sent, the answer
or why nothing was, as a station event every node reads."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from csms.domain.errors import CsmsError, InvalidRequest, UnknownStation
from csms.domain.models import EventRecord
from csms.persistence import repositories as repo
from csms.persistence.database import Database
from csms.services.common import CommandSender

# What an error that stopped the command is recorded as (any other CsmsError: "Error").
_ERROR_STATUS = {
    "StationOffline": "Offline",
    "StationDisconnected": "Offline",
    "CommandTimeout": "Timeout",
    "CallErrorReceived": "CallError",
    "BrokerUnavailable": "Unreachable",
}


@dataclass(frozen=True)
class SendOutcome:
    status: str  # the station's status, or Offline / Invalid / Timeout / Error / ...
    answer: dict[str, Any] | None
    detail: str | None  # why the command was not answered


def _error_status(error: CsmsError) -> str:
    return _ERROR_STATUS.get(type(error).__name__, "Error")


async def send_and_record(
    db: Database,
    commands: CommandSender,
    log: logging.Logger,
    *,
    kind: str,
    station_id: str,
    action: str,
    payload: dict[str, Any],
    now: datetime,
    resend_at: datetime | None,
    what: str,
    recorded_with: dict[str, Any] | None = None,
) -> SendOutcome:
    """Send `action` to the station and store the attempt as an event of `kind`; never raises
    for the station's sake (offline, timeout, refusal are recorded). `what` names the command
    in the log; `recorded_with` adds fields to the stored event (after action and status)."""
    answer: dict[str, Any] | None = None
    detail = None
    try:
        answer = await commands.send(station_id, action, payload)
        status = str(answer.get("status", "Unknown"))[:40]
    except UnknownStation as exc:
        status, detail = "Unknown", str(exc)
    except InvalidRequest as exc:  # K01, schema or version: a bug here, or an odd station
        status, detail = "Invalid", str(exc)
        log.error("envelope %s for %s refused before sending: %s", what, station_id, exc)
    except CsmsError as exc:
        status, detail = _error_status(exc), str(exc)
    event = EventRecord(
        station_id=station_id,
        kind=kind,
        payload={
            "action": action,
            "status": status,
            **(recorded_with or {}),
            "request": payload,
            "answer": answer,
            "detail": detail,
            "resend_at": resend_at.isoformat() if resend_at else None,
        },
        received_at=now,
        timestamp=now,
    )
    await db.write(lambda c: repo.insert_event(c, event))
    if status != "Accepted":
        log.warning("envelope %s to %s: %s %s", action, station_id, status, detail or "")
    return SendOutcome(status, answer, detail)
