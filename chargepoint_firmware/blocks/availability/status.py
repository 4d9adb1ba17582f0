"""Connector status (G01-G04): what StatusNotification reports, and availability changes.

Reserved while a reservation holds a free EVSE; otherwise the transaction manager's view.
The device model's AvailabilityState variables follow every change; a StatusNotification goes
out (fire-and-forget, online only) when the reported status changes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from ocpp.v201 import call

from chargepoint_firmware.blocks.transactions.manager import TransactionManager
from chargepoint_firmware.interfaces import EvseHardware
from chargepoint_firmware.ocpp_edge.link import Sender
from chargepoint_firmware.ocpp_edge.timefmt import iso_ms
from chargepoint_firmware.station.clock import Clock


class ReservedEvses(Protocol):
    def on_evse(self, evse_id: int) -> Any | None: ...


class ValueSink(Protocol):
    def set_value(self, component: str, variable: str, value: str, **where: Any) -> None: ...


class Availability:
    def __init__(
        self,
        *,
        hardware: Mapping[int, EvseHardware],
        transactions: TransactionManager,
        reservations: ReservedEvses,
        dm: ValueSink,
        link: Sender,
        clock: Clock,
    ) -> None:
        self.hardware = hardware
        self.transactions = transactions
        self.reservations = reservations
        self.dm = dm
        self.link = link
        self.clock = clock
        self.reported: dict[int, str] = {}
        # Called before each status update (a faulted reserved EVSE loses its reservation).
        self.before_update: Callable[[int], None] = lambda _evse_id: None

    def connector_status(self, evse_id: int) -> str:
        """StatusNotification connectorStatus: Reserved while a reservation holds a free EVSE."""
        status = self.transactions.connector_status(evse_id)
        if status == "Available" and self.reservations.on_evse(evse_id) is not None:
            return "Reserved"
        return status

    def update_status(self, evse_id: int) -> None:
        self.before_update(evse_id)
        status = self.connector_status(evse_id)
        with contextlib.suppress(KeyError, ValueError):
            self.dm.set_value("EVSE", "AvailabilityState", status, evse_id=evse_id)
            self.dm.set_value(
                "Connector", "AvailabilityState", status, evse_id=evse_id, connector_id=1
            )
        if not self.link.online or self.reported.get(evse_id) == status:
            return
        self.reported[evse_id] = status
        self.link.send_soon(self.status_payload(evse_id, status))

    def update_all_status(self) -> None:
        for evse_id in self.hardware:
            self.update_status(evse_id)

    def status_payload(self, evse_id: int, status: str) -> call.StatusNotification:
        return call.StatusNotification(
            timestamp=iso_ms(self.clock.now()),
            connector_status=status,
            evse_id=evse_id,
            connector_id=1,
        )

    async def send_status(self, evse_ids: list[int]) -> None:
        """TriggerMessage(StatusNotification): the current status of each EVSE, now."""
        for evse_id in evse_ids:
            status = self.connector_status(evse_id)
            self.reported[evse_id] = status
            await self.link.send_call(self.status_payload(evse_id, status))

    # -- G03/G04 ------------------------------------------------------------------------------
    def evse_ids(self) -> list[int]:
        return list(self.hardware)

    def change_availability(self, evse_ids: list[int], operative: bool) -> str:
        """ChangeAvailability: Scheduled when a running transaction defers it, else Accepted."""
        results = [self.transactions.set_operative(e, operative) for e in evse_ids]
        self.update_all_status()
        return "Scheduled" if "Scheduled" in results else "Accepted"

    def unlock_connector(self, evse_id: int) -> str:
        st = self.transactions.evses[evse_id]
        if st.tx_id is not None and st.id_token is not None:
            # F05.FR.02: an authorized transaction is running; it must be stopped first.
            return "OngoingAuthorizedTransaction"
        # The CHAdeMO controller locks the connector only during an energy-transfer session;
        # with no authorized session it has released (or is releasing) the lock.
        self.hardware[evse_id].allow_energy_transfer(False)
        return "Unlocked"
