"""Authorizing idTokens (blocks C/D): the card reader's start/stop, Authorize, the local list
and the auth cache.

`present_id_token(evse_id, id_token)` is the local card reader: it authorizes (Authorize, local
list, auth cache, offline rules) and starts or stops a transaction. The CSMS's answers for a
token (AuthorizeResponse, TransactionEventResponse) go to the auth cache here too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, Protocol

import ocpp.exceptions
from ocpp.v201 import call
from websockets.exceptions import ConnectionClosed

from chargepoint_firmware.blocks.authorization.auth_cache import AuthCache
from chargepoint_firmware.blocks.authorization.id_token import normalize_id_token, same_token
from chargepoint_firmware.blocks.transactions.manager import TransactionManager
from chargepoint_firmware.ocpp_edge.link import Sender
from chargepoint_firmware.station.clock import Clock
from chargepoint_firmware.station.config import ConfigView
from chargepoint_firmware.storage import AgentStorage

log = logging.getLogger(__name__)


class ReservationUse(Protocol):
    """What authorizing needs of the reservation block (H03)."""

    def use(
        self, evse_id: int, token: dict[str, Any], group: Mapping[str, Any] | None
    ) -> tuple[bool, int | None]: ...

    def consume(self, evse_id: int) -> None: ...


class Authorizer:
    def __init__(
        self,
        *,
        evse_ids: list[int],
        storage: AgentStorage,
        config: ConfigView,
        clock: Clock,
        auth_cache: AuthCache,
        transactions: TransactionManager,
        reservations: ReservationUse,
        link: Sender,
        report_entries: Callable[[str, int], None],
    ) -> None:
        self.evse_ids = list(evse_ids)
        self.storage = storage
        self.config = config
        self.clock = clock
        self.auth_cache = auth_cache
        self.transactions = transactions
        self.reservations = reservations
        self.link = link
        self.report_entries = report_entries

    async def present_id_token(self, evse_id: int, id_token: Mapping[str, Any]) -> str:
        """An idToken presented at the EVSE's reader (RFID card, PIN, app): the local start/stop.

        `id_token` is an IdTokenType, snake_case (`{"id_token": "04A1", "type": "ISO14443"}`)
        or camelCase (`idToken`). Returns the AuthorizationStatus that decided it.

        * The token that authorized this EVSE (or one of its group) stops it (E07: trigger
          StopAuthorized, stoppedReason Local); before a transaction it withdraws the
          authorization. Answer "Accepted".
        * Otherwise the token is authorized: online by Authorize (C01), or from the local list /
          auth cache without a request when AuthCtrlr.LocalPreAuthorize is true (C10/C13/C14);
          offline from the list or cache when AuthCtrlr.LocalAuthorizeOffline is true (C12), and
          an unknown token is accepted when AuthCtrlr.OfflineTxForUnknownIdEnabled (C15).
        * Accepted: the transaction starts as TxCtrlr.TxStartPoint says, its TransactionEvent
          carries the idToken; without a plugged EV the authorization lapses after
          TxCtrlr.EVConnectionTimeOut.
        * "ConcurrentTx" when the token is in use on another EVSE; "NotAtThisTime" when it is
          valid but this EVSE cannot take it (unavailable, faulted, authorized for someone else).
        """
        if evse_id not in self.evse_ids:
            raise ValueError(f"no EVSE {evse_id}")
        token = normalize_id_token(id_token)
        tx = self.transactions
        st = tx.evses[evse_id]
        if st.id_token is not None and same_token(st.id_token, token):
            tx.stop_local(evse_id)
            return "Accepted"
        for other in tx.evses.values():
            if other.evse_id != evse_id and other.id_token and same_token(other.id_token, token):
                return "ConcurrentTx"
        info = await self._authorize_presented(token)
        status = str(info.get("status", "Invalid"))
        if status != "Accepted":
            return status
        group = info.get("group_id_token")
        st = tx.evses[evse_id]  # state may have moved on while Authorize was in flight
        if st.id_token is not None:
            if group and st.group_id_token and same_token(group, st.group_id_token):
                tx.stop_local(evse_id)  # C09: a token of the same group may stop
                return "Accepted"
            return "NotAtThisTime"
        allowed, reservation_id = self.reservations.use(evse_id, token, group)
        if not allowed:
            return "NotAtThisTime"  # reserved for someone else
        if not tx.authorize_local(evse_id, token, group, reservation_id):
            return "NotAtThisTime"
        if reservation_id is not None:
            self.reservations.consume(evse_id)
        if not st.plugged:
            self.link.spawn(self._local_authorization_timer(evse_id, token))
        return "Accepted"

    async def _authorize_presented(self, token: dict[str, Any]) -> dict[str, Any]:
        """IdTokenInfo (snake_case) for a token presented locally; see present_id_token.

        Online with AuthCtrlr.LocalPreAuthorize, an Accepted local list / cache entry decides
        without a request (C10/C12.FR.02, C14); a cached entry with another status is asked
        again (C10.FR.03, C12.FR.05) unless AuthCacheCtrlr.DisablePostAuthorize, then it
        refuses as cached. Without LocalPreAuthorize the CSMS decides (C10.FR.11). Offline
        (or when Authorize fails) the list / cache decide with AuthCtrlr.LocalAuthorizeOffline
        (C12), an unknown token with OfflineTxForUnknownIdEnabled (C15).
        """
        if self.link.online:
            if self.config.boolean("AuthCtrlr", "LocalPreAuthorize"):
                known, source = self.local_entry(token)
                if known is not None and known.get("status") == "Accepted":
                    return known
                if (
                    known is not None
                    and source == "cache"
                    and self.auth_cache.disable_post_authorize
                ):
                    return known
            try:
                response = await self.link.send_call(call.Authorize(id_token=token))
            except (ConnectionError, ConnectionClosed, TimeoutError) as exc:
                log.warning("Authorize not answered (%s): deciding offline", exc)
            except ocpp.exceptions.OCPPError as exc:
                log.warning("Authorize answered with %s: deciding offline", exc)
            else:
                answer = dict(response.id_token_info)
                self.cache_put(token, answer)  # C10.FR.04
                return answer
        if self.config.boolean("AuthCtrlr", "LocalAuthorizeOffline"):
            known, _ = self.local_entry(token)
            if known is not None:
                return known
        if self.config.boolean("AuthCtrlr", "OfflineTxForUnknownIdEnabled"):
            return {"status": "Accepted"}
        return {"status": "Unknown"}

    async def _local_authorization_timer(self, evse_id: int, token: dict[str, Any]) -> None:
        timeout = self.config.integer("TxCtrlr", "EVConnectionTimeOut")
        if timeout <= 0:
            return
        await self.clock.sleep_until(self.clock.now() + timedelta(seconds=timeout))
        st = self.transactions.evses[evse_id]
        still_waiting = st.id_token is not None and same_token(st.id_token, token)
        if still_waiting and st.remote_start_id is None:
            self.transactions.connection_timeout(evse_id, None)

    async def authorize(self, id_token: dict[str, Any]) -> dict[str, Any]:
        """Authorize (C01) online: the CSMS's IdTokenInfo, which goes to the cache."""
        response = await self.link.send_call(call.Authorize(id_token=id_token))
        answer = dict(response.id_token_info)
        self.cache_put(id_token, answer)  # C10.FR.04
        return answer

    def authorize_locally(self, id_token: dict[str, Any]) -> dict[str, Any] | None:
        """IdTokenInfo from the local list (or cache); None when the token is not known here."""
        return self.local_entry(id_token)[0]

    def local_entry(self, id_token: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str]:
        """(IdTokenInfo, "list" / "cache" / ""): the local list first, then the auth cache (an
        entry past its cacheExpiryDateTime or LifeTime is dropped there: unknown)."""
        token, kind = str(id_token.get("id_token", "")), str(id_token.get("type", ""))
        if self.config.boolean("LocalAuthListCtrlr", "Enabled"):
            entry = self.storage.local_list_entry(token, kind)
            if entry is not None:
                return entry, "list"
        cached = self.auth_cache.lookup(id_token)
        return (cached, "cache") if cached is not None else (None, "")

    def cache_put(self, id_token: Mapping[str, Any], info: dict[str, Any]) -> None:
        """The CSMS's answer for a token goes to the auth cache (when enabled), unless the
        enabled local list holds the token: the list decides for it, no copy in the cache."""
        token, kind = str(id_token.get("id_token")), str(id_token.get("type"))
        if self.config.boolean("LocalAuthListCtrlr", "Enabled") and self.storage.local_list_entry(
            token, kind
        ):
            return
        self.auth_cache.store(id_token, info)

    def on_transaction_event_answer(self, sent: dict[str, Any], response: Any) -> None:
        """The CSMS's idTokenInfo for the token a TransactionEvent carried (E05, C15)."""
        info = getattr(response, "id_token_info", None)
        token = sent.get("id_token")
        if not info or not token:
            return
        self.cache_put(token, dict(info))  # C10.FR.05, C12.FR.06
        if info.get("status") != "Accepted":
            tx_id = str(sent["transaction_info"]["transaction_id"])
            self.transactions.token_invalidated(tx_id, str(info.get("status")))

    # -- D01/D02: the local authorization list; C11: ClearCache -------------------------------
    def send_local_list(
        self, version_number: int, update_type: str, entries: list[dict[str, Any]]
    ) -> tuple[str, str | None]:
        """SendLocalList: (status, reason code when Failed)."""
        if not self.config.boolean("LocalAuthListCtrlr", "Enabled"):
            return "Failed", "NotEnabled"
        storage = self.storage
        if update_type == "Full":
            full = [
                (e["id_token"]["id_token"], e["id_token"]["type"], e["id_token_info"])
                for e in entries
                if e.get("id_token_info") is not None
            ]
            if len(full) > self.config.integer("LocalAuthListCtrlr", "Entries"):
                return "Failed", "TooManyEntries"
            storage.replace_local_list(version_number, full)
            self.report_entries("LocalAuthListCtrlr", storage.local_list_size())
            return "Accepted", None
        # Differential: D01.FR.19 a version not newer than ours is a mismatch.
        if version_number <= storage.local_list_version():
            return "VersionMismatch", None
        diff = [
            (e["id_token"]["id_token"], e["id_token"]["type"], e.get("id_token_info"))
            for e in entries
        ]
        storage.update_local_list(version_number, diff)
        self.report_entries("LocalAuthListCtrlr", storage.local_list_size())
        return "Accepted", None

    def local_list_version(self) -> int:
        return self.storage.local_list_version()

    def clear_cache(self) -> bool:
        """ClearCache (C11.FR.03/04): True when cleared, False when the cache is disabled."""
        return self.auth_cache.clear()
