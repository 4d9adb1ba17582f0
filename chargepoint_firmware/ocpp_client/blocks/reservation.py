"""Block H: ReserveNow, CancelReservation."""

from __future__ import annotations

from typing import Any

from ocpp.routing import on
from ocpp.v201 import call_result
from ocpp.v201.enums import Action

from chargepoint_firmware.ocpp_client.blocks.base import BlockBase


class ReservationBlock(BlockBase):
    @on(Action.reserve_now)
    def on_reserve_now(
        self,
        id: int,  # the OCPP field name
        expiry_date_time: str,
        id_token: dict[str, Any],
        evse_id: int | None = None,
        group_id_token: dict[str, Any] | None = None,
        connector_type: str | None = None,
        **_: Any,
    ) -> call_result.ReserveNow:
        status = self.agent.reserve_now(
            id, evse_id, expiry_date_time, id_token, group_id_token, connector_type
        )
        return call_result.ReserveNow(status=status)

    @on(Action.cancel_reservation)
    def on_cancel_reservation(self, reservation_id: int, **_: Any) -> call_result.CancelReservation:
        cancelled = self.agent.cancel_reservation(reservation_id)
        return call_result.CancelReservation(status="Accepted" if cancelled else "Rejected")
