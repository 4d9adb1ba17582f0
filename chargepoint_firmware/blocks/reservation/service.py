"""Reservations on the station (block H): ReserveNow, CancelReservation, expiry, and their use.

The durable book is `book.ReservationBook`; this service adds the rules that need the station:
which EVSE may be reserved now (free, operative, not faulted), the expiry task (H04
ReservationStatusUpdate Expired, queued durably), losing a reservation to a fault or
unavailability (Removed), and which reservation a starting token may use (H03).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from chargepoint_firmware.blocks.authorization.id_token import normalize_id_token
from chargepoint_firmware.blocks.reservation.book import Reservation, ReservationBook
from chargepoint_firmware.blocks.transactions.manager import TransactionManager
from chargepoint_firmware.ocpp_edge.outbox import Outbox
from chargepoint_firmware.station.clock import Clock
from chargepoint_firmware.station.config import ConfigView
from chargepoint_firmware.station.waits import sleep_or_wake
from chargepoint_firmware.storage import AgentStorage


class Reservations:
    def __init__(
        self,
        *,
        book: ReservationBook,
        evse_ids: list[int],
        transactions: TransactionManager,
        config: ConfigView,
        clock: Clock,
        storage: AgentStorage,
        outbox: Outbox,
    ) -> None:
        self.book = book
        self.evse_ids = list(evse_ids)
        self.transactions = transactions
        self.config = config
        self.clock = clock
        self.storage = storage
        self.outbox = outbox
        # The availability block's status update of one EVSE (wired by the composition root).
        self.update_status: Callable[[int], None] = lambda _evse_id: None
        self._wake: asyncio.Event | None = None  # made in run(): it belongs to the running loop

    # -- queries ------------------------------------------------------------------------------
    def all(self) -> list[Reservation]:
        return self.book.all()

    def on_evse(self, evse_id: int) -> Reservation | None:
        return self.book.on_evse(evse_id)

    def blocker(self, evse_id: int) -> str | None:
        st = self.transactions.evses[evse_id]
        if st.faulted:
            return "Faulted"
        if not st.operative:
            return "Unavailable"
        if st.plugged or st.tx_id is not None or st.id_token is not None:
            return "Occupied"
        return None

    # -- H01 / H02 ----------------------------------------------------------------------------
    def reserve_now(
        self,
        reservation_id: int,
        evse_id: int | None,
        expiry: str,
        id_token: Mapping[str, Any],
        group_id_token: Mapping[str, Any] | None = None,
        connector_type: str | None = None,
    ) -> str:
        """ReserveNow (H01): Accepted, Faulted, Occupied, Rejected or Unavailable."""
        if not self.config.boolean("ReservationCtrlr", "Enabled"):
            return "Rejected"
        if evse_id is None and not self.config.boolean("ReservationCtrlr", "NonEvseSpecific"):
            return "Rejected"
        if connector_type not in (None, "cG105", "Unknown"):  # cG105 = CHAdeMO
            return "Rejected"
        replaced = next((r for r in self.book.all() if r.id == reservation_id), None)
        status, made = self.book.reserve(
            reservation_id,
            evse_id,
            expiry,
            normalize_id_token(id_token),
            normalize_id_token(group_id_token) if group_id_token else None,
            self.evse_ids,
            self.blocker,
            self.clock.now(),
        )
        if made is not None:
            if replaced is not None and replaced.evse_id != made.evse_id:
                self.update_status(replaced.evse_id)
            self.update_status(made.evse_id)
            self.wake()
        return status

    def cancel_reservation(self, reservation_id: int) -> bool:
        """CancelReservation (H02): True when the reservation existed (now gone)."""
        cancelled = self.book.cancel(reservation_id)
        if cancelled is None:
            return False
        self.update_status(cancelled.evse_id)
        self.wake()
        return True

    def wake(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def _status_update(self, reservation: Reservation, status: str) -> None:
        """ReservationStatusUpdate (H04 Expired, or Removed), queued durably."""
        with self.storage.atomic():
            self.outbox.put(
                "ReservationStatusUpdate",
                {"reservation_id": reservation.id, "reservation_update_status": status},
            )

    def drop_blocked(self, evse_id: int) -> None:
        """A reserved EVSE that faults or is made inoperative loses its reservation."""
        reservation = self.book.on_evse(evse_id)
        if reservation is None or self.blocker(evse_id) not in ("Faulted", "Unavailable"):
            return
        self.book.cancel(reservation.id)
        self._status_update(reservation, "Removed")

    async def run_expiry(self) -> None:
        """H04: at its expiry a reservation ends (ReservationStatusUpdate Expired)."""
        self._wake = wake = asyncio.Event()
        while True:
            wake.clear()
            now = self.clock.now()
            for reservation in self.book.expired(now):
                self._status_update(reservation, "Expired")
                self.update_status(reservation.evse_id)
            deadline = self.book.next_expiry() or now + timedelta(days=1)
            await sleep_or_wake(self.clock, deadline, wake)

    # -- H03: use -----------------------------------------------------------------------------
    def evse_for_remote_start(
        self,
        evse_id: int | None,
        id_token: Mapping[str, Any],
        group: Mapping[str, Any] | None,
    ) -> int | None:
        """The EVSE a RequestStartTransaction may use given the reservations; None if none."""
        token = normalize_id_token(id_token)
        if evse_id is not None:
            allowed, _ = self.use(evse_id, token, group)
            return evse_id if allowed else None
        candidates = [e for e in self.evse_ids if self.transactions.can_authorize(e)]
        for e in candidates:  # the token's own reservation first
            reservation = self.book.on_evse(e)
            if reservation is not None and reservation.admits(token, dict(group or {}) or None):
                return e
        free = [e for e in candidates if self.book.on_evse(e) is None]
        free.sort(key=lambda e: (not self.transactions.evses[e].plugged, e))
        return free[0] if free else None

    def use(
        self, evse_id: int, token: dict[str, Any], group: Mapping[str, Any] | None
    ) -> tuple[bool, int | None]:
        """H03: (may this token start here, id of the reservation it uses)."""
        reservation = self.book.on_evse(evse_id)
        if reservation is None:
            return True, None
        if not reservation.admits(token, dict(group) if group else None):
            return False, None
        return True, reservation.id

    def consume(self, evse_id: int) -> None:
        """The EVSE's reservation is used by the authorization that starts there."""
        self.book.consume(evse_id)
        self.wake()
        self.update_status(evse_id)
