"""Block E/F/I: RequestStartTransaction, RequestStopTransaction, GetTransactionStatus,
CostUpdated."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from ocpp.routing import after, on
from ocpp.v201 import call_result
from ocpp.v201.enums import Action

from chargepoint_firmware.blocks.smart_charging.handlers import parse_profile
from chargepoint_firmware.ocpp_edge.handler_base import HandlerBase, status_info
from v2g_shared.schedule import ChargingProfile, Violation

log = logging.getLogger(__name__)


class TransactionsPort(Protocol):
    def remote_start(
        self,
        evse_id: int | None,
        id_token: dict[str, Any],
        remote_start_id: int,
        profile: ChargingProfile | None,
        group_id_token: dict[str, Any] | None = None,
    ) -> tuple[bool, str, str | None, Callable[[], Awaitable[None]] | None]: ...

    def remote_stop(self, transaction_id: str) -> bool: ...

    def ongoing(self, transaction_id: str) -> bool: ...

    def set_running_cost(self, transaction_id: str, total_cost: float) -> bool: ...

    def queued_transaction_ids(self) -> set[str]: ...


class TransactionsHandlers(HandlerBase):
    transactions: TransactionsPort

    @on(Action.request_start_transaction)
    def on_request_start_transaction(
        self,
        id_token: dict[str, Any],
        remote_start_id: int,
        evse_id: int | None = None,
        group_id_token: dict[str, Any] | None = None,
        charging_profile: dict[str, Any] | None = None,
        call_unique_id: str = "",
        **_: Any,
    ) -> call_result.RequestStartTransaction:
        profile: ChargingProfile | None = None
        if charging_profile is not None:
            raw = self.raw_payload().get("chargingProfile")
            parsed = parse_profile(raw)
            if not isinstance(parsed, Violation):
                profile = parsed
            elif isinstance(raw, dict) and raw.get("chargingProfilePurpose") == "TxProfile":
                # As before the profile was parsed once: the start goes ahead without it.
                log.warning("TxProfile of RequestStartTransaction rejected: %s", [parsed])
            else:
                return call_result.RequestStartTransaction(
                    status="Rejected", status_info=status_info("InvalidProfile")
                )
        accepted, reason, tx_id, followup = self.transactions.remote_start(
            evse_id, id_token, remote_start_id, profile, group_id_token
        )
        if followup is not None:
            self.later(call_unique_id, followup)
        return call_result.RequestStartTransaction(
            status="Accepted" if accepted else "Rejected",
            transaction_id=tx_id,
            status_info=None if accepted else status_info(reason),
        )

    @after(Action.request_start_transaction)
    def after_request_start_transaction(self, call_unique_id: str, **_: Any) -> Any:
        return self.run_followup(call_unique_id)

    @on(Action.request_stop_transaction)
    def on_request_stop_transaction(
        self, transaction_id: str, **_: Any
    ) -> call_result.RequestStopTransaction:
        stopped = self.transactions.remote_stop(transaction_id)
        return call_result.RequestStopTransaction(
            status="Accepted" if stopped else "Rejected",
            status_info=None if stopped else status_info("TxNotFound"),
        )

    @on(Action.get_transaction_status)
    def on_get_transaction_status(
        self, transaction_id: str | None = None, **_: Any
    ) -> call_result.GetTransactionStatus:
        queued = self.transactions.queued_transaction_ids()
        if transaction_id is None:
            return call_result.GetTransactionStatus(messages_in_queue=bool(queued))
        ongoing = self.transactions.ongoing(transaction_id)
        return call_result.GetTransactionStatus(
            messages_in_queue=transaction_id in queued, ongoing_indicator=ongoing
        )

    @on(Action.cost_updated)
    def on_cost_updated(
        self, total_cost: float, transaction_id: str, **_: Any
    ) -> call_result.CostUpdated:
        """I02: the running cost of a transaction, kept for the station's display."""
        self.transactions.set_running_cost(transaction_id, float(total_cost))
        return call_result.CostUpdated()
