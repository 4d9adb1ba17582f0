"""Router-level multinode helpers: fake station links and broker routers on a throwaway
namespace (NATS KV buckets / Redis keys removed afterwards)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from csms.routing.broker import BrokerRouter
from csms.routing.nats_router import NatsRouter
from csms.routing.redis_router import RedisRouter

Behaviour = Callable[[str, dict[str, Any], float], Awaitable[dict[str, Any]]]

BROKER_ENV = {"nats": "CSMS_TEST_NATS_URL", "redis": "CSMS_TEST_REDIS_URL"}


def broker_url_or_skip(kind: str) -> str:
    """The test broker's URL; skip (with the reason) when its variable is unset."""
    name = BROKER_ENV[kind]
    url = os.environ.get(name)
    if not url:
        pytest.skip(f"{name} is not set: no {kind} broker to test against")
    return url


class FakeLink:
    """A station connection as the router sees it: records calls, answers with an echo or a
    given behaviour, remembers being closed."""

    def __init__(self, station_id: str, behaviour: Behaviour | None = None) -> None:
        self.station_id = station_id
        self.behaviour = behaviour
        self.calls: list[tuple[str, dict[str, Any], float]] = []
        self.closed: tuple[int, str] | None = None
        self.closed_event = asyncio.Event()

    async def call(self, action: str, payload: dict[str, Any], timeout: float) -> dict[str, Any]:  # noqa: ASYNC109
        self.calls.append((action, payload, timeout))
        if self.behaviour is not None:
            return await self.behaviour(action, payload, timeout)
        return {"station": self.station_id, "action": action, "echo": payload}

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed = (code, reason)
        self.closed_event.set()


def make_router(kind: str, url: str, namespace: str, node_id: str, **options: Any) -> BrokerRouter:
    if kind == "nats":
        return NatsRouter(url, node_id=node_id, namespace=namespace, **options)
    return RedisRouter(url, node_id=node_id, namespace=namespace, **options)


async def remove_namespace(kind: str, url: str, namespace: str) -> None:
    if kind == "nats":
        import nats

        nc = await nats.connect(url, max_reconnect_attempts=1, reconnect_time_wait=0.5)
        try:
            js = nc.jetstream()
            for bucket in (f"{namespace}_presence", f"{namespace}_nodes"):
                with contextlib.suppress(Exception):  # never created
                    await js.delete_key_value(bucket)
        finally:
            await nc.close()
    else:
        import redis.asyncio as aioredis

        client = aioredis.from_url(url)
        try:
            keys = [key async for key in client.scan_iter(match=f"{namespace}:*")]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()


@asynccontextmanager
async def broker_routers(
    kind: str, url: str, count: int = 2, **options: Any
) -> AsyncIterator[list[BrokerRouter]]:
    """`count` started routers (nodes n0, n1, ...) sharing a fresh namespace."""
    namespace = f"t{uuid.uuid4().hex[:12]}"
    routers = [make_router(kind, url, namespace, f"n{i}", **options) for i in range(count)]
    started: list[BrokerRouter] = []
    try:
        for router in routers:
            await router.start()
            started.append(router)
        yield routers
    finally:
        for router in started:
            await router.close()
        await remove_namespace(kind, url, namespace)


async def wait_until(predicate: Callable[[], Awaitable[bool]], timeout_s: float = 5.0) -> bool:
    """Poll `predicate` until true or `timeout_s` passes; its last value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        if await predicate():
            return True
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(0.05)
