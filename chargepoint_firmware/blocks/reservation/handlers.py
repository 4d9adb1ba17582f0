"""Block H: ReserveNow, CancelReservation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from ocpp.routing import on
from ocpp.v201 import call_result
from ocpp.v201.enums import Action

from chargepoint_firmware.ocpp_edge.handler_base import HandlerBase


class ReservationPort(Protocol):
    def reserve_now(
        self,
        reservation_id: int,
        evse_id: int | None,
        expiry: str,
        id_token: Mapping[str, Any],
        group_id_token: Mapping[str, Any] | None = None,
        connector_type: str | None = None,
    ) -> str: ...

    def cancel_reservation(self, reservation_id: int) -> bool: ...


class ReservationHandlers(HandlerBase):
    reservation: ReservationPort

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
        status = self.reservation.reserve_now(
            id, evse_id, expiry_date_time, id_token, group_id_token, connector_type
        )
        return call_result.ReserveNow(status=status)

    @on(Action.cancel_reservation)
    def on_cancel_reservation(self, reservation_id: int, **_: Any) -> call_result.CancelReservation:
        cancelled = self.reservation.cancel_reservation(reservation_id)
        return call_result.CancelReservation(status="Accepted" if cancelled else "Rejected")
