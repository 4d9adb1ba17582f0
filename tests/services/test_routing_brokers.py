"""Broker routers (NATS and Redis), two or three nodes in one process with fake station links:
commands reach the holding node and its answer or typed error comes back; takeover; a dead node
reads as offline at once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from csms.domain.errors import (
    CallErrorReceived,
    CommandNotAllowed,
    CommandTimeout,
    StationDisconnected,
    StationOffline,
)
from csms.routing.inprocess import InProcessRouter
from csms.routing.nats_router import NatsRouter
from csms.routing.redis_router import RedisRouter
from csms.routing.wire import RemoteCommandFailed, broker_token, decode_answer, encode_error
from csms.settings import Settings
from tests.support.multinode_routing import (
    FakeLink,
    broker_routers,
    make_router,
    wait_until,
)

pytestmark = pytest.mark.timeout(60)


async def test_command_via_either_node_reaches_each_station(broker: tuple[str, str]) -> None:
    kind, url = broker
    async with broker_routers(kind, url, 2) as (a, b):
        on_a, on_b = FakeLink("CP-A"), FakeLink("CP-B")
        a.register(on_a)
        b.register(on_b)
        await a.settle()
        await b.settle()
        for via in (a, b):
            for link in (on_a, on_b):
                answer = await via.call(
                    link.station_id, "Reset", {"type": "Immediate", "via": via.node_id}, 5.0
                )
                assert answer == {
                    "station": link.station_id,
                    "action": "Reset",
                    "echo": {"type": "Immediate", "via": via.node_id},
                }
        assert [p["via"] for _, p, _ in on_a.calls] == ["n0", "n1"]
        assert [p["via"] for _, p, _ in on_b.calls] == ["n0", "n1"]
        # The holder received the caller's timeout unchanged.
        assert {t for _, _, t in on_a.calls + on_b.calls} == {5.0}
        for via in (a, b):
            assert await via.node_of("CP-A") == "n0"
            assert await via.node_of("CP-B") == "n1"
            assert await via.is_connected("CP-B")
        assert a.connected_station_ids() == ["CP-A"]


async def test_unknown_station_is_offline_on_every_node(broker: tuple[str, str]) -> None:
    kind, url = broker
    async with broker_routers(kind, url, 2) as (a, b):
        for via in (a, b):
            assert await via.node_of("nobody") is None
            assert not await via.is_connected("nobody")
            with pytest.raises(StationOffline):
                await via.call("nobody", "Reset", {"type": "Immediate"}, 1.0)


async def test_errors_cross_the_broker_with_their_type_and_code(broker: tuple[str, str]) -> None:
    kind, url = broker

    async def rejecting(action: str, payload: dict[str, Any], timeout: float) -> dict[str, Any]:  # noqa: ASYNC109
        kind_of_error = payload["raise"]
        if kind_of_error == "callerror":
            raise CallErrorReceived("NotSupported", "no resets here", {"hint": 1})
        if kind_of_error == "timeout":
            raise CommandTimeout("CP-E", action, timeout)
        if kind_of_error == "disconnected":
            raise StationDisconnected("CP-E")
        if kind_of_error == "pending":
            raise CommandNotAllowed("CP-E", action, "Pending")
        raise RuntimeError("database on fire")

    async with broker_routers(kind, url, 2) as (a, b):
        b.register(FakeLink("CP-E", rejecting))
        await b.settle()
        with pytest.raises(CallErrorReceived) as callerror:
            await a.call("CP-E", "Reset", {"raise": "callerror"}, 2.0)
        assert (callerror.value.code, callerror.value.description) == (
            "NotSupported",
            "no resets here",
        )
        assert callerror.value.details == {"hint": 1}
        with pytest.raises(CommandTimeout) as timeout:
            await a.call("CP-E", "Reset", {"raise": "timeout"}, 1.5)
        assert (timeout.value.station_id, timeout.value.action, timeout.value.timeout) == (
            "CP-E",
            "Reset",
            1.5,
        )
        with pytest.raises(StationDisconnected) as gone:
            await a.call("CP-E", "Reset", {"raise": "disconnected"}, 2.0)
        assert gone.value.station_id == "CP-E"
        with pytest.raises(CommandNotAllowed) as pending:
            await a.call("CP-E", "Reset", {"raise": "pending"}, 2.0)
        assert pending.value.state == "Pending"
        with pytest.raises(RemoteCommandFailed, match="database on fire"):
            await a.call("CP-E", "Reset", {"raise": "other"}, 2.0)


async def test_holder_that_never_answers_gives_command_timeout(broker: tuple[str, str]) -> None:
    kind, url = broker

    async def hanging(action: str, payload: dict[str, Any], timeout: float) -> dict[str, Any]:  # noqa: ASYNC109
        await asyncio.sleep(30)
        return {}

    async with broker_routers(kind, url, 2, reply_margin_s=0.2) as (a, b):
        b.register(FakeLink("CP-H", hanging))
        await b.settle()
        with pytest.raises(CommandTimeout) as err:
            await a.call("CP-H", "GetVariables", {}, 0.3)
        assert err.value.timeout == 0.3


async def test_takeover_closes_the_old_connection_and_commands_follow(
    broker: tuple[str, str],
) -> None:
    kind, url = broker
    async with broker_routers(kind, url, 3) as (a, b, c):
        first = FakeLink("CP-T")
        a.register(first)
        await a.settle()
        assert await c.node_of("CP-T") == "n0"
        second = FakeLink("CP-T")
        b.register(second)
        await b.settle()
        await asyncio.wait_for(first.closed_event.wait(), 5)
        assert first.closed is not None and first.closed[0] == 1000
        assert a.link("CP-T") is None
        # The old connection's end arrives later (the OCPP server unregisters it): the new
        # claim must survive it.
        a.unregister(first)
        await a.settle()
        for via in (a, b, c):
            assert await via.node_of("CP-T") == "n1"
            await via.call("CP-T", "Reset", {"via": via.node_id}, 2.0)
        assert [p["via"] for _, p, _ in second.calls] == ["n0", "n1", "n2"]
        assert first.calls == []


async def test_reconnect_to_the_same_node_keeps_it(broker: tuple[str, str]) -> None:
    kind, url = broker
    async with broker_routers(kind, url, 2) as (a, b):
        old, new = FakeLink("CP-R"), FakeLink("CP-R")
        a.register(old)
        assert a.register(new) is old  # the OCPP server closes `old` itself
        a.unregister(old)
        await a.settle()
        assert new.closed is None
        assert await b.node_of("CP-R") == "n0"
        await b.call("CP-R", "Reset", {}, 2.0)
        assert len(new.calls) == 1 and old.calls == []


async def test_disconnect_releases_presence(broker: tuple[str, str]) -> None:
    kind, url = broker
    async with broker_routers(kind, url, 2) as (a, b):
        link = FakeLink("CP-D")
        a.register(link)
        await a.settle()
        assert await b.is_connected("CP-D")
        a.unregister(link)
        await a.settle()
        assert await b.node_of("CP-D") is None
        with pytest.raises(StationOffline):
            await b.call("CP-D", "Reset", {}, 2.0)


async def test_dead_node_is_offline_at_once_then_expires(broker: tuple[str, str]) -> None:
    kind, url = broker
    async with broker_routers(kind, url, 2, node_ttl_s=1.0) as (a, b):
        a.register(FakeLink("CP-K"))
        await a.settle()
        assert await b.node_of("CP-K") == "n0"
        # Kill node A's broker connection without any goodbye (as SIGKILL would).
        a._heartbeat.cancel()  # type: ignore[union-attr]
        await a._disconnect()
        a._started = False
        # A 30 s command fails at once: nobody answers for n0 any more.
        with pytest.raises(StationOffline):
            await asyncio.wait_for(b.call("CP-K", "Reset", {}, 30.0), 5.0)

        async def gone() -> bool:
            return await b.node_of("CP-K") is None

        # The liveness entry expires (TTL), so the API reads the station as offline.
        assert await wait_until(gone, timeout_s=10.0)


async def test_many_concurrent_commands_cross_nodes(broker: tuple[str, str]) -> None:
    kind, url = broker

    async def slow_echo(action: str, payload: dict[str, Any], timeout: float) -> dict[str, Any]:  # noqa: ASYNC109
        await asyncio.sleep(0.05)
        return {"n": payload["n"]}

    async with broker_routers(kind, url, 2) as (a, b):
        for i in range(10):
            b.register(FakeLink(f"CP-{i}", slow_echo))
        await b.settle()
        answers = await asyncio.gather(
            *(a.call(f"CP-{n % 10}", "Heartbeat", {"n": n}, 5.0) for n in range(200))
        )
        assert [answer["n"] for answer in answers] == list(range(200))


async def test_station_ids_with_any_characters(broker: tuple[str, str]) -> None:
    kind, url = broker
    async with broker_routers(kind, url, 2) as (a, b):
        for station_id in ("CP.01", "site a/é*>", "x.4350"):
            a.register(FakeLink(station_id))
        await a.settle()
        for station_id in ("CP.01", "site a/é*>", "x.4350"):
            assert await b.node_of(station_id) == "n0"
            assert (await b.call(station_id, "Reset", {}, 2.0))["station"] == station_id


def test_broker_token_keeps_plain_names_and_encodes_others() -> None:
    assert broker_token("CP-001_a") == "CP-001_a"
    assert broker_token("host.example:42") == "x." + b"host.example:42".hex()
    assert broker_token("x.41") != broker_token("A")


def test_error_codec_round_trip_without_broker() -> None:
    with pytest.raises(CallErrorReceived) as err:
        decode_answer(encode_error(CallErrorReceived("GenericError", "x", {})))
    assert err.value.code == "GenericError"
    with pytest.raises(StationOffline):
        decode_answer(encode_error(StationOffline("s")))


def test_factory_builds_the_configured_router() -> None:
    from csms.routing.factory import build_router

    assert isinstance(build_router(Settings(node_id="solo")), InProcessRouter)
    nats_router = build_router(Settings(broker_url="nats://127.0.0.1:4222", node_id="n9"))
    assert isinstance(nats_router, NatsRouter) and nats_router.node_id == "n9"
    redis_router = build_router(Settings(broker_url="redis://127.0.0.1:6379/0"), namespace="z")
    assert isinstance(redis_router, RedisRouter) and redis_router.namespace == "z"


async def test_node_restarted_under_the_same_id_does_not_hold_its_old_stations(
    broker: tuple[str, str],
) -> None:
    kind, url = broker
    async with broker_routers(kind, url, 2) as (a, b):
        a.register(FakeLink("CP-S"))
        await a.settle()
        assert await b.node_of("CP-S") == "n0"
        # n0 dies without a goodbye and comes back at once under the same node id.
        a._heartbeat.cancel()  # type: ignore[union-attr]
        await a._disconnect()
        a._started = False
        reborn = make_router(kind, url, a.namespace, "n0")  # type: ignore[attr-defined]
        await reborn.start()
        try:
            assert await b.node_of("CP-S") is None
            assert await reborn.node_of("CP-S") is None
            with pytest.raises(StationOffline):
                await b.call("CP-S", "Reset", {}, 2.0)
            # The station reconnects to the new life of n0: reachable again.
            reborn.register(FakeLink("CP-S"))
            await reborn.settle()
            assert await b.node_of("CP-S") == "n0"
            assert (await b.call("CP-S", "Reset", {}, 2.0))["station"] == "CP-S"
        finally:
            await reborn.close()


async def test_disconnect_closes_the_socket_on_the_holding_node(broker: tuple[str, str]) -> None:
    kind, url = broker
    async with broker_routers(kind, url, 2) as (a, b):
        on_a = FakeLink("CP-A")
        a.register(on_a)
        await a.settle()
        assert await b.disconnect("CP-A", "station deleted") is True  # asked from the other node
        assert on_a.closed == (1000, "station deleted")
        assert await b.disconnect("nobody", "station deleted") is False


async def test_claims_of_a_dead_node_are_swept_after_two_sweeps(broker: tuple[str, str]) -> None:
    """A node killed without a goodbye leaves its presence records (issue 17: Redis kept ~50
    after restarts); once its liveness entry has expired on two sweeps in a row, another node
    drops them. A live node's claims, and a claim re-written since, stay."""
    kind, url = broker
    async with broker_routers(kind, url, 2, node_ttl_s=1.0) as (a, b):
        for k in range(3):
            a.register(FakeLink(f"CP-dead-{k}"))
        b.register(FakeLink("CP-alive"))
        await a.settle()
        await b.settle()
        a._heartbeat.cancel()  # type: ignore[union-attr]  # SIGKILL: no withdraw, no release
        await a._disconnect()
        a._started = False

        async def expired() -> bool:
            return await b._node_incarnation("n0") is None

        assert await wait_until(expired, timeout_s=10.0)
        assert (await b._holder("CP-dead-0")) is not None  # expired node, record still there
        assert await b.sweep_stale_claims() == 0  # first sighting: only marked
        assert (await b._holder("CP-dead-0")) is not None
        assert await b.sweep_stale_claims() == 3  # stale on two sweeps: dropped
        for k in range(3):
            assert await b._holder(f"CP-dead-{k}") is None
        alive = await b._holder("CP-alive")
        assert alive is not None and alive.holder.node_id == "n1"
        assert await b.sweep_stale_claims() == 0


async def test_sweep_keeps_a_claim_rewritten_between_sweeps(broker: tuple[str, str]) -> None:
    """A station that reconnects to a live node between two sweeps has a new record (another
    revision): the mark of the old one does not drop it."""
    kind, url = broker
    async with broker_routers(kind, url, 2, node_ttl_s=1.0) as (a, b):
        a.register(FakeLink("CP-moving"))
        await a.settle()
        a._heartbeat.cancel()  # type: ignore[union-attr]
        await a._disconnect()
        a._started = False

        async def expired() -> bool:
            return await b._node_incarnation("n0") is None

        assert await wait_until(expired, timeout_s=10.0)
        assert await b.sweep_stale_claims() == 0
        b.register(FakeLink("CP-moving"))  # the station comes back, to node B
        await b.settle()
        assert await b.sweep_stale_claims() == 0
        claimed = await b._holder("CP-moving")
        assert claimed is not None and claimed.holder.node_id == "n1"
