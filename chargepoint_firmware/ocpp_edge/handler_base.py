"""What every handler mixin may use: deferred follow-up messages and statusInfo.

A handler answers its CALL first; what it must send after the answer (a report, a reboot, an
Authorize) is registered with `later` and started from the action's `@after` hook by
`run_followup`, through the `spawn` the session was given.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

FollowUp = Callable[[], Awaitable[Any]]
Spawn = Callable[[Coroutine[Any, Any, Any]], "asyncio.Task[Any]"]
SendCall = Callable[[Any], Awaitable[Any]]


class HandlerBase:
    spawn: Spawn
    send_call: SendCall  # a CALL to the CSMS over the current session (follow-ups)
    _followups: dict[str, FollowUp]

    def raw_payload(self) -> dict[str, Any]:
        """The camelCase payload of the CALL being handled (OcppSession provides it)."""
        raise NotImplementedError

    def later(self, call_unique_id: str, followup: FollowUp) -> None:
        """Run `followup` once the response to this CALL has been sent (from an @after hook)."""
        if not hasattr(self, "_followups"):
            self._followups = {}
        self._followups[call_unique_id] = followup

    def run_followup(self, call_unique_id: str) -> Awaitable[Any] | None:
        pending = getattr(self, "_followups", {}).pop(call_unique_id, None)
        if pending is None:
            return None
        return self.spawn(pending())


def status_info(reason: str, info: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"reason_code": reason[:20]}
    if info:
        out["additional_info"] = info[:512]
    return out
