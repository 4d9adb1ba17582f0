"""OCPP CS -> CSMS handlers, one module per functional block (2.0.1 and 2.1; ocpp21 holds
what 2.1 added)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from csms.ocpp_server.blocks import (
    authorization,
    data_transfer,
    iso15118,
    notifications,
    ocpp21,
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
        ocpp21,
        provisioning,
        security,
        transactions,
    ):
        handlers.update(block.HANDLERS)
    return handlers
