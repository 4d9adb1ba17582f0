"""Block P (DataTransfer): no vendor extensions are known to this CSMS."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from csms.ocpp_server.blocks._common import record_event

if TYPE_CHECKING:
    from csms.ocpp_server.session import Handler, Session

KNOWN_VENDORS: frozenset[str] = frozenset()


async def data_transfer(session: Session, payload: dict[str, Any]) -> dict[str, Any]:
    await record_event(session, "DataTransfer", payload)
    if payload["vendorId"] not in KNOWN_VENDORS:
        return {"status": "UnknownVendorId"}
    return {"status": "UnknownMessageId"}


HANDLERS: dict[str, Handler] = {"DataTransfer": data_transfer}
