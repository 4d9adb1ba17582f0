"""The site envelope on OCPP 2.1 stations through DER control (issue 18): next to the
ChargingStationMaxProfile (csms.services.envelopes, the hard bound on every version), each 2.1
station is sent its discharge share as SetDERControl LimitMaxDischarge
(csms.domain.envelope_der), and ClearDERControl when no envelope is in force any more, the site
has none, or the station left the site.

The EnvelopeService calls `follow_profile` after each profile it sends (so boot, reconnect,
envelope changes and the refresh round re-send the control too) and `clear` after each profile
it clears. Each attempt is recorded as a station event of kind `EnvelopeDerControl` (what was
sent, the answer or why nothing was), like the profile attempts. A station answering
NotSupported or Rejected keeps only the profile, which bounds it either way; it is asked again
with the next profile (its firmware may have changed), never more often.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from csms.domain.envelope_der import envelope_der_limit
from csms.domain.envelopes import StationPeriod
from csms.persistence import repositories as repo
from csms.persistence.database import Database
from csms.services.common import CommandSender
from csms.services.envelope_attempts import send_and_record
from v2g_shared.ocpp_versions import OcppVersion

log = logging.getLogger(__name__)

EVENT_KIND = "EnvelopeDerControl"
SET_ACTION = "SetDERControl"
CLEAR_ACTION = "ClearDERControl"
# Failed attempts are tried again (with the profile) after this long.
RETRY_AFTER_S = 300.0
_RETRIED = ("Timeout", "CallError", "Error", "Unreachable")

# (station ids) -> their (charge W, discharge W) ratings, as the EnvelopeService reads them.
Ratings = Callable[[Sequence[str]], Awaitable[list[tuple[float, float]]]]


@dataclass(frozen=True)
class DerAttempt:
    """One recorded SetDERControl / ClearDERControl attempt on a station."""

    station_id: str
    action: str | None  # SetDERControl | ClearDERControl | None: never tried
    status: str  # the station's status, or Offline / Invalid / Timeout / Error / ...
    sent_at: datetime | None
    payload: dict[str, Any] | None
    answer: dict[str, Any] | None
    detail: str | None = None
    resend_at: datetime | None = None  # when the envelope period it carried ends


class EnvelopeDerControls:
    def __init__(self, db: Database, commands: CommandSender, ratings: Ratings) -> None:
        self._db = db
        self._commands = commands
        self._ratings = ratings
        self._locks: dict[str, asyncio.Lock] = {}

    @staticmethod
    def resend_before(
        version: OcppVersion, periods: Sequence[StationPeriod], now: datetime
    ) -> datetime | None:
        """When the profile (and with it this control) must be sent again so that the next
        envelope period's control follows this one: the end of the period in force, on 2.1."""
        if version is not OcppVersion.V21:
            return None
        current = next((p for p in periods if p.start <= now), None)
        return None if current is None else current.end

    async def follow_profile(
        self,
        station_id: str,
        version: OcppVersion,
        site_id: str,
        periods: Sequence[StationPeriod],
        now: datetime,
    ) -> DerAttempt | None:
        """After an envelope profile went to `station_id`: on 2.1, the LimitMaxDischarge of
        the period in force, or a clear when none is in force (None: nothing to send)."""
        if version is not OcppVersion.V21:
            return None
        (_charge, rated_discharge), *_ = await self._ratings([station_id])
        limit = envelope_der_limit(periods, rated_discharge, site_id, now)
        if limit.payload is None:
            return await self.clear(station_id, now)
        return await self._send(station_id, SET_ACTION, limit.payload, now, limit.until)

    async def clear(self, station_id: str, now: datetime) -> DerAttempt | None:
        """ClearDERControl of the control last set on the station, if it may hold it."""
        last = await self.last_attempt(station_id)
        if last.action != SET_ACTION or last.status == "NotSupported" or last.payload is None:
            return None
        control = str(last.payload.get("controlId", ""))
        payload = {"isDefault": False, "controlId": control}
        return await self._send(station_id, CLEAR_ACTION, payload, now, None)

    async def retry_due(self, station_id: str, now: datetime) -> bool:
        """The last attempt failed (not answered) at least RETRY_AFTER_S ago."""
        last = await self.last_attempt(station_id)
        return (
            last.sent_at is not None
            and last.status in _RETRIED
            and now - last.sent_at >= timedelta(seconds=RETRY_AFTER_S)
        )

    async def _send(
        self,
        station_id: str,
        action: str,
        payload: dict[str, Any],
        now: datetime,
        resend_at: datetime | None,
    ) -> DerAttempt:
        lock = self._locks.setdefault(station_id, asyncio.Lock())
        async with lock:
            sent = await send_and_record(
                self._db,
                self._commands,
                log,
                kind=EVENT_KIND,
                station_id=station_id,
                action=action,
                payload=payload,
                now=now,
                resend_at=resend_at,
                what=action,
            )
            return DerAttempt(
                station_id, action, sent.status, now, payload, sent.answer, sent.detail, resend_at
            )

    async def last_attempt(self, station_id: str) -> DerAttempt:
        async with self._db.read() as conn:
            page = await repo.list_events(conn, station_id, 0, 1, kind=EVENT_KIND)
        if not page.items:
            return DerAttempt(station_id, None, "Pending", None, None, None)
        e = page.items[0]
        p = e.payload
        resend = p.get("resend_at")
        return DerAttempt(
            station_id,
            p.get("action"),
            str(p.get("status")),
            e.received_at,
            p.get("request"),
            p.get("answer"),
            p.get("detail"),
            datetime.fromisoformat(resend) if isinstance(resend, str) else None,
        )
