"""Reservations (OCPP 2.0.1 block H), durable: ReserveNow, CancelReservation, expiry, use.

A reservation holds one EVSE for one idToken (or any token of its groupIdToken) until its
expiry. A ReserveNow without evseId is given the first free EVSE (a simplification of the
non-EVSE-specific reservation: the station keeps one EVSE free rather than any one).
The book is persisted in the agent's SQLite store (kv "reservations"), so a restart keeps it.
Synchronous: called from handlers and the agent on the event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from chargepoint_firmware.ocpp_edge.timefmt import parse_iso
from chargepoint_firmware.storage import AgentStorage


@dataclass
class Reservation:
    id: int
    evse_id: int
    expiry: str  # ISO 8601 UTC
    id_token: dict[str, Any]  # IdTokenType, snake_case
    group_id_token: dict[str, Any] | None = None

    def expires_at(self) -> datetime:
        return parse_iso(self.expiry)

    def admits(self, id_token: dict[str, Any], group_id_token: dict[str, Any] | None) -> bool:
        """H03: the reserved token, or a token of the reservation's group, may use it."""
        if _key(id_token) == _key(self.id_token):
            return True
        return bool(
            self.group_id_token
            and group_id_token
            and _key(group_id_token) == _key(self.group_id_token)
        )


def _key(token: dict[str, Any]) -> tuple[str, str]:
    return str(token.get("id_token")), str(token.get("type"))


# Why an EVSE cannot be reserved now: "Faulted", "Unavailable", "Occupied", or None (free).
EvseBlocker = Callable[[int], str | None]


class ReservationBook:
    def __init__(self, storage: AgentStorage) -> None:
        self.storage = storage
        self._by_id: dict[int, Reservation] = {
            int(r["id"]): Reservation(**r) for r in storage.get("reservations", [])
        }

    def _save(self) -> None:
        self.storage.put("reservations", [asdict(r) for r in self._by_id.values()])

    # -- queries ------------------------------------------------------------------------------
    def all(self) -> list[Reservation]:
        return sorted(self._by_id.values(), key=lambda r: r.id)

    def on_evse(self, evse_id: int) -> Reservation | None:
        return next((r for r in self._by_id.values() if r.evse_id == evse_id), None)

    def next_expiry(self) -> datetime | None:
        return min((r.expires_at() for r in self._by_id.values()), default=None)

    # -- H01 / H02 ----------------------------------------------------------------------------
    def reserve(
        self,
        reservation_id: int,
        evse_id: int | None,
        expiry: str,
        id_token: dict[str, Any],
        group_id_token: dict[str, Any] | None,
        evse_ids: list[int],
        blocker: EvseBlocker,
        now: datetime,
    ) -> tuple[str, Reservation | None]:
        """ReserveNowStatus and the reservation made. A known id replaces its reservation
        (H01.FR.02)."""
        try:
            expires = parse_iso(expiry)
        except ValueError:
            return "Rejected", None
        if expires <= now:
            return "Rejected", None
        # The reservation this one replaces (same id) does not block it.
        taken = {r.evse_id for r in self._by_id.values() if r.id != reservation_id}
        if evse_id is not None:
            if evse_id not in evse_ids:
                return "Rejected", None
            reason = blocker(evse_id) or ("Occupied" if evse_id in taken else None)
            if reason is not None:
                return reason, None
            chosen = evse_id
        else:
            free = [e for e in evse_ids if blocker(e) is None and e not in taken]
            if not free:
                reasons = {blocker(e) for e in evse_ids}
                worst = next((r for r in ("Faulted", "Unavailable") if reasons == {r}), None)
                return worst or "Occupied", None
            chosen = free[0]
        reservation = Reservation(
            reservation_id,
            chosen,
            expiry,
            dict(id_token),
            dict(group_id_token) if group_id_token else None,
        )
        self._by_id[reservation_id] = reservation
        self._save()
        return "Accepted", reservation

    def cancel(self, reservation_id: int) -> Reservation | None:
        """H02: the cancelled reservation, or None when the id is not known."""
        reservation = self._by_id.pop(reservation_id, None)
        if reservation is not None:
            self._save()
        return reservation

    def consume(self, evse_id: int) -> Reservation | None:
        """H03: the EVSE's reservation is used by the transaction that starts there."""
        reservation = self.on_evse(evse_id)
        if reservation is not None:
            del self._by_id[reservation.id]
            self._save()
        return reservation

    def expired(self, now: datetime) -> list[Reservation]:
        """H04: remove and return the reservations whose expiry has passed."""
        gone = [r for r in self._by_id.values() if r.expires_at() <= now]
        for reservation in gone:
            del self._by_id[reservation.id]
        if gone:
            self._save()
        return gone
