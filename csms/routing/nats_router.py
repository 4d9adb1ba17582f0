"""Several CSMS nodes: a command reaches the node holding the station through NATS.

Presence (which node holds which station) lives in a JetStream key-value bucket `<ns>_presence`
(station -> "<incarnation> <node id>"). A node that accepts a station's websocket writes the
key; the write's revision (the stream sequence, one global order) is the claim's age. It then
publishes `<ns>.takeover` with that revision: any other node still holding an older connection
of the station closes it. Nodes announce themselves in `<ns>_nodes` (node id -> incarnation, a
random id per process), a bucket whose entries expire (TTL) unless refreshed: a killed node's
stations read as offline once its entry is gone, or at once when it restarts under the same id.

Commands: the caller looks the holder up and sends a NATS request to `<ns>.cmd.<node>`; the
holder runs it on its in-process link and answers with the result or a typed error, which the
caller raises again (StationOffline, StationDisconnected, CommandTimeout, CallErrorReceived,
CommandNotAllowed), so the API answers the same on every node. No responder (node gone) gives
StationOffline at once, not after the command timeout. Local stations are called directly.

`BrokerRouter` is the broker-independent part (shared with the Redis router).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import os
import re
import socket
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import BucketNotFoundError, KeyWrongLastSequenceError, NotFoundError
from nats.js.kv import KeyValue

from csms.domain.errors import (
    BrokerUnavailable,
    CallErrorReceived,
    CommandNotAllowed,
    CommandTimeout,
    CsmsError,
    StationDisconnected,
    StationOffline,
)
from csms.routing.base import StationLink
from csms.routing.inprocess import InProcessRouter

log = logging.getLogger(__name__)
_T = TypeVar("_T")

_PLAIN = re.compile(r"[A-Za-z0-9_-]+")


def broker_token(name: str) -> str:
    """`name` as one NATS subject token / KV key / Redis key part: kept when plain, else
    hex-encoded behind `x.` (no plain name contains a dot, so the two never collide)."""
    if _PLAIN.fullmatch(name):
        return name
    return "x." + name.encode().hex()


# A router-internal request (OCPP action names never start with "$"): close the station's socket.
DISCONNECT_ACTION = "$disconnect"


def default_node_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class RemoteCommandFailed(CsmsError):
    """The holding node failed to run the command for a reason that is not a station error."""


# ---- wire format of a command and its answer ------------------------------------------------


def encode_request(station_id: str, action: str, payload: dict[str, Any], timeout: float) -> bytes:
    return orjson.dumps(
        {"station": station_id, "action": action, "payload": payload, "timeout": timeout}
    )


def decode_request(data: bytes) -> tuple[str, str, dict[str, Any], float]:
    body = orjson.loads(data)
    return str(body["station"]), str(body["action"]), dict(body["payload"]), float(body["timeout"])


def encode_result(result: dict[str, Any]) -> bytes:
    return orjson.dumps({"result": result})


def encode_error(error: Exception) -> bytes:
    """A typed error the caller raises again (`decode_answer`)."""
    fields: dict[str, Any]
    if isinstance(error, CallErrorReceived):
        fields = {
            "type": "CallErrorReceived",
            "code": error.code,
            "description": error.description,
            "details": error.details,
        }
    elif isinstance(error, CommandTimeout):
        fields = {
            "type": "CommandTimeout",
            "station": error.station_id,
            "action": error.action,
            "timeout": error.timeout,
        }
    elif isinstance(error, StationDisconnected | StationOffline):
        fields = {"type": type(error).__name__, "station": error.station_id}
    elif isinstance(error, CommandNotAllowed):
        fields = {
            "type": "CommandNotAllowed",
            "station": error.station_id,
            "action": error.action,
            "state": error.state,
        }
    else:
        fields = {"type": "RemoteCommandFailed", "message": f"{type(error).__name__}: {error}"}
    return orjson.dumps({"error": fields})


def decode_answer(data: bytes) -> dict[str, Any]:
    """The command's result, or raise the error the holding node reported."""
    body = orjson.loads(data)
    if "result" in body:
        return dict(body["result"])
    error = body.get("error") or {}
    kind = error.get("type")
    if kind == "CallErrorReceived":
        raise CallErrorReceived(
            str(error["code"]), str(error.get("description", "")), error.get("details") or {}
        )
    if kind == "CommandTimeout":
        raise CommandTimeout(str(error["station"]), str(error["action"]), float(error["timeout"]))
    if kind == "StationOffline":
        raise StationOffline(str(error["station"]))
    if kind == "StationDisconnected":
        raise StationDisconnected(str(error["station"]))
    if kind == "CommandNotAllowed":
        raise CommandNotAllowed(str(error["station"]), str(error["action"]), str(error["state"]))
    raise RemoteCommandFailed(str(error.get("message", "the holding node failed the command")))


# ---- broker-independent part -----------------------------------------------------------------


@dataclass
class _Claim:
    link: StationLink
    revision: int | None = None  # the presence write's revision, once acknowledged
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class BrokerRouter(abc.ABC):
    """A CommandRouter over a broker, wrapping the in-process router for local stations.

    Subclasses provide the broker operations (the abstract methods). `register`/`unregister`
    are what the OCPP server calls; they are synchronous, so the broker writes run as tasks
    (`settle()` waits for them).
    """

    def __init__(
        self,
        *,
        node_id: str | None = None,
        local: InProcessRouter | None = None,
        node_ttl_s: float = 15.0,
        reply_margin_s: float = 2.0,
    ) -> None:
        self.node_id = node_id or default_node_id()
        # This process's life: a node restarted under the same id must not look like it still
        # holds the stations its previous life held.
        self.incarnation = uuid.uuid4().hex
        self.local = local or InProcessRouter(self.node_id)
        self.node_ttl_s = node_ttl_s
        self.reply_margin_s = reply_margin_s
        self._claims: dict[str, _Claim] = {}
        # Highest claim revision seen from another node, per station: a takeover may arrive
        # before our own claim's revision is known.
        self._foreign: dict[str, int] = {}
        self._tasks: set[asyncio.Task[Any]] = set()  # presence writes and takeovers
        self._serving: set[asyncio.Task[Any]] = set()  # commands other nodes sent here
        self._heartbeat: asyncio.Task[None] | None = None
        self._started = False

    # -- broker operations --
    @abc.abstractmethod
    async def _connect(self) -> None: ...

    @abc.abstractmethod
    async def _disconnect(self) -> None: ...

    @abc.abstractmethod
    async def _write_claim(self, station_id: str) -> int:
        """Record this node as the holder; return the write's revision (globally ordered)."""

    @abc.abstractmethod
    async def _release_claim(self, station_id: str, revision: int) -> None:
        """Remove the record if it is still the one written at `revision`."""

    @abc.abstractmethod
    async def _publish_takeover(self, station_id: str, revision: int) -> None: ...

    @abc.abstractmethod
    async def _holder(self, station_id: str) -> Holder | None:
        """The node (id, incarnation) recorded as holding the station, if any."""

    @abc.abstractmethod
    async def _node_incarnation(self, node_id: str) -> str | None:
        """The incarnation in the node's liveness entry; None once it expired."""

    @abc.abstractmethod
    async def _announce(self) -> None:
        """Refresh this node's liveness entry (its incarnation; expires after node_ttl_s)."""

    @abc.abstractmethod
    async def _withdraw(self) -> None:
        """Remove this node's liveness entry."""

    @abc.abstractmethod
    async def _request(self, node_id: str, request: bytes, wait_s: float) -> bytes:
        """Send a command to `node_id` and return its answer. Raise NoHolder when nobody
        listens there, TimeoutError when no answer comes within wait_s."""

    # -- lifecycle --
    async def start(self) -> None:
        """Connect, subscribe and announce this node (a second call does nothing)."""
        if self._started:
            return
        await self._connect()
        await self._announce()
        self._heartbeat = asyncio.create_task(self._beat(), name=f"router-heartbeat-{self.node_id}")
        self._started = True

    async def close(self) -> None:
        """Wait for pending presence writes, withdraw this node, disconnect."""
        if not self._started:
            return
        self._started = False
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        await self.settle()
        for task in list(self._serving):
            task.cancel()  # the caller gets no answer and reports a timeout
        await asyncio.gather(*self._serving, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self._withdraw()
        await self._disconnect()

    async def settle(self) -> None:
        """Wait until every presence write and takeover started so far has finished."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.node_ttl_s / 3)
            try:
                await self._announce()
            except Exception:
                log.warning("router %s: liveness refresh failed", self.node_id, exc_info=True)

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _serve(self, coro: Any) -> None:
        task = asyncio.create_task(coro, name="remote-command")
        self._serving.add(task)
        task.add_done_callback(self._serving.discard)

    # -- registry (called by the OCPP server) --
    def register(self, link: StationLink) -> StationLink | None:
        previous = self.local.register(link)
        claim = _Claim(link)
        self._claims[link.station_id] = claim
        claim.task = self._spawn(self._claim(claim), f"claim-{link.station_id}")
        return previous

    def unregister(self, link: StationLink) -> None:
        if self.local.link(link.station_id) is not link:
            return
        self.local.unregister(link)
        claim = self._claims.get(link.station_id)
        if claim is not None and claim.link is link:
            del self._claims[link.station_id]
            self._spawn(self._release(claim), f"release-{link.station_id}")

    def link(self, station_id: str) -> StationLink | None:
        return self.local.link(station_id)

    def connected_station_ids(self) -> list[str]:
        """Stations connected to this node."""
        return self.local.connected_station_ids()

    async def _claim(self, claim: _Claim) -> None:
        station_id = claim.link.station_id
        try:
            revision = await self._write_claim(station_id)
        except Exception:
            log.exception(
                "router %s: could not record %s as connected here", self.node_id, station_id
            )
            return
        claim.revision = revision
        if self._foreign.get(station_id, -1) > revision:
            # Another node claimed it after us (its takeover overtook our acknowledgement).
            await self._drop(claim, "connected to another node")
            return
        try:
            await self._publish_takeover(station_id, revision)
        except Exception:
            log.exception("router %s: could not announce takeover of %s", self.node_id, station_id)

    async def _release(self, claim: _Claim) -> None:
        if claim.task is not None:
            with contextlib.suppress(Exception):
                await claim.task
        if claim.revision is None:
            return
        try:
            await self._release_claim(claim.link.station_id, claim.revision)
        except Exception:
            log.warning(
                "router %s: could not release %s",
                self.node_id,
                claim.link.station_id,
                exc_info=True,
            )

    def on_takeover(self, station_id: str, node_id: str, revision: int) -> None:
        """Another node claimed `station_id` at `revision`: drop an older local connection."""
        if node_id == self.node_id:
            return
        if revision > self._foreign.get(station_id, -1):
            self._foreign[station_id] = revision
        claim = self._claims.get(station_id)
        if claim is None or claim.revision is None or claim.revision >= revision:
            return  # not held here, or our claim is newer (or not yet acknowledged: see _claim)
        self._spawn(self._drop(claim, "connected to another node"), f"takeover-{station_id}")

    async def _drop(self, claim: _Claim, reason: str) -> None:
        station_id = claim.link.station_id
        log.info("router %s: %s %s; closing the local connection", self.node_id, station_id, reason)
        if self.local.link(station_id) is claim.link:
            self.local.unregister(claim.link)
        if self._claims.get(station_id) is claim:
            del self._claims[station_id]  # the presence record is the other node's now
        close = getattr(claim.link, "close", None)
        if callable(close):
            with contextlib.suppress(Exception):
                await close(1000, "connected to another CSMS node")

    # -- CommandRouter --
    async def _read(self, station_id: str, read: Awaitable[_T]) -> _T:
        """A presence or liveness read; the broker client's own errors (connection lost,
        timeout) become BrokerUnavailable, which the API answers with 503."""
        try:
            return await read
        except CsmsError:
            raise
        except Exception as exc:
            raise BrokerUnavailable(station_id, repr(exc)) from exc

    async def node_of(self, station_id: str) -> str | None:
        if self.local.link(station_id) is not None:
            return self.node_id
        holder = await self._read(station_id, self._holder(station_id))
        if holder is None or holder.node_id == self.node_id:
            return None  # released, or a stale record of this node's earlier life
        incarnation = await self._read(station_id, self._node_incarnation(holder.node_id))
        return holder.node_id if incarnation == holder.incarnation else None

    async def is_connected(self, station_id: str) -> bool:
        return await self.node_of(station_id) is not None

    async def call(
        self,
        station_id: str,
        action: str,
        payload: dict[str, Any],
        timeout: float,  # noqa: ASYNC109
    ) -> dict[str, Any]:
        for attempt in range(2):
            link = self.local.link(station_id)
            if link is not None:
                return await link.call(action, payload, timeout)
            holder = await self._read(station_id, self._holder(station_id))
            if holder is None or holder.node_id == self.node_id:
                raise StationOffline(station_id)
            node = holder.node_id
            request = encode_request(station_id, action, payload, timeout)
            try:
                answer = await self._request(node, request, timeout + self.reply_margin_s)
            except NoHolder:
                raise StationOffline(station_id) from None
            except TimeoutError:
                raise CommandTimeout(station_id, action, timeout) from None
            except CsmsError:
                raise
            except Exception as exc:
                raise BrokerUnavailable(station_id, repr(exc)) from exc
            try:
                return decode_answer(answer)
            except StationOffline:
                # The node had just lost it: one more look, in case it moved meanwhile.
                moved = await self._read(station_id, self._holder(station_id))
                if attempt == 0 and moved is not None and moved.node_id != node:
                    continue
                raise
        raise StationOffline(station_id)

    async def disconnect(self, station_id: str, reason: str) -> bool:
        if await self.local.disconnect(station_id, reason):
            return True
        try:
            answer = await self.call(station_id, DISCONNECT_ACTION, {"reason": reason}, 5.0)
        except StationOffline:
            return False
        return bool(answer.get("closed"))

    async def serve_request(self, request: bytes) -> bytes:
        """Run a command another node sent here; the answer it gets back (never raises)."""
        try:
            station_id, action, payload, timeout = decode_request(request)
        except Exception as exc:
            return encode_error(exc)
        if action == DISCONNECT_ACTION:
            closed = await self.local.disconnect(station_id, str(payload.get("reason", "")))
            return encode_result({"closed": closed})
        link = self.local.link(station_id)
        if link is None:
            return encode_error(StationOffline(station_id))
        try:
            return encode_result(await link.call(action, payload, timeout))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return encode_error(exc)


@dataclass(frozen=True)
class Holder:
    node_id: str
    incarnation: str

    def encode(self) -> str:
        return f"{self.incarnation} {self.node_id}"

    @classmethod
    def decode(cls, text: str) -> Holder | None:
        incarnation, _, node_id = text.partition(" ")
        return cls(node_id, incarnation) if node_id else None


class NoHolder(Exception):
    """Nobody listens at the node the presence record names (it died or left)."""


# ---- NATS --------------------------------------------------------------------------------------


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
    ) -> None:
        super().__init__(
            node_id=node_id, local=local, node_ttl_s=node_ttl_s, reply_margin_s=reply_margin_s
        )
        if not _PLAIN.fullmatch(namespace):
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

    async def _on_disconnected(self) -> None:
        log.warning("router %s: disconnected from NATS; reconnecting", self.node_id)

    async def _on_reconnected(self) -> None:
        log.info("router %s: reconnected to NATS", self.node_id)

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

    async def _publish_takeover(self, station_id: str, revision: int) -> None:
        body = orjson.dumps({"station": station_id, "node": self.node_id, "revision": revision})
        await self._client.publish(self._takeover_subject, body)

    async def _holder(self, station_id: str) -> Holder | None:
        assert self._presence is not None
        try:
            entry = await self._presence.get(broker_token(station_id))
        except NotFoundError:
            return None
        return Holder.decode(entry.value.decode()) if entry.value else None

    async def _node_incarnation(self, node_id: str) -> str | None:
        assert self._nodes is not None
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
        try:
            body = orjson.loads(msg.data)
            self.on_takeover(str(body["station"]), str(body["node"]), int(body["revision"]))
        except Exception:
            log.warning("router %s: bad takeover message %r", self.node_id, msg.data[:200])


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


__all__ = [
    "BrokerRouter",
    "Holder",
    "NatsRouter",
    "NoHolder",
    "RemoteCommandFailed",
    "broker_token",
    "decode_answer",
    "encode_error",
]
