"""What every handler mixin may use: the agent and deferred follow-up messages."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chargepoint_firmware.ocpp_client.agent import Agent

FollowUp = Callable[[], Awaitable[Any]]


class BlockBase:
    agent: Agent
    _followups: dict[str, FollowUp]

    def later(self, call_unique_id: str, followup: FollowUp) -> None:
        """Run `followup` once the response to this CALL has been sent (from an @after hook)."""
        if not hasattr(self, "_followups"):
            self._followups = {}
        self._followups[call_unique_id] = followup

    def run_followup(self, call_unique_id: str) -> Awaitable[Any] | None:
        pending = getattr(self, "_followups", {}).pop(call_unique_id, None)
        if pending is None:
            return None
        return self.agent.spawn(pending())


def status_info(reason: str, info: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"reason_code": reason[:20]}
    if info:
        out["additional_info"] = info[:512]
    return out
