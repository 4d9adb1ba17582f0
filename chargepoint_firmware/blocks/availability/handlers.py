"""Block G: ChangeAvailability, UnlockConnector."""

from __future__ import annotations

from typing import Any, Protocol

from ocpp.routing import on
from ocpp.v201 import call_result
from ocpp.v201.enums import Action

from chargepoint_firmware.ocpp_edge.handler_base import HandlerBase, status_info


class AvailabilityPort(Protocol):
    def evse_ids(self) -> list[int]: ...

    def change_availability(self, evse_ids: list[int], operative: bool) -> str: ...

    def unlock_connector(self, evse_id: int) -> str: ...


class AvailabilityHandlers(HandlerBase):
    availability: AvailabilityPort

    @on(Action.change_availability)
    def on_change_availability(
        self, operational_status: str, evse: dict[str, Any] | None = None, **_: Any
    ) -> call_result.ChangeAvailability:
        operative = operational_status == "Operative"
        evse_id = None if evse is None else int(evse["id"])
        known = self.availability.evse_ids()
        if evse_id not in (None, 0) and evse_id not in known:
            return call_result.ChangeAvailability(
                status="Rejected", status_info=status_info("UnknownEvse")
            )
        if evse is not None and evse.get("connector_id", 1) != 1:
            return call_result.ChangeAvailability(
                status="Rejected", status_info=status_info("UnknownConnector")
            )
        targets = known if evse_id in (None, 0) else [evse_id]
        status = self.availability.change_availability(targets, operative)
        return call_result.ChangeAvailability(status=status)

    @on(Action.unlock_connector)
    def on_unlock_connector(
        self, evse_id: int, connector_id: int, **_: Any
    ) -> call_result.UnlockConnector:
        if evse_id not in self.availability.evse_ids() or connector_id != 1:
            return call_result.UnlockConnector(status="UnknownConnector")
        return call_result.UnlockConnector(status=self.availability.unlock_connector(evse_id))
