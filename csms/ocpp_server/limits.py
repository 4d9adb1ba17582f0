"""The OCPP edge's per-station limits (message pacing, storage quota), kept once per CSMS
`Services` container so that a reconnect does not refill a station's buckets. The logic is
pure (csms/domain/quotas.py); this module reads the monotonic clock and does the logging.

Several nodes: each node keeps its own buckets (a station is connected to one node at a time,
so its rate is still bounded; a station that hops nodes gets a fresh storage quota there).
"""

from __future__ import annotations

import logging
import math
import time
from typing import TYPE_CHECKING, Any

import orjson

from csms.domain.models import EventRecord
from csms.domain.quotas import LimitConfig, LimitsRegistry

if TYPE_CHECKING:
    from csms.ocpp_server.session import Session
    from csms.settings import Settings

log = logging.getLogger(__name__)

# Event kind stored once per burst of refused writes (GET /stations/{id}/events?kind=...).
QUOTA_EVENT = "StorageQuotaExceeded"


class StorageRefused(Exception):
    """A station's data was not stored: too large for one message, or over its quota."""

    def __init__(self, reason: str, size: int, limit: int, retry_after_s: float) -> None:
        if reason == "PayloadTooLarge":
            text = f"payload of {size} bytes is over the {limit}-byte limit per message"
        else:
            text = f"storage quota of {limit} bytes per period used up; not stored"
        super().__init__(text)
        self.reason = reason
        self.size = size
        self.limit = limit
        self.retry_after_s = retry_after_s

    def details(self) -> dict[str, Any]:
        details: dict[str, Any] = {"reason": self.reason, "limit": self.limit}
        if math.isfinite(self.retry_after_s):
            details["retryAfterS"] = math.ceil(self.retry_after_s)
        return details


def limit_config(settings: Settings) -> LimitConfig:
    return LimitConfig(
        rate_per_s=settings.ocpp_rate_per_s,
        rate_burst=settings.ocpp_rate_burst,
        event_max_bytes=settings.station_event_max_bytes,
        storage_quota_bytes=settings.station_storage_quota_bytes,
        storage_period_s=settings.station_storage_quota_period_s,
    )


def limits_for(services: Any) -> LimitsRegistry:
    """The limits of a `Services` container, built once and kept on it."""
    found: LimitsRegistry | None = getattr(services, "_station_limits", None)
    if found is None:
        found = LimitsRegistry(limit_config(services.settings))
        services._station_limits = found
    return found


def monotonic() -> float:
    return time.monotonic()


def payload_size(payload: Any) -> int:
    return len(orjson.dumps(payload))


async def charge_storage(
    session: Session, kind: str, size: int, *, per_message_limit: bool = True
) -> None:
    """Charge `size` bytes of `kind` to the station's quota, or raise StorageRefused (after
    logging and recording the first refusal of a burst)."""
    verdict = limits_for(session.services).admit_storage(
        session.station_id, size, monotonic(), per_message_limit=per_message_limit
    )
    if verdict.allowed:
        return
    refused = StorageRefused(verdict.reason, size, verdict.limit, verdict.retry_after_s)
    if verdict.first_of_burst:
        log.warning(
            "%s: %s of %d bytes not stored (%s, limit %d); further refusals of this burst "
            "are not logged",
            session.station_id,
            kind,
            size,
            verdict.reason,
            verdict.limit,
        )
        event = EventRecord(
            session.station_id,
            QUOTA_EVENT,
            {"action": kind, "bytes": size, **refused.details()},
            received_at=session.clock(),
        )
        await session.services.station_messages.record_event(event)
    raise refused
