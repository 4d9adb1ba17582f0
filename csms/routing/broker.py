"""Several CSMS nodes: a command reaches the node holding the station through a broker.

Over 600 lines because a node's claims have one life cycle on one shared state (claim, notice,
takeover, release, re-check after missed notices, the liveness beat that also starts the
presence sweep): split, each part would reach into the others' fields. The sweep's own logic
is in csms/routing/presence_sweep.py.

`BrokerRouter` is the broker-neutral part; a backend (csms.routing.nats_router,
csms.routing.redis_router) provides the broker operations. Below, the NATS names; the Redis
backend has the same records and notices under its own names.

Presence (which node holds which station) lives in a JetStream key-value bucket `<ns>_presence`
(station -> "<incarnation> <node id>"). A node that accepts a station's websocket writes the
key; the write's revision (the stream sequence, one global order) is the claim's age. It then
publishes a claim notice on `<ns>.takeover` with that revision: any other node still holding an
older connection of the station closes it. Nodes announce themselves in `<ns>_nodes` (node id ->
incarnation, a random id per process), a bucket whose entries expire (TTL) unless refreshed: a
killed node's stations read as offline once its entry is gone, or at once when it restarts under
the same id.

Commands: the caller finds the holder and sends a NATS request to `<ns>.cmd.<node>`; the holder
runs it on its in-process link and answers with the result or a typed error, which the caller
raises again (StationOffline, StationDisconnected, CommandTimeout, CallErrorReceived,
CommandNotAllowed), so the API answers the same on every node. No responder (node gone) gives
StationOffline at once, not after the command timeout. Local stations are called directly.

Holder cache: each node remembers the holders it has read or been told about (claim notices
carry node, incarnation and revision; release notices and node up/down notices remove entries),
so a command to a remote station costs one request in the common case, with no presence read.
The cache is a hint, never trusted for a result: a command whose cached holder does not answer
(node gone: NoHolder) or answers StationOffline (it no longer holds the station) is retried once
with a fresh presence read, and only fails when that read names no other holder. A NoHolder also
forgets every entry of that node. `is_connected` answers from the cache too (a stale "yes" ends
as StationOffline in `call`); `node_of` always reads the broker (it is what the API shows).

Missed notices: notices are plain pub/sub, lost while a node is disconnected from the broker. On
every reconnect a node therefore forgets its whole cache and re-checks each locally held
station's presence record: a record of another holder with a newer revision (a takeover it
missed) closes the stale local socket; a missing record (never written because the broker was
down, or lost) is written again. So a node that was briefly cut off converges without waiting
for the station.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from csms.domain.errors import BrokerUnavailable, CommandTimeout, CsmsError, StationOffline
from csms.routing.base import StationLink
from csms.routing.holders import HolderCache
from csms.routing.inprocess import InProcessRouter
from csms.routing.presence_sweep import (
    SWEEP_EVERY_BEATS,
    SWEEP_MAX_RECORDS,
    PresencePage,
    sweep_stale_records,
)
from csms.routing.wire import (
    DISCONNECT_ACTION,
    Claimed,
    Holder,
    Notice,
    claim_notice,
    decode_answer,
    decode_notice,
    decode_request,
    encode_error,
    encode_notice,
    encode_request,
    encode_result,
    node_notice,
    notice_fields,
    release_notice,
)

log = logging.getLogger(__name__)
_T = TypeVar("_T")


def default_node_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class NoHolder(Exception):
    """Nobody listens at the node the presence record names (it died or left)."""


@dataclass
class _Claim:
    link: StationLink
    revision: int | None = None  # the presence write's revision, once acknowledged
    task: asyncio.Task[None] | None = field(default=None, repr=False)


@dataclass
class RouterStats:
    """Broker operations this router made (tests and benchmarks count them)."""

    holder_reads: int = 0  # presence records read
    liveness_reads: int = 0  # node liveness entries read
    requests: int = 0  # commands sent to another node
    resyncs: int = 0  # claim re-checks completed after a reconnect


class BrokerRouter(abc.ABC):
    """A CommandRouter over a broker, wrapping the in-process router for local stations.

    Subclasses provide the broker operations (the abstract methods) and call
    `broker_reconnected()` when their connection to the broker comes back. `register`/
    `unregister` are what the OCPP server calls; they are synchronous, so the broker writes run
    as tasks (`settle()` waits for them). `cache_holders=False` reads the presence record before
    every remote command (the behaviour without the cache; benchmarks compare the two).
    """

    def __init__(
        self,
        *,
        node_id: str | None = None,
        local: InProcessRouter | None = None,
        node_ttl_s: float = 15.0,
        reply_margin_s: float = 2.0,
        cache_holders: bool = True,
    ) -> None:
        self.node_id = node_id or default_node_id()
        # This process's life: a node restarted under the same id must not look like it still
        # holds the stations its previous life held.
        self.incarnation = uuid.uuid4().hex
        self.local = local or InProcessRouter(self.node_id)
        self.node_ttl_s = node_ttl_s
        self.reply_margin_s = reply_margin_s
        self.cache_holders = cache_holders
        self.stats = RouterStats()
        self._claims: dict[str, _Claim] = {}
        # Highest claim revision seen from another node, per station: a takeover may arrive
        # before our own claim's revision is known.
        self._foreign: dict[str, int] = {}
        # Remote holders as last read or announced (a hint: see the module docstring).
        self._cache = HolderCache(self.node_id, enabled=cache_holders)
        self._tasks: set[asyncio.Task[Any]] = set()  # presence writes and takeovers
        # (record key, revision) found stale by the last sweep: dropped if still stale next time.
        self._stale_marks: set[tuple[str, int]] = set()
        self._serving: set[asyncio.Task[Any]] = set()  # commands other nodes sent here
        self._heartbeat: asyncio.Task[None] | None = None
        self._resync_task: asyncio.Task[None] | None = None
        self._started = False
        # The broker connection as last reported by the backend (readiness: /ready).
        self.broker_up = False

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
    async def _publish_notice(self, body: bytes) -> None:
        """Publish a claim/release/node notice to every node (`on_notice` receives it)."""

    @abc.abstractmethod
    async def _holder(self, station_id: str) -> Claimed | None:
        """The presence record of the station (node, incarnation, revision), if any."""

    async def _holders(self, station_ids: list[str]) -> list[Claimed | None]:
        """Several presence records (in order); subclasses may read them in one round trip."""
        limit = asyncio.Semaphore(32)

        async def one(station_id: str) -> Claimed | None:
            async with limit:
                return await self._holder(station_id)

        return list(await asyncio.gather(*(one(station_id) for station_id in station_ids)))

    @abc.abstractmethod
    async def _scan_presence(self, cursor: int, count: int) -> PresencePage:
        """One page of presence records as (record key, claim), and the cursor of the next page
        (0 = done)."""

    @abc.abstractmethod
    async def _drop_record(self, key: str, claimed: Claimed) -> None:
        """Remove the record at `key` if it is still `claimed` (compare-and-delete)."""

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
        self.broker_up = True
        await self._announce()
        self._heartbeat = asyncio.create_task(self._beat(), name=f"router-heartbeat-{self.node_id}")
        self._started = True
        # Other nodes forget what they cached about an earlier life of this node id.
        await self._notify(node_notice("node-up", self.node_id, self.incarnation))

    async def close(self) -> None:
        """Wait for pending presence writes, withdraw this node, disconnect."""
        if not self._started:
            return
        self._started = False
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        if self._resync_task is not None:
            self._resync_task.cancel()
        await self.settle()
        for task in list(self._serving):
            task.cancel()  # the caller gets no answer and reports a timeout
        await asyncio.gather(*self._serving, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self._withdraw()
        await self._notify(node_notice("node-down", self.node_id, self.incarnation))
        await self._disconnect()
        self.broker_up = False

    async def settle(self) -> None:
        """Wait until every presence write, takeover and re-check started so far has finished."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _sweeping(self) -> bool:
        return any(t.get_name().startswith("presence-sweep-") for t in self._tasks)

    async def _beat(self) -> None:
        failing = False
        beats = 0
        while True:
            await asyncio.sleep(self.node_ttl_s / 3)
            try:
                await self._announce()
            except Exception as exc:
                # An outage fails every refresh: one WARNING (no traceback), tracebacks at DEBUG.
                if not failing:
                    log.warning("router %s: liveness refresh failed (%r)", self.node_id, exc)
                log.debug("router %s: liveness refresh failed", self.node_id, exc_info=True)
                failing = True
                continue
            if failing:
                log.info("router %s: liveness refresh works again", self.node_id)
            failing = False
            beats += 1
            if beats % SWEEP_EVERY_BEATS == 0 and not self._sweeping():
                self._spawn(self._sweep(), f"presence-sweep-{self.node_id}")
            # The broker answers again: record the stations whose presence write failed.
            for station_id, claim in list(self._claims.items()):
                if claim.revision is None and claim.task is not None and claim.task.done():
                    claim.task = self._spawn(self._claim(claim), f"claim-{station_id}")

    async def sweep_stale_claims(self, max_records: int = SWEEP_MAX_RECORDS) -> int:
        """Drop presence records whose node is dead on this sweep and the one before
        (csms/routing/presence_sweep.py); how many were dropped."""
        dropped, self._stale_marks = await sweep_stale_records(
            self._scan_presence,
            self._node_incarnation,
            self._drop_record,
            self._stale_marks,
            max_records,
        )
        if dropped:
            log.info("router %s: dropped %d presence records of dead nodes", self.node_id, dropped)
        return dropped

    async def _sweep(self) -> None:
        try:
            await self.sweep_stale_claims()
        except Exception as exc:  # the next sweep tries again
            log.info("router %s: presence sweep failed (%r)", self.node_id, exc)

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _serve(self, coro: Any) -> None:
        task = asyncio.create_task(coro, name="remote-command")
        self._serving.add(task)
        task.add_done_callback(self._serving.discard)

    async def _notify(self, notice: Notice) -> None:
        try:
            await self._publish_notice(encode_notice(notice))
        except Exception:
            log.warning(
                "router %s: could not publish %s",
                self.node_id,
                notice_fields(notice),
                exc_info=True,
            )

    # -- registry (called by the OCPP server) --
    def register(self, link: StationLink) -> StationLink | None:
        previous = self.local.register(link)
        claim = _Claim(link)
        self._claims[link.station_id] = claim
        self._cache.discard(link.station_id)
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

    def is_local(self, station_id: str) -> bool:
        return self.local.link(station_id) is not None

    async def _claim(self, claim: _Claim) -> None:
        station_id = claim.link.station_id
        try:
            revision = await self._write_claim(station_id)
        except Exception:
            log.exception(
                "router %s: could not record %s as connected here (again after a reconnect)",
                self.node_id,
                station_id,
            )
            return
        claim.revision = revision
        if self._foreign.get(station_id, -1) > revision:
            # Another node claimed it after us (its takeover overtook our acknowledgement).
            await self._drop(claim, "connected to another node")
            return
        await self._notify(claim_notice(station_id, self.node_id, self.incarnation, revision))

    async def _release(self, claim: _Claim) -> None:
        if claim.task is not None:
            with contextlib.suppress(Exception):
                await claim.task
        if claim.revision is None:
            return
        station_id = claim.link.station_id
        try:
            await self._release_claim(station_id, claim.revision)
        except Exception:
            log.warning("router %s: could not release %s", self.node_id, station_id, exc_info=True)
            return
        await self._notify(release_notice(station_id, self.node_id, claim.revision))

    # -- notices from other nodes --
    def on_notice(self, data: bytes) -> None:
        """A notice another node (or this one) published: claim, release, node up or down."""
        try:
            notice = decode_notice(data)
            node_id = notice.node_id
            if notice.event == "claim":
                assert notice.station_id is not None and notice.revision is not None
                self.on_takeover(notice.station_id, node_id, notice.revision, notice.incarnation)
            elif notice.event == "release":
                assert notice.station_id is not None and notice.revision is not None
                self._cache.forget_released(notice.station_id, node_id, notice.revision)
            elif notice.event in ("node-up", "node-down") and node_id != self.node_id:
                keep = None
                if notice.event == "node-up":
                    if notice.incarnation is None:
                        raise ValueError("node-up notice without an incarnation")
                    keep = notice.incarnation
                self._cache.forget_node(node_id, keep_incarnation=keep)
        except Exception:
            log.warning("router %s: bad notice %r", self.node_id, data[:200])

    def on_takeover(
        self, station_id: str, node_id: str, revision: int, incarnation: str | None = None
    ) -> None:
        """Another node claimed `station_id` at `revision`: drop an older local connection."""
        if node_id == self.node_id:
            return
        if revision > self._foreign.get(station_id, -1):
            self._foreign[station_id] = revision
        if incarnation is not None:
            self._cache.remember(station_id, Claimed(Holder(node_id, incarnation), revision))
        else:
            self._cache.forget_older(station_id, revision)
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

    # -- the holder cache --
    def cached_holder(self, station_id: str) -> Claimed | None:
        """The holder this node would send a command for `station_id` to without a read."""
        return self._cache.get(station_id)

    # -- reconnects: notices sent meanwhile were lost --
    def broker_disconnected(self) -> None:
        """The broker connection dropped: notices are being missed, the cache goes stale."""
        self.broker_up = False
        self._cache.clear()

    def broker_reconnected(self) -> None:
        """The broker connection is back: notices were missed meanwhile (`notices_missed`)."""
        self.broker_up = True
        self.notices_missed()

    def notices_missed(self) -> None:
        """Some notices did not arrive (a reconnect, a subscription that fell behind): forget
        the cache and re-check every local station's presence record (`recheck_claims`)."""
        self._cache.clear()
        if not self._started:
            return
        if self._resync_task is not None and not self._resync_task.done():
            self._resync_task.cancel()
        self._resync_task = self._spawn(self._resync(), f"resync-{self.node_id}")

    async def _resync(self) -> None:
        # Right after a broker restart its key-value API may not answer yet: a few tries.
        for attempt in range(20):
            try:
                await self.recheck_claims()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning(
                    "router %s: re-checking claims after a reconnect failed",
                    self.node_id,
                    exc_info=True,
                )
                await asyncio.sleep(min(0.2 * 2**attempt, 2.0))
                continue
            self.stats.resyncs += 1
            return

    async def recheck_claims(self) -> None:
        """Compare every local station's claim with its presence record: close the local
        socket when another node claimed the station later (a takeover notice this node
        missed); write the claim again when the record is missing (lost, or never written
        because the broker was down)."""
        claims = []
        for station_id, claim in self._claims.items():
            if claim.task is None or claim.task.done():
                claims.append((station_id, claim, claim.revision))
            else:  # a write in flight, maybe failing on the connection that just dropped
                self._spawn(self._claim_again_if_failed(claim), f"reclaim-{station_id}")
        if not claims:
            return
        records = await self._holders([station_id for station_id, _, _ in claims])
        self.stats.holder_reads += len(claims)
        mine = Holder(self.node_id, self.incarnation)
        for (station_id, claim, revision), record in zip(claims, records, strict=True):
            if self._claims.get(station_id) is not claim or claim.revision != revision:
                continue  # changed while we read
            if record is not None and record.holder == mine:
                # Ours (a write whose answer was lost while cut off may have landed since).
                claim.revision = record.revision
                continue
            if record is not None and (revision is None or record.revision > revision):
                # Held elsewhere since (or our own write never landed and someone else's did).
                if record.revision > self._foreign.get(station_id, -1):
                    self._foreign[station_id] = record.revision
                self._spawn(
                    self._drop(claim, "connected to another node (found after a reconnect)"),
                    f"takeover-{station_id}",
                )
                continue
            log.info(
                "router %s: %s has no presence record; claiming it again", self.node_id, station_id
            )
            claim.task = self._spawn(self._claim(claim), f"claim-{station_id}")

    async def _claim_again_if_failed(self, claim: _Claim) -> None:
        task = claim.task
        if task is not None:
            with contextlib.suppress(Exception):
                await task
        station_id = claim.link.station_id
        if claim.revision is None and self._claims.get(station_id) is claim and claim.task is task:
            claim.task = self._spawn(self._claim(claim), f"claim-{station_id}")

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

    async def _look_up(self, station_id: str) -> Claimed | None:
        """A fresh read of the station's presence record (remembered in the cache)."""
        self.stats.holder_reads += 1
        claimed = await self._read(station_id, self._holder(station_id))
        if claimed is not None:
            self._cache.remember(station_id, claimed)
        else:
            self._cache.discard(station_id)
        return claimed

    async def node_of(self, station_id: str) -> str | None:
        """Read from the broker every time (the API shows it): the record, then whether the
        node named there is still that life of the node."""
        if self.local.link(station_id) is not None:
            return self.node_id
        claimed = await self._look_up(station_id)
        if claimed is None or claimed.holder.node_id == self.node_id:
            return None  # released, or a stale record of this node's earlier life
        holder = claimed.holder
        self.stats.liveness_reads += 1
        incarnation = await self._read(station_id, self._node_incarnation(holder.node_id))
        if incarnation != holder.incarnation:
            self._cache.forget_node(holder.node_id, keep_incarnation=incarnation)
            return None
        return holder.node_id

    async def is_connected(self, station_id: str) -> bool:
        """From the holder cache when it names a holder (a hint: `call` verifies), else
        `node_of`."""
        if self.local.link(station_id) is not None or station_id in self._cache:
            return True
        return await self.node_of(station_id) is not None

    async def call(
        self,
        station_id: str,
        action: str,
        payload: dict[str, Any],
        timeout: float,  # noqa: ASYNC109
    ) -> dict[str, Any]:
        request = encode_request(station_id, action, payload, timeout)
        claimed = self._cache.get(station_id)
        tried: set[Claimed] = set()
        for _ in range(3):
            link = self.local.link(station_id)
            if link is not None:
                return await link.call(action, payload, timeout)
            if claimed is None:
                claimed = await self._look_up(station_id)
            if claimed is None or claimed.holder.node_id == self.node_id or claimed in tried:
                # Nobody, a stale record of this node's earlier life, or the holder that just
                # failed (it did not move meanwhile).
                raise StationOffline(station_id)
            tried.add(claimed)
            node = claimed.holder.node_id
            self.stats.requests += 1
            try:
                answer = await self._request(node, request, timeout + self.reply_margin_s)
            except NoHolder:
                # The node is gone: none of its cached holders is any good. Read again, in
                # case the station reconnected elsewhere meanwhile.
                self._cache.forget_node(node)
                claimed = None
                continue
            except TimeoutError:
                raise CommandTimeout(station_id, action, timeout) from None
            except CsmsError:
                raise
            except Exception as exc:
                raise BrokerUnavailable(station_id, repr(exc)) from exc
            try:
                return decode_answer(answer)
            except StationOffline:
                # The node no longer holds it: one more look, in case it moved meanwhile.
                self._cache.forget(station_id, claimed)
                claimed = None
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
        link = self.local.link(station_id)
        if link is None:
            # Not (or no longer) here: the caller reads the presence record again, for a
            # disconnect as for a command (its cached holder may be stale).
            return encode_error(StationOffline(station_id))
        if action == DISCONNECT_ACTION:
            closed = await self.local.disconnect(station_id, str(payload.get("reason", "")))
            return encode_result({"closed": closed})
        try:
            return encode_result(await link.call(action, payload, timeout))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return encode_error(exc)


__all__ = ["BrokerRouter", "NoHolder", "RouterStats", "default_node_id"]
