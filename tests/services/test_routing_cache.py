"""Broker routers, holder cache and missed notices (issue 7), on the real NATS and Redis:

- a remote command uses the cached holder: no presence read, one request;
- claim/release/node notices keep the cache right without reads;
- a cached holder that is stale (moved away, node dead) is never the end of it: one fresh read
  and the command reaches the new holder;
- a node cut off from the broker while its station reconnected elsewhere (so it missed the
  takeover notice) closes its stale socket once it is back; a claim it could not write while
  cut off is written then.

The cut-off node reaches the broker through a TCP proxy (benchmarks/tcp_balancer.py with one
backend) that the test closes and opens again; the other nodes connect directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest

from benchmarks.tcp_balancer import TcpBalancer
from csms.domain.errors import StationOffline
from csms.routing.broker import BrokerRouter
from tests.support.multinode_routing import (
    FakeLink,
    broker_routers,
    make_router,
    remove_namespace,
    wait_until,
)

pytestmark = pytest.mark.timeout(90)


def _reads(router: BrokerRouter) -> tuple[int, int]:
    return router.stats.holder_reads, router.stats.liveness_reads


async def _cached(router: BrokerRouter, station_id: str, node_id: str) -> None:
    async def names_it() -> bool:
        cached = router.cached_holder(station_id)
        return cached is not None and cached.holder.node_id == node_id

    assert await wait_until(names_it, 5.0), (station_id, router.cached_holder(station_id))


def _kill(router: BrokerRouter) -> asyncio.Task[None]:
    """Cut the router off the broker without any goodbye, as SIGKILL would."""
    assert router._heartbeat is not None
    router._heartbeat.cancel()
    router._started = False
    return asyncio.ensure_future(router._disconnect())


class _Deaf:
    """Makes `router` miss every notice while in effect (as if it had been disconnected);
    `missed` waits until a notice about the station has arrived and been ignored."""

    def __init__(self, router: BrokerRouter) -> None:
        self.router = router
        self.ignored: list[bytes] = []

    def __enter__(self) -> _Deaf:
        self.router.on_notice = self.ignored.append  # type: ignore[method-assign,assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        del self.router.on_notice

    async def missed(self, station_id: str) -> None:
        async def arrived() -> bool:
            return any(station_id.encode() in notice for notice in self.ignored)

        assert await wait_until(arrived, 5.0), f"no notice about {station_id} arrived"


async def test_remote_command_uses_the_cached_holder(broker: tuple[str, str]) -> None:
    kind, url = broker
    async with broker_routers(kind, url, 2) as (a, b):
        link = FakeLink("CP-C")
        b.register(link)
        await b.settle()
        # The claim notice told `a` who holds it: no read needed, not even for the first command.
        await _cached(a, "CP-C", "n1")
        before = _reads(a)
        for i in range(20):
            assert await a.is_connected("CP-C")  # what the API asks before every command
            assert (await a.call("CP-C", "Reset", {"i": i}, 2.0))["echo"] == {"i": i}
        assert _reads(a) == before
        assert a.stats.requests == 20
        assert [p["i"] for _, p, _ in link.calls] == list(range(20))
        # node_of (what the API shows) still reads the broker every time.
        assert await a.node_of("CP-C") == "n1"
        assert _reads(a) == (before[0] + 1, before[1] + 1)


async def test_without_the_cache_every_command_reads_presence(broker: tuple[str, str]) -> None:
    kind, url = broker
    async with broker_routers(kind, url, 2, cache_holders=False) as (a, b):
        b.register(FakeLink("CP-U"))
        await b.settle()
        for i in range(5):
            assert await a.is_connected("CP-U")
            await a.call("CP-U", "Reset", {"i": i}, 2.0)
        # is_connected: record + liveness; call: record again.
        assert _reads(a) == (10, 5)
        assert a.cached_holder("CP-U") is None


async def test_takeover_notice_moves_the_cached_holder(broker: tuple[str, str]) -> None:
    kind, url = broker
    async with broker_routers(kind, url, 3) as (a, b, c):
        first, second = FakeLink("CP-M"), FakeLink("CP-M")
        a.register(first)
        await a.settle()
        await _cached(c, "CP-M", "n0")
        b.register(second)
        await b.settle()
        await _cached(c, "CP-M", "n1")
        await asyncio.wait_for(first.closed_event.wait(), 5)
        before = _reads(c)
        await c.call("CP-M", "Reset", {}, 2.0)
        assert _reads(c) == before and c.stats.requests == 1
        assert len(second.calls) == 1 and first.calls == []


async def test_release_notice_clears_the_cache(broker: tuple[str, str]) -> None:
    kind, url = broker
    async with broker_routers(kind, url, 2) as (a, b):
        link = FakeLink("CP-L")
        a.register(link)
        await a.settle()
        await _cached(b, "CP-L", "n0")
        a.unregister(link)
        await a.settle()

        async def forgotten() -> bool:
            return b.cached_holder("CP-L") is None

        assert await wait_until(forgotten, 5.0)
        assert not await b.is_connected("CP-L")
        with pytest.raises(StationOffline):
            await b.call("CP-L", "Reset", {}, 2.0)


async def test_stale_cached_holder_that_lost_the_station_is_retried_fresh(
    broker: tuple[str, str],
) -> None:
    kind, url = broker
    async with broker_routers(kind, url, 3) as (a, b, c):
        first, second = FakeLink("CP-S"), FakeLink("CP-S")
        a.register(first)
        await a.settle()
        await _cached(c, "CP-S", "n0")
        with _Deaf(c) as deaf:  # c misses the takeover notice; a gets it and drops its socket
            b.register(second)
            await b.settle()
            await asyncio.wait_for(first.closed_event.wait(), 5)
            await deaf.missed("CP-S")
        stale = c.cached_holder("CP-S")
        assert stale is not None and stale.holder.node_id == "n0"
        before = _reads(c)
        answer = await c.call("CP-S", "Reset", {"via": "c"}, 2.0)
        assert answer["echo"] == {"via": "c"}
        # n0 answered StationOffline, one fresh read named n1, the second request reached it.
        assert c.stats.requests == 2
        assert _reads(c) == (before[0] + 1, before[1])
        assert len(second.calls) == 1 and first.calls == []
        await _cached(c, "CP-S", "n1")


async def test_cached_holder_on_a_dead_node_is_retried_fresh(broker: tuple[str, str]) -> None:
    kind, url = broker
    async with broker_routers(kind, url, 3) as (a, b, c):
        for station_id in ("CP-1", "CP-2"):
            a.register(FakeLink(station_id))
        await a.settle()
        await _cached(b, "CP-1", "n0")
        await _cached(b, "CP-2", "n0")
        await _kill(a)
        # CP-1 reconnects to n2 and b misses that notice: its cache still names dead n0.
        moved = FakeLink("CP-1")
        with _Deaf(b) as deaf:
            c.register(moved)
            await c.settle()
            await deaf.missed("CP-1")
        before = _reads(b)
        answer = await asyncio.wait_for(b.call("CP-1", "Reset", {}, 30.0), 5)
        assert answer["station"] == "CP-1" and len(moved.calls) == 1
        assert b.stats.requests == 2 and _reads(b)[0] == before[0] + 1
        # No responder at n0 made b forget every holder it cached there.
        assert b.cached_holder("CP-2") is None
        # CP-2 has not reconnected: the fresh read names dead n0 again, so it is offline, at once.
        with pytest.raises(StationOffline):
            await asyncio.wait_for(b.call("CP-2", "Reset", {}, 30.0), 5)


async def test_node_restarted_under_the_same_id_is_forgotten(broker: tuple[str, str]) -> None:
    kind, url = broker
    async with broker_routers(kind, url, 2) as (a, b):
        a.register(FakeLink("CP-R"))
        await a.settle()
        await _cached(b, "CP-R", "n0")
        await _kill(a)
        reborn = make_router(kind, url, a.namespace, "n0")  # type: ignore[attr-defined]
        await reborn.start()
        try:
            # Its node-up notice (a new incarnation) removes what b cached about its old life.
            async def forgotten() -> bool:
                return b.cached_holder("CP-R") is None

            assert await wait_until(forgotten, 5.0)
            with pytest.raises(StationOffline):
                await b.call("CP-R", "Reset", {}, 2.0)
        finally:
            await reborn.close()


# ---- a node cut off from the broker -------------------------------------------------------------


class BrokerProxy:
    """A TCP proxy to the broker that can cut every connection through it and come back on the
    same port."""

    def __init__(self, broker_url: str) -> None:
        parts = urlsplit(broker_url)
        self.kind = parts.scheme
        self.path = parts.path
        self.proxy = TcpBalancer([(parts.hostname or "127.0.0.1", parts.port or 0)])
        self.port = 0

    @property
    def url(self) -> str:
        return f"{self.kind}://127.0.0.1:{self.port}{self.path}"

    async def start(self) -> None:
        await self.proxy.start()
        self.port = self.proxy.port
        self.proxy.requested_port = self.port

    async def cut(self) -> None:
        await self.proxy.close()

    async def restore(self) -> None:
        await self.proxy.start()


@contextlib.asynccontextmanager
async def _cut_off_cluster(
    kind: str, url: str
) -> AsyncIterator[tuple[BrokerProxy, BrokerRouter, BrokerRouter, BrokerRouter]]:
    """n0 through the proxy, n1 and n2 directly, all on a fresh namespace."""
    namespace = f"t{uuid.uuid4().hex[:12]}"
    proxy = BrokerProxy(url)
    await proxy.start()
    routers = [
        make_router(kind, proxy.url, namespace, "n0"),
        make_router(kind, url, namespace, "n1"),
        make_router(kind, url, namespace, "n2"),
    ]
    started: list[BrokerRouter] = []
    try:
        for router in routers:
            await router.start()
            started.append(router)
        yield proxy, routers[0], routers[1], routers[2]
    finally:
        if proxy.proxy._server is None:
            await proxy.restore()
        for router in started:
            await router.close()
        await proxy.cut()
        await remove_namespace(kind, url, namespace)


async def test_node_that_missed_a_takeover_while_cut_off_drops_the_stale_socket(
    broker: tuple[str, str],
) -> None:
    kind, url = broker
    async with _cut_off_cluster(kind, url) as (proxy, a, b, c):
        stale, fresh = FakeLink("CP-X"), FakeLink("CP-X")
        a.register(stale)
        await a.settle()
        await _cached(c, "CP-X", "n0")
        await proxy.cut()
        # Meanwhile the station reconnects to n1 (a half-open socket stays on n0).
        b.register(fresh)
        await b.settle()
        await _cached(c, "CP-X", "n1")
        await asyncio.sleep(0.5)
        assert stale.closed is None and a.link("CP-X") is stale  # n0 missed the notice
        resyncs = a.stats.resyncs
        await proxy.restore()
        await asyncio.wait_for(stale.closed_event.wait(), 20)
        assert a.link("CP-X") is None and a.stats.resyncs == resyncs + 1
        assert fresh.closed is None and b.link("CP-X") is fresh
        for via in (a, b, c):
            assert await via.node_of("CP-X") == "n1"
            await via.call("CP-X", "Reset", {"via": via.node_id}, 2.0)
        assert [p["via"] for _, p, _ in fresh.calls] == ["n0", "n1", "n2"]
        assert stale.calls == []


async def test_node_still_holding_its_station_after_a_cut_keeps_it(
    broker: tuple[str, str],
) -> None:
    kind, url = broker
    async with _cut_off_cluster(kind, url) as (proxy, a, _, c):
        link = FakeLink("CP-K")
        a.register(link)
        await a.settle()
        await proxy.cut()
        await asyncio.sleep(0.3)
        resyncs = a.stats.resyncs
        await proxy.restore()

        async def rechecked() -> bool:
            return a.stats.resyncs > resyncs

        assert await wait_until(rechecked, 20)
        assert link.closed is None and a.link("CP-K") is link
        assert (await c.call("CP-K", "Reset", {}, 2.0))["station"] == "CP-K"


async def test_claim_that_failed_while_cut_off_is_written_after_reconnect(
    broker: tuple[str, str],
) -> None:
    kind, url = broker
    async with _cut_off_cluster(kind, url) as (proxy, a, b, _):
        await proxy.cut()
        await asyncio.sleep(0.3)
        link = FakeLink("CP-W")
        a.register(link)
        await asyncio.wait_for(a.settle(), 30)  # the presence write fails (no broker)
        assert a._claims["CP-W"].revision is None
        assert await b.node_of("CP-W") is None
        await proxy.restore()

        async def recorded() -> bool:
            return await b.node_of("CP-W") == "n0"

        assert await wait_until(recorded, 20)
        assert (await b.call("CP-W", "Reset", {}, 2.0))["station"] == "CP-W"
        assert len(link.calls) == 1


async def test_claim_whose_write_failed_is_written_again_by_the_heartbeat(
    broker: tuple[str, str],
) -> None:
    kind, url = broker
    async with broker_routers(kind, url, 2, node_ttl_s=0.6) as (a, b):
        write = a._write_claim
        failures = 0

        async def failing_once(station_id: str) -> int:
            nonlocal failures
            if failures == 0:
                failures += 1
                raise ConnectionError("broker hiccup")
            return await write(station_id)

        a._write_claim = failing_once  # type: ignore[method-assign]
        link = FakeLink("CP-H")
        a.register(link)
        await a.settle()
        assert failures == 1 and a._claims["CP-H"].revision is None

        async def recorded() -> bool:
            return await b.node_of("CP-H") == "n0"

        assert await wait_until(recorded, 5.0)
        assert (await b.call("CP-H", "Reset", {}, 2.0))["station"] == "CP-H"


async def test_disconnect_with_a_stale_cached_holder_reaches_the_real_one(
    broker: tuple[str, str],
) -> None:
    kind, url = broker
    async with broker_routers(kind, url, 3) as (a, b, c):
        first, second = FakeLink("CP-D"), FakeLink("CP-D")
        a.register(first)
        await a.settle()
        await _cached(c, "CP-D", "n0")
        with _Deaf(c) as deaf:
            b.register(second)
            await b.settle()
            await deaf.missed("CP-D")
        await asyncio.wait_for(first.closed_event.wait(), 5)
        # c's cache names n0, which no longer holds the station: the close must reach n1.
        assert await c.disconnect("CP-D", "station deleted") is True
        assert second.closed == (1000, "station deleted")
        assert await c.disconnect("nobody", "station deleted") is False
