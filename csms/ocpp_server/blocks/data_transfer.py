"""Block P (DataTransfer): no vendor extensions are known to this CSMS."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from csms.ocpp_server.blocks._common import record_event
from csms.ocpp_server.limits import StorageRefused

if TYPE_CHECKING:
    from csms.ocpp_server.session import Handler, Session

KNOWN_VENDORS: frozenset[str] = frozenset()


async def data_transfer(session: Session, payload: dict[str, Any]) -> dict[str, Any]:
    try:
        await record_event(session, "DataTransfer", payload)
    except StorageRefused as refused:
        # P01: Rejected is DataTransfer's own answer for "not taken"; nothing was stored.
        return {"status": "Rejected", "statusInfo": {"reasonCode": refused.reason}}
    if payload["vendorId"] not in KNOWN_VENDORS:
        return {"status": "UnknownVendorId"}
    return {"status": "UnknownMessageId"}


HANDLERS: dict[str, Handler] = {"DataTransfer": data_transfer}
