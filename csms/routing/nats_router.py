"""Several CSMS nodes over NATS (csms.routing.broker has the routing; this is the NATS client).

Presence: JetStream key-value bucket `<ns>_presence` (station -> "<incarnation> <node id>", the
revision is the claim's age); liveness: bucket `<ns>_nodes` (node id -> incarnation, entries
expire after node_ttl_s unless refreshed). Notices: subject `<ns>.takeover`. Commands: NATS
request/reply on `<ns>.cmd.<node>` (no responders: the node is gone). The client reconnects on
its own; a reconnect, or notices it dropped as a slow consumer, makes the router re-check its
claims.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import NoRespondersError, SlowConsumerError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import (
    BucketNotFoundError,
    KeyWrongLastSequenceError,
    NoKeysError,
    NotFoundError,
)
from nats.js.kv import KeyValue

from csms.routing.broker import BrokerRouter, NoHolder
from csms.routing.inprocess import InProcessRouter
from csms.routing.presence_sweep import SWEEP_MAX_RECORDS, PresencePage
from csms.routing.wire import PLAIN_TOKEN, Claimed, Holder, broker_token

log = logging.getLogger(__name__)


class NatsRouter(BrokerRouter):
    """BrokerRouter over NATS: JetStream KV for presence, request/reply for commands."""

    def __init__(
        self,
        url: str,
        *,
        node_id: str | None = None,
        local: InProcessRouter | None = None,
        namespace: str = "csms",
        node_ttl_s: float = 15.0,
        reply_margin_s: float = 2.0,
        connect_timeout_s: float = 5.0,
        cache_holders: bool = True,
    ) -> None:
        super().__init__(
            node_id=node_id,
            local=local,
            node_ttl_s=node_ttl_s,
            reply_margin_s=reply_margin_s,
            cache_holders=cache_holders,
        )
        if not PLAIN_TOKEN.fullmatch(namespace):
            raise ValueError("namespace: letters, digits, '_' and '-' only")
        self.url = url
        self.namespace = namespace
        self.connect_timeout_s = connect_timeout_s
        self._nc: NatsClient | None = None
        self._presence: KeyValue | None = None
        self._nodes: KeyValue | None = None

    @property
    def presence_bucket(self) -> str:
        return f"{self.namespace}_presence"

    @property
    def nodes_bucket(self) -> str:
        return f"{self.namespace}_nodes"

    def _command_subject(self, node_id: str) -> str:
        return f"{self.namespace}.cmd.{broker_token(node_id)}"

    @property
    def _takeover_subject(self) -> str:
        return f"{self.namespace}.takeover"

    async def _connect(self) -> None:
        client = NatsClient()
        try:
            # Fail the start when the broker does not answer (a couple of tries, not forever)...
            await client.connect(
                self.url,
                name=f"csms-{self.node_id}",
                connect_timeout=max(1, round(self.connect_timeout_s)),
                allow_reconnect=True,
                max_reconnect_attempts=1,
                reconnect_time_wait=1,
                error_cb=self._on_error,
                disconnected_cb=self._on_disconnected,
                reconnected_cb=self._on_reconnected,
            )
        except BaseException:
            with contextlib.suppress(Exception):
                await client.close()
            raise
        # ...but once running, ride out broker restarts for as long as they last.
        client.options["max_reconnect_attempts"] = -1
        self._nc = client
        js = self._nc.jetstream()
        self._presence = await _bucket(js, self.presence_bucket, ttl=None)
        self._nodes = await _bucket(js, self.nodes_bucket, ttl=self.node_ttl_s)
        await self._nc.subscribe(self._command_subject(self.node_id), cb=self._on_command)
        await self._nc.subscribe(self._takeover_subject, cb=self._on_takeover_msg)
        await self._nc.flush()

    async def _on_error(self, error: Exception) -> None:
        log.warning("router %s: NATS: %s", self.node_id, error or type(error).__name__)
        if isinstance(error, SlowConsumerError) and error.subject == self._takeover_subject:
            self.notices_missed()  # the client dropped notices it could not keep up with

    async def _on_disconnected(self) -> None:
        log.warning("router %s: disconnected from NATS; reconnecting", self.node_id)
        self.broker_disconnected()

    async def _on_reconnected(self) -> None:
        # The client has subscribed again by now: what changed before is in the records.
        log.info("router %s: reconnected to NATS; re-checking local claims", self.node_id)
        self.broker_reconnected()

    async def _disconnect(self) -> None:
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.drain()
            self._nc = None

    @property
    def _client(self) -> NatsClient:
        if self._nc is None:
            raise RuntimeError("NatsRouter.start() was not awaited")
        return self._nc

    async def _write_claim(self, station_id: str) -> int:
        assert self._presence is not None
        holder = Holder(self.node_id, self.incarnation)
        return int(await self._presence.put(broker_token(station_id), holder.encode().encode()))

    async def _release_claim(self, station_id: str, revision: int) -> None:
        assert self._presence is not None
        with contextlib.suppress(KeyWrongLastSequenceError):
            await self._presence.delete(broker_token(station_id), last=revision)

    async def _publish_notice(self, body: bytes) -> None:
        await self._client.publish(self._takeover_subject, body)

    def _require_connection(self) -> None:
        """Fail fast while the client is reconnecting: nats-py would buffer a request and
        wait its whole timeout (the command's, 25 s by default) before the API's 503; with
        Redis that 503 comes in milliseconds (issue 17, failover findings)."""
        if not self._client.is_connected:
            raise ConnectionError("not connected to NATS (reconnecting)")

    async def _holder(self, station_id: str) -> Claimed | None:
        assert self._presence is not None
        self._require_connection()
        try:
            entry = await self._presence.get(broker_token(station_id))
        except NotFoundError:
            return None
        holder = Holder.decode(entry.value.decode()) if entry.value else None
        if holder is None or entry.revision is None:
            return None
        return Claimed(holder, int(entry.revision))

    async def _scan_presence(self, cursor: int, count: int) -> PresencePage:
        """JetStream KV lists keys without a cursor: one page of at most SWEEP_MAX_RECORDS."""
        assert self._presence is not None
        self._require_connection()
        try:
            keys = await self._presence.keys()
        except NoKeysError:
            return 0, []
        bucket = self._presence
        limit = asyncio.Semaphore(32)

        async def one(key: str) -> tuple[str, Claimed] | None:
            async with limit:
                try:
                    entry = await bucket.get(key)
                except NotFoundError:
                    return None
            holder = Holder.decode(entry.value.decode()) if entry.value else None
            if holder is None or entry.revision is None:
                return None
            return key, Claimed(holder, int(entry.revision))

        found = await asyncio.gather(*(one(key) for key in keys[:SWEEP_MAX_RECORDS]))
        return 0, [item for item in found if item is not None]

    async def _drop_record(self, key: str, claimed: Claimed) -> None:
        assert self._presence is not None
        with contextlib.suppress(KeyWrongLastSequenceError):
            await self._presence.delete(key, last=claimed.revision)

    async def _node_incarnation(self, node_id: str) -> str | None:
        assert self._nodes is not None
        self._require_connection()
        try:
            entry = await self._nodes.get(broker_token(node_id))
        except NotFoundError:
            return None
        return entry.value.decode() if entry.value else None

    async def _announce(self) -> None:
        assert self._nodes is not None
        await self._nodes.put(broker_token(self.node_id), self.incarnation.encode())

    async def _withdraw(self) -> None:
        assert self._nodes is not None
        await self._nodes.delete(broker_token(self.node_id))

    async def _request(self, node_id: str, request: bytes, wait_s: float) -> bytes:
        self._require_connection()
        try:
            msg = await self._client.request(
                self._command_subject(node_id), request, timeout=wait_s
            )
        except NoRespondersError:
            raise NoHolder(node_id) from None
        except NatsTimeoutError:
            raise TimeoutError from None
        return bytes(msg.data)

    async def _on_command(self, msg: Msg) -> None:
        # Subscription callbacks run one after another: each command gets its own task.
        async def answer() -> None:
            reply = await self.serve_request(msg.data)
            if msg.reply:
                with contextlib.suppress(Exception):
                    await msg.respond(reply)

        self._serve(answer())

    async def _on_takeover_msg(self, msg: Msg) -> None:
        self.on_notice(msg.data)


async def _bucket(js: Any, name: str, *, ttl: float | None) -> KeyValue:
    """Bind the KV bucket, creating it on first use (several nodes may race to create it)."""
    try:
        kv: KeyValue = await js.key_value(name)
        return kv
    except BucketNotFoundError:
        pass
    try:
        created: KeyValue = await js.create_key_value(bucket=name, history=1, ttl=ttl)
        return created
    except Exception:
        kv = await js.key_value(name)  # created by another node in the meantime
        return kv


__all__ = ["NatsRouter"]
