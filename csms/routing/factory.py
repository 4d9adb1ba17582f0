"""Choose the command router from settings: in-process (one node, the default), NATS or Redis.

`CSMS_BROKER_URL=nats://host:4222` (or `tls://`) -> NatsRouter; `redis://` / `rediss://` ->
RedisRouter; unset -> InProcessRouter. `CSMS_NODE_ID` names the node (default host:pid; give each
node a distinct one). Broker routers must be started before use and closed at shutdown:
`start_router` / `close_router` do that for any router (no-ops for the in-process one).
"""

from __future__ import annotations

from typing import Any

from csms.routing.base import CommandRouter
from csms.routing.inprocess import InProcessRouter
from csms.settings import Settings


def build_router(settings: Settings, **options: Any) -> CommandRouter:
    """The router `settings` ask for; `options` go to the broker router (namespace, node_ttl_s,
    reply_margin_s)."""
    url = settings.broker_url
    if not url:
        return InProcessRouter(settings.node_id)
    if url.startswith(("nats://", "tls://")):
        from csms.routing.nats_router import NatsRouter

        return NatsRouter(url, node_id=settings.node_id, **options)
    if url.startswith(("redis://", "rediss://")):
        from csms.routing.redis_router import RedisRouter

        return RedisRouter(url, node_id=settings.node_id, **options)
    raise ValueError(f"unknown broker URL scheme: {url!r}")


async def start_router(router: CommandRouter) -> None:
    start = getattr(router, "start", None)
    if callable(start):
        await start()


async def close_router(router: CommandRouter) -> None:
    close = getattr(router, "close", None)
    if callable(close):
        await close()


__all__ = ["build_router", "close_router", "start_router"]
