"""During a NATS outage (client reconnecting) a command to a station held by another node is
refused at once with BrokerUnavailable (the API's 503), not after the command timeout
(issue 17, failover findings). No broker needed: the client is a stand-in."""

from __future__ import annotations

import time
from typing import Any

import pytest

from csms.domain.errors import BrokerUnavailable
from csms.routing.nats_router import NatsRouter
from csms.routing.wire import Claimed, Holder


class _ReconnectingClient:
    is_connected = False

    def __init__(self) -> None:
        self.requests = 0

    async def request(self, *args: Any, **kwargs: Any) -> Any:
        self.requests += 1  # nats-py would buffer this and wait the whole timeout
        raise AssertionError("a request was sent while NATS is down")


async def test_command_to_remote_holder_fails_fast_while_nats_reconnects() -> None:
    router = NatsRouter("nats://127.0.0.1:4222", node_id="n1")
    client = _ReconnectingClient()
    router._nc = client  # type: ignore[assignment]
    # The holder is cached (no presence read): only the request would wait.
    router._cache.remember("CS1", Claimed(Holder("n2", "life-2"), 7))
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable):
        await router.call("CS1", "GetVariables", {"getVariableData": []}, timeout=25.0)
    assert time.monotonic() - started < 1.0
    assert client.requests == 0
