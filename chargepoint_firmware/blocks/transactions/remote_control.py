"""The CSMS's requests about transactions (F01-F04, I02): RequestStartTransaction (which EVSE,
whether the token is authorized first, the TxProfile that comes with it, installed once the
transaction exists), RequestStopTransaction, GetTransactionStatus and CostUpdated."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any, Protocol

from chargepoint_firmware.blocks.authorization.id_token import normalize_id_token
from chargepoint_firmware.blocks.transactions.manager import TransactionManager
from chargepoint_firmware.ocpp_edge.link import Sender
from chargepoint_firmware.station.clock import Clock
from chargepoint_firmware.station.config import ConfigView
from chargepoint_firmware.storage import AgentStorage
from v2g_shared.schedule import ChargingProfile, ChargingProfilePurpose

log = logging.getLogger(__name__)

FollowUp = Callable[[], Awaitable[None]]


class TokenAuthority(Protocol):
    """What a remote start needs of the authorization block."""

    def authorize_locally(self, id_token: dict[str, Any]) -> dict[str, Any] | None: ...

    async def authorize(self, id_token: dict[str, Any]) -> dict[str, Any]: ...


class ReservationGate(Protocol):
    """What a remote start needs of the reservation block."""

    def all(self) -> list[Any]: ...

    def evse_for_remote_start(
        self, evse_id: int | None, id_token: Mapping[str, Any], group: Mapping[str, Any] | None
    ) -> int | None: ...

    def use(
        self, evse_id: int, token: dict[str, Any], group: Mapping[str, Any] | None
    ) -> tuple[bool, int | None]: ...

    def consume(self, evse_id: int) -> None: ...


class RemoteControl:
    def __init__(
        self,
        *,
        evse_ids: list[int],
        transactions: TransactionManager,
        config: ConfigView,
        clock: Clock,
        authority: TokenAuthority,
        reservations: ReservationGate,
        link: Sender,
        storage: AgentStorage,
    ) -> None:
        self.storage = storage
        self.evse_ids = list(evse_ids)
        self.transactions = transactions
        self.config = config
        self.clock = clock
        self.authority = authority
        self.reservations = reservations
        self.link = link

    def remote_start(
        self,
        evse_id: int | None,
        id_token: dict[str, Any],
        remote_start_id: int,
        profile: ChargingProfile | None,
        group_id_token: dict[str, Any] | None = None,
    ) -> tuple[bool, str, str | None, FollowUp | None]:
        """RequestStartTransaction: (accepted, reason if not, running transaction id, follow-up).

        With AuthCtrlr.AuthorizeRemoteStart the token is authorized first, as if presented
        locally: from the local list or cache, else by an Authorize request (the follow-up,
        sent after the response) whose answer decides whether the session starts.
        """
        if evse_id is not None and evse_id not in self.evse_ids:
            return False, "UnknownEvse", None, None
        if profile is not None and profile.purpose is not ChargingProfilePurpose.TX_PROFILE:
            return False, "InvalidProfile", None, None
        if self.reservations.all():
            chosen = self.reservations.evse_for_remote_start(evse_id, id_token, group_id_token)
            if chosen is None:
                return False, "Reserved", None, None
            evse_id = chosen
        # F01.FR.02: without AuthorizeRemoteStart, or for a Central / NoAuthorization token,
        # the CSMS has vouched for the token: energy flows without authorizing it here (a stale
        # cache entry must not veto the CSMS).
        authorize_first = self.config.boolean("AuthCtrlr", "AuthorizeRemoteStart") and str(
            id_token.get("type")
        ) not in ("Central", "NoAuthorization")
        info = self.authority.authorize_locally(id_token) if authorize_first else None
        if info is not None and info.get("status") != "Accepted":
            return False, "InvalidIdToken", None, None
        if info is None and authorize_first:
            if not self.transactions.can_authorize(evse_id):
                return False, "Unavailable", None, None

            async def authorize_then_start() -> None:
                answer = await self.authority.authorize(id_token)
                if answer.get("status") == "Accepted":
                    self._start_authorized(evse_id, id_token, remote_start_id, profile)
                else:
                    log.info("remote start %s: token %s", remote_start_id, answer.get("status"))

            return True, "", None, authorize_then_start
        accepted, running = self._start_authorized(evse_id, id_token, remote_start_id, profile)
        return accepted, "" if accepted else "Unavailable", running, None

    def _start_authorized(
        self,
        evse_id: int | None,
        id_token: dict[str, Any],
        remote_start_id: int,
        profile: ChargingProfile | None,
    ) -> tuple[bool, str | None]:
        reservation_id: int | None = None
        if evse_id is not None:
            allowed, reservation_id = self.reservations.use(
                evse_id, normalize_id_token(id_token), None
            )
            if not allowed:
                return False, None
        accepted, running = self.transactions.remote_start(
            evse_id, id_token, remote_start_id, profile, reservation_id
        )
        if accepted and reservation_id is not None and evse_id is not None:
            self.reservations.consume(evse_id)
        if accepted:
            for evse, st in self.transactions.evses.items():
                if st.remote_start_id == remote_start_id and not st.plugged:
                    self.link.spawn(self._ev_connection_timer(evse, remote_start_id))
        return accepted, running

    async def _ev_connection_timer(self, evse_id: int, remote_start_id: int) -> None:
        timeout = self.config.integer("TxCtrlr", "EVConnectionTimeOut")
        if timeout <= 0:
            return
        await self.clock.sleep_until(self.clock.now() + timedelta(seconds=timeout))
        self.transactions.connection_timeout(evse_id, remote_start_id)

    # -- F03/F04/I02 --------------------------------------------------------------------------
    def remote_stop(self, transaction_id: str) -> bool:
        return self.transactions.remote_stop(transaction_id)

    def ongoing(self, transaction_id: str) -> bool:
        return self.transactions.find(transaction_id) is not None

    def set_running_cost(self, transaction_id: str, total_cost: float) -> bool:
        return self.transactions.set_running_cost(transaction_id, total_cost)

    def queued_transaction_ids(self) -> set[str]:
        ids: set[str] = set()
        for message in self.storage.pending():
            if message.action == "TransactionEvent":
                ids.add(message.payload["transaction_info"]["transaction_id"])
        return ids
