"""V2G background work on several CSMS nodes sharing one database (a SQLite file, and
PostgreSQL when CSMS_TEST_POSTGRES_URL is set): each node is its own Database, router and
V2gService in this process.

- The central under-frequency rule: samples that alternate between nodes, or reach both nodes
  at once, are one stream (state in v2g_rule_states under a row lock): an event fires once
  and is cleared once.
- Re-planning: each node re-plans only the vehicles at stations it holds, so a round sends each
  vehicle's plan once (in-process routers, and NATS/Redis routers where any node could reach
  every station); a station that moves to another node is re-planned by that node.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from csms.domain.errors import InvalidRequest
from csms.persistence.repositories import v2g as vrepo
from csms.routing.broker import BrokerRouter
from csms.routing.inprocess import InProcessRouter
from csms.services.commands import CommandService
from csms.services.v2g import V2gService
from csms.services.v2g.frequency import UNDER_FREQUENCY_RULE
from tests.support.csms_db import fresh_postgres_database, postgres_url_or_skip
from tests.support.multinode_routing import FakeLink, broker_routers, broker_url_or_skip
from tests.support.v2g_nodes import (
    Nodes,
    frequency_nodes,
    node_databases,
    plug_in,
    put_prices,
    report_soc,
)

pytestmark = pytest.mark.timeout(120)

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'nodes.db'}"
        return
    request.applymarker(pytest.mark.postgres)
    async with fresh_postgres_database(postgres_url_or_skip()) as url:
        yield url


def fired_ids(answer: dict[str, list[dict[str, Any]]]) -> list[str]:
    return sorted(item["vehicle_id"] for item in answer["fired"])


def restored_ids(answer: dict[str, list[dict[str, Any]]]) -> list[str]:
    return sorted(item["vehicle_id"] for item in answer["restored"])


async def sample(nodes: Nodes, k: int, hz: float, second: float) -> dict[str, Any]:
    """Sample at T0 + `second`, answered by node k (modulo the node count)."""
    service = nodes.services[k % len(nodes.services)]
    return await service.grid_frequency(hz, T0 + timedelta(seconds=second))


# ---- the under-frequency rule -------------------------------------------------------------------


async def test_alternating_samples_fire_once_and_restore_once(db_url: str) -> None:
    async with frequency_nodes(db_url) as nodes:
        await plug_in(nodes.dbs[0], ["CS0", "CS1"], T0 - timedelta(hours=1), soc_pct=70.0)
        await report_soc(nodes.dbs[0], "CS1", 52.0, T0 - timedelta(minutes=1))
        # Below 49.8 Hz from 0 s: the rule holds for 5 s, however the samples are spread.
        answers = [await sample(nodes, s, 49.7, s) for s in range(7)]
        assert [s for s, a in enumerate(answers) if a["fired"]] == [5]
        assert fired_ids(answers[5]) == ["ev0", "ev1"]
        assert answers[5]["fired"][0]["kw"] == -5.0
        assert sorted(st for _, st in nodes.sends("SetChargingProfile")) == ["CS0", "CS1"]
        # Still low and discharging: nothing more is sent, by either node.
        for s in range(7, 20):
            assert (await sample(nodes, s, 49.7, s))["fired"] == []
        assert len(nodes.sends("SetChargingProfile")) == 2
        # CS1's SoC falls to the stop level: cleared once, by whichever node sees it first.
        await report_soc(nodes.dbs[1], "CS1", 50.0, T0 + timedelta(seconds=20))
        restored = [await sample(nodes, s, 49.7, s) for s in range(21, 25)]
        assert [restored_ids(a) for a in restored] == [["ev1"], [], [], []]
        assert [st for _, st in nodes.sends("ClearChargingProfile")] == ["CS1"]
        # ev0's discharge ends after its 600 s by itself (no clear); a new dip fires again once.
        for s in (600, 606, 607, 700):
            answer = await sample(nodes, s, 50.0, s)
            assert answer == {"fired": [], "restored": []}
        again = [await sample(nodes, s, 49.6, s) for s in range(701, 708)]
        assert [s for s, a in zip(range(701, 708), again, strict=True) if a["fired"]] == [706]
        assert fired_ids(again[5]) == ["ev0"]  # ev1 is at its stop level
        assert len(nodes.sends("SetChargingProfile")) == 3
        assert len(nodes.sends("ClearChargingProfile")) == 1
        # Both nodes answered samples and sent commands.
        assert {n for n, _, _, _ in nodes.sent} == {"n0", "n1"}
        frequency_events = [
            d for d, _ in await nodes.services[0].dispatches() if d.kind == "frequency"
        ]
        assert [len(d.per_vehicle) for d in frequency_events] == [2, 1]


async def test_the_same_sample_on_both_nodes_at_once_fires_once(db_url: str) -> None:
    """A sample a balancer delivers twice, to two nodes at the same moment: the row lock lets
    one node decide; the other sees the decision (two nodes each keeping their own state both
    fired)."""
    async with frequency_nodes(db_url) as nodes:
        stations = [f"CS{k}" for k in range(5)]
        await plug_in(nodes.dbs[0], stations, T0 - timedelta(hours=1), soc_pct=80.0)
        fired: list[str] = []
        for s in range(8):
            a, b = await asyncio.gather(sample(nodes, 0, 49.5, s), sample(nodes, 1, 49.5, s))
            fired += fired_ids(a) + fired_ids(b)
        assert sorted(fired) == [f"ev{k}" for k in range(5)]
        assert sorted(st for _, st in nodes.sends("SetChargingProfile")) == stations


async def test_concurrent_distinct_samples_never_fire_twice(db_url: str) -> None:
    """Three nodes answer the samples of one stream concurrently; a sample that reaches its
    node after a later one is refused (422), never double-counted."""
    async with frequency_nodes(db_url, count=3) as nodes:
        await plug_in(nodes.dbs[0], ["CS0", "CS1"], T0 - timedelta(hours=1), soc_pct=80.0)
        answers = await asyncio.gather(
            *(sample(nodes, s, 49.5, s / 2) for s in range(30)), return_exceptions=True
        )
        for answer in answers:
            assert isinstance(answer, dict | InvalidRequest), answer
        fired = [v for a in answers if isinstance(a, dict) for v in fired_ids(a)]
        assert sorted(fired) == ["ev0", "ev1"]
        assert len(nodes.sends("SetChargingProfile")) == 2


async def test_a_sample_older_than_the_stored_one_is_refused_and_changes_nothing(
    db_url: str,
) -> None:
    async with frequency_nodes(db_url) as nodes:
        await plug_in(nodes.dbs[0], ["CS0"], T0 - timedelta(hours=1), soc_pct=80.0)
        await sample(nodes, 0, 49.5, 10)
        async with nodes.dbs[0].read() as conn:
            before = await vrepo.get_rule_state(conn, UNDER_FREQUENCY_RULE)
        assert before is not None and before["ev0"]["state"] == "arming"
        with pytest.raises(InvalidRequest, match="time order"):
            await sample(nodes, 1, 49.5, 9)
        async with nodes.dbs[1].read() as conn:
            assert await vrepo.get_rule_state(conn, UNDER_FREQUENCY_RULE) == before
        # The stream goes on from the stored sample: 5 s after 10 s.
        assert (await sample(nodes, 1, 49.5, 14))["fired"] == []
        assert fired_ids(await sample(nodes, 0, 49.5, 15)) == ["ev0"]


async def test_rule_state_forgets_idle_vehicles_that_left(db_url: str) -> None:
    async with frequency_nodes(db_url) as nodes:
        await plug_in(nodes.dbs[0], ["CS0", "CS1"], T0 - timedelta(hours=1), soc_pct=80.0)
        await sample(nodes, 0, 50.0, 0)
        await nodes.services[1].update_vehicle("ev1", station_id=None, evse_id=None)
        await sample(nodes, 1, 49.5, 1)
        async with nodes.dbs[0].read() as conn:
            state = await vrepo.get_rule_state(conn, UNDER_FREQUENCY_RULE)
        assert state is not None and sorted(state) == ["ev0"]
        assert (
            state["ev0"]["state"] == "arming"
            and state["ev0"]["last_t"] == (T0 + timedelta(seconds=1)).timestamp()
        )


async def test_rule_state_row_is_locked_until_the_transaction_ends(db_url: str) -> None:
    """Two nodes' transactions on the rule's row: the second reads only after the first
    commits, and then sees what the first wrote (no lost update)."""
    async with node_databases(db_url) as (a, b):
        async with a.engine.begin() as conn:  # the row exists (the usual case)
            await vrepo.lock_rule_state(conn, "test_rule", T0)
        first_has_it, second_read = asyncio.Event(), asyncio.Event()
        release = asyncio.Event()

        async def first() -> None:
            async with a.engine.begin() as conn:
                state = await vrepo.lock_rule_state(conn, "test_rule", T0)
                first_has_it.set()
                await release.wait()
                await vrepo.save_rule_state(conn, "test_rule", {**state, "n": 1}, T0)

        async def second() -> dict[str, Any]:
            await first_has_it.wait()
            async with b.engine.begin() as conn:
                state = await vrepo.lock_rule_state(conn, "test_rule", T0)
                second_read.set()
                await vrepo.save_rule_state(conn, "test_rule", {"n": state["n"] + 1}, T0)
                return state

        tasks = asyncio.gather(first(), second())
        await first_has_it.wait()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(second_read.wait(), 0.5)
        release.set()
        _, seen = await tasks
        assert seen == {"n": 1}
        async with a.read() as conn:
            assert await vrepo.get_rule_state(conn, "test_rule") == {"n": 2}


# ---- re-planning -----------------------------------------------------------------------------


async def _accept(action: str, payload: dict[str, Any], timeout: float) -> dict[str, Any]:  # noqa: ASYNC109
    return {"status": "Accepted"}


@contextlib.asynccontextmanager
async def routers(kind: str, count: int) -> AsyncIterator[list[Any]]:
    if kind == "inprocess":
        yield [InProcessRouter(f"n{k}") for k in range(count)]
        return
    async with broker_routers(kind, broker_url_or_skip(kind), count) as started:
        yield list(started)


async def _hold(router: Any, link: FakeLink) -> None:
    router.register(link)
    if isinstance(router, BrokerRouter):
        await router.settle()


async def _release(router: Any, link: FakeLink) -> None:
    router.unregister(link)
    if isinstance(router, BrokerRouter):
        await router.settle()


def _plans_sent(links: dict[str, FakeLink]) -> dict[str, int]:
    return {
        s: sum(a == "SetChargingProfile" for a, _, _ in link.calls) for s, link in links.items()
    }


@pytest.mark.parametrize(
    "kind",
    [
        "inprocess",
        pytest.param("nats", marks=pytest.mark.nats),
        pytest.param("redis", marks=pytest.mark.redis),
    ],
)
async def test_each_node_replans_the_stations_it_holds_once_per_round(
    db_url: str, kind: str
) -> None:
    now = datetime.now(UTC)
    stations = ["CS0", "CS1", "CS2", "CS3"]
    async with node_databases(db_url) as dbs, routers(kind, 2) as (ra, rb):
        await plug_in(
            dbs[0], stations, now - timedelta(minutes=30), 60.0, now + timedelta(hours=10)
        )
        nodes = [
            V2gService(db, CommandService(db, router), router=router)
            for db, router in ((dbs[0], ra), (dbs[1], rb))
        ]
        await put_prices(nodes[0], now.replace(minute=0, second=0, microsecond=0))
        links = {s: FakeLink(s, _accept) for s in stations}
        for s in stations:
            await _hold(ra if s in ("CS0", "CS1") else rb, links[s])

        a, b = await asyncio.gather(nodes[0].replan_all(), nodes[1].replan_all())
        assert sorted(a) == ["ev0", "ev1"] and sorted(b) == ["ev2", "ev3"]
        assert set(map(tuple, [*a.values(), *b.values()])) == {("no plan yet",)}
        assert _plans_sent(links) == dict.fromkeys(stations, 1)
        # Nothing changed: a second round sends nothing, on either node.
        assert await asyncio.gather(nodes[0].replan_all(), nodes[1].replan_all()) == [{}, {}]

        # CS1 reconnects to node 1; prices are uploaded through node 0: node 1 sees the new
        # prices (read from the database) and re-plans CS1's vehicle, node 0 no longer does.
        old_cs1 = links["CS1"]
        await _release(ra, old_cs1)
        links["CS1"] = FakeLink("CS1", _accept)
        await _hold(rb, links["CS1"])
        await asyncio.sleep(0.01)  # the price upload is later than every plan
        await put_prices(nodes[0], now.replace(minute=0, second=0, microsecond=0))
        a, b = await asyncio.gather(nodes[0].replan_all(), nodes[1].replan_all())
        assert a == {"ev0": ["prices changed"]}
        assert b == {vid: ["prices changed"] for vid in ("ev1", "ev2", "ev3")}
        # One more plan each round: CS1's on its new connection.
        assert _plans_sent(links) == {"CS0": 2, "CS1": 1, "CS2": 2, "CS3": 2}
        assert _plans_sent({"CS1": old_cs1}) == {"CS1": 1}
        async with dbs[1].read() as conn:
            plans = [
                await vrepo.latest_plan(conn, vehicle_id=f"ev{k}") for k in range(len(stations))
            ]
        assert all(p is not None and p.status == "Accepted" for p in plans)


async def test_replanning_without_a_router_plans_every_vehicle(tmp_path: Path) -> None:
    """One node built without a router (as before several nodes): every linked vehicle."""
    now = datetime.now(UTC)
    url = f"sqlite+aiosqlite:///{tmp_path / 'one.db'}"
    async with node_databases(url, 1) as (db,):
        await plug_in(
            db, ["CS0", "CS1"], now - timedelta(minutes=30), 60.0, now + timedelta(hours=8)
        )
        router = InProcessRouter("n0")
        links = {s: FakeLink(s, _accept) for s in ("CS0", "CS1")}
        for link in links.values():
            router.register(link)
        service = V2gService(db, CommandService(db, router))
        await put_prices(service, now.replace(minute=0, second=0, microsecond=0))
        assert sorted(await service.replan_all()) == ["ev0", "ev1"]
        assert _plans_sent(links) == {"CS0": 1, "CS1": 1}


def test_routers_know_which_stations_are_local() -> None:
    router = InProcessRouter("n0")
    link = FakeLink("CS1")
    assert not router.is_local("CS1")
    router.register(link)
    assert router.is_local("CS1") and not router.is_local("CS2")
    router.unregister(link)
    assert not router.is_local("CS1")


@pytest.mark.parametrize(
    "kind",
    [pytest.param("nats", marks=pytest.mark.nats), pytest.param("redis", marks=pytest.mark.redis)],
)
async def test_broker_routers_know_which_stations_are_local(kind: str) -> None:
    async with routers(kind, 2) as (a, b):
        first = FakeLink("CS1")
        await _hold(a, first)
        assert a.is_local("CS1") and not b.is_local("CS1")
        assert await b.is_connected("CS1")  # reachable from b, but not b's
        await _hold(b, FakeLink("CS1"))  # the station reconnects to b: a's socket is closed
        await asyncio.wait_for(first.closed_event.wait(), 5)
        assert b.is_local("CS1") and not a.is_local("CS1")
