"""Several CSMS nodes over Redis (the second option beside NATS; same behaviour).

Presence: hash `<ns>:presence` station -> "<seq> <incarnation> <node>", written by a Lua script
that takes `seq` from the counter `<ns>:claim_seq` (one global order, like a KV revision) and
released only if unchanged (compare-and-delete). Liveness: `<ns>:node:<node>` with an expiry the
node refreshes. Notices (claim = takeover, release, node up/down): messages on channel
`<ns>:takeover`.
Commands: PUBLISH on `<ns>:cmd:<node>`; PUBLISH returns how many subscribers got it, so a dead
node is StationOffline at once. The answer comes back on the caller's `<ns>:reply:<node>`
channel, matched by request id.

Holder cache and missed notices as for NATS (csms.routing.broker): Redis pub/sub loses what
is published while the subscriber is disconnected, so when the subscription connection comes
back (a connect callback on it, after redis-py has subscribed again) the node forgets its cache
and re-checks its local claims with one HMGET.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub

from csms.routing.broker import BrokerRouter, NoHolder
from csms.routing.inprocess import InProcessRouter
from csms.routing.presence_sweep import PresencePage
from csms.routing.wire import Claimed, Holder, broker_token

log = logging.getLogger(__name__)

_CLAIM = """
local seq = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], ARGV[1], seq .. ' ' .. ARGV[2])
return seq
"""
_RELEASE = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
"""


class RedisRouter(BrokerRouter):
    def __init__(
        self,
        url: str,
        *,
        node_id: str | None = None,
        local: InProcessRouter | None = None,
        namespace: str = "csms",
        node_ttl_s: float = 15.0,
        reply_margin_s: float = 2.0,
        cache_holders: bool = True,
    ) -> None:
        super().__init__(
            node_id=node_id,
            local=local,
            node_ttl_s=node_ttl_s,
            reply_margin_s=reply_margin_s,
            cache_holders=cache_holders,
        )
        self.url = url
        self.namespace = namespace
        self._redis: aioredis.Redis | None = None
        self._pubsub: PubSub | None = None
        self._listener: asyncio.Task[None] | None = None
        self._waiting: dict[str, asyncio.Future[bytes]] = {}
        self._claim_script: Any = None
        self._release_script: Any = None

    @property
    def presence_key(self) -> str:
        return f"{self.namespace}:presence"

    def _node_key(self, node_id: str) -> str:
        return f"{self.namespace}:node:{broker_token(node_id)}"

    def _command_channel(self, node_id: str) -> str:
        return f"{self.namespace}:cmd:{broker_token(node_id)}"

    def _reply_channel(self, node_id: str) -> str:
        return f"{self.namespace}:reply:{broker_token(node_id)}"

    @property
    def _takeover_channel(self) -> str:
        return f"{self.namespace}:takeover"

    @property
    def _client(self) -> aioredis.Redis:
        if self._redis is None:
            raise RuntimeError("RedisRouter.start() was not awaited")
        return self._redis

    async def _connect(self) -> None:
        # Blocking pool: a burst of commands waits for a connection instead of failing.
        pool = aioredis.BlockingConnectionPool.from_url(self.url, max_connections=64, timeout=10)
        self._redis = aioredis.Redis(connection_pool=pool)
        await self._redis.ping()
        self._claim_script = self._redis.register_script(_CLAIM)
        self._release_script = self._redis.register_script(_RELEASE)
        self._pubsub = self._redis.pubsub()
        await self._pubsub.subscribe(
            self._command_channel(self.node_id),
            self._reply_channel(self.node_id),
            self._takeover_channel,
        )
        # Called on every later connect of the subscription connection, after redis-py's own
        # callback has subscribed again (callbacks run in order; held as a weak method).
        assert self._pubsub.connection is not None
        self._pubsub.connection.register_connect_callback(self._on_resubscribed)
        self._listener = asyncio.create_task(self._listen(), name=f"redis-router-{self.node_id}")

    async def _on_resubscribed(self, connection: Any) -> None:
        log.info(
            "router %s: Redis subscription reconnected; re-checking local claims", self.node_id
        )
        self.broker_reconnected()

    async def _disconnect(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        for future in self._waiting.values():
            if not future.done():
                future.cancel()
        if self._pubsub is not None:
            await self._pubsub.aclose()
            self._pubsub = None
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def _listen(self) -> None:
        assert self._pubsub is not None
        commands = self._command_channel(self.node_id).encode()
        replies = self._reply_channel(self.node_id).encode()
        while True:
            try:
                message = await self._pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=1.0
                )
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("router %s: Redis subscription failed", self.node_id, exc_info=True)
                self.broker_disconnected()
                await asyncio.sleep(0.5)
                continue
            if message is None or message.get("type") != "message":
                continue
            channel, data = message["channel"], message["data"]
            if channel == commands:
                self._serve(self._answer(data))
            elif channel == replies:
                request_id, _, answer = data.partition(b" ")
                future = self._waiting.get(request_id.decode())
                if future is not None and not future.done():
                    future.set_result(answer)
            else:
                self.on_notice(data)

    async def _answer(self, data: bytes) -> None:
        request_id, _, rest = data.partition(b" ")
        reply_channel, _, request = rest.partition(b" ")
        answer = await self.serve_request(request)
        with contextlib.suppress(Exception):
            await self._client.publish(reply_channel.decode(), request_id + b" " + answer)

    async def _write_claim(self, station_id: str) -> int:
        keys = [self.presence_key, f"{self.namespace}:claim_seq"]
        holder = Holder(self.node_id, self.incarnation).encode()
        return int(await self._claim_script(keys=keys, args=[station_id, holder]))

    async def _release_claim(self, station_id: str, revision: int) -> None:
        holder = Holder(self.node_id, self.incarnation).encode()
        await self._release_script(
            keys=[self.presence_key], args=[station_id, f"{revision} {holder}"]
        )

    async def _publish_notice(self, body: bytes) -> None:
        await self._client.publish(self._takeover_channel, body)

    async def _holder(self, station_id: str) -> Claimed | None:
        return _decode_record(await self._client.hget(self.presence_key, station_id))

    async def _holders(self, station_ids: list[str]) -> list[Claimed | None]:
        values = await self._client.hmget(self.presence_key, station_ids)
        return [_decode_record(value) for value in values]

    async def _scan_presence(self, cursor: int, count: int) -> PresencePage:
        cursor, values = await self._client.hscan(self.presence_key, cursor, count=count)
        page: list[tuple[str, Claimed]] = []
        assert isinstance(values, dict)  # HSCAN without no_values: field -> value
        for field, value in values.items():
            claimed = _decode_record(value)
            if claimed is not None:
                page.append((field.decode() if isinstance(field, bytes) else str(field), claimed))
        return int(cursor), page

    async def _drop_record(self, key: str, claimed: Claimed) -> None:
        await self._release_script(
            keys=[self.presence_key], args=[key, f"{claimed.revision} {claimed.holder.encode()}"]
        )

    async def _node_incarnation(self, node_id: str) -> str | None:
        value = await self._client.get(self._node_key(node_id))
        if not value:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)

    async def _announce(self) -> None:
        ttl_ms = max(1, int(self.node_ttl_s * 1000))
        await self._client.set(self._node_key(self.node_id), self.incarnation, px=ttl_ms)

    async def _withdraw(self) -> None:
        await self._client.delete(self._node_key(self.node_id))

    async def _request(self, node_id: str, request: bytes, wait_s: float) -> bytes:
        request_id = uuid.uuid4().hex
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        try:
            envelope = f"{request_id} {self._reply_channel(self.node_id)} ".encode() + request
            receivers = await self._client.publish(self._command_channel(node_id), envelope)
            if not receivers:
                raise NoHolder(node_id)
            return await asyncio.wait_for(future, wait_s)
        finally:
            self._waiting.pop(request_id, None)


def _decode_record(value: Any) -> Claimed | None:
    """A presence hash value, "<seq> <incarnation> <node>"."""
    if not value:
        return None
    text = value.decode() if isinstance(value, bytes) else str(value)
    seq, _, rest = text.partition(" ")
    holder = Holder.decode(rest)
    if holder is None or not seq.isdigit():
        return None
    return Claimed(holder, int(seq))


__all__ = ["RedisRouter"]
