"""OCPP 2.0.1 CS -> CSMS handlers, one module per functional block."""

from __future__ import annotations

from typing import TYPE_CHECKING

from csms.ocpp_server.blocks import (
    authorization,
    data_transfer,
    iso15118,
    notifications,
    provisioning,
    security,
    transactions,
)

if TYPE_CHECKING:
    from csms.ocpp_server.session import Handler


def all_handlers() -> dict[str, Handler]:
    handlers: dict[str, Handler] = {}
    for block in (
        authorization,
        data_transfer,
        iso15118,
        notifications,
        provisioning,
        security,
        transactions,
    ):
        handlers.update(block.HANDLERS)
    return handlers
