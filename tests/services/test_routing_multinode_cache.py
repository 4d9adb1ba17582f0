"""Real `csms serve` nodes with warm holder caches (issue 7): SIGKILL a node and the commands
through every surviving node still reach every station, its moved stations included, on NATS
and on Redis. The survivors cached the victim as the holder of its stations (every node sent
every station a command first); those entries must not strand a command."""

from __future__ import annotations

import asyncio

import pytest

from tests.services.test_multinode_nodes import Cluster, cluster
from tests.support.multinode import wait_for
from tests.support.multinode_routing import broker_url_or_skip

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(240)]


async def _reset_everywhere(c: Cluster, marker: int) -> int:
    """A Reset from every live node to every station, each answered 200 and received by the
    station; returns the next marker."""
    for node in c.live_nodes:
        for station in c.stations:
            marker += 1
            response = await c.reset(node, station.station_id, marker)
            assert response.status_code == 200, (node.node_id, station.station_id, response.text)
            assert any(
                action == "Reset" and payload.get("evseId") == marker
                for action, payload in station.all_commands()
            )
    return marker


@pytest.mark.parametrize(
    "kind",
    [pytest.param("nats", marks=pytest.mark.nats), pytest.param("redis", marks=pytest.mark.redis)],
)
async def test_commands_reach_moved_stations_after_sigkill_with_warm_caches(kind: str) -> None:
    async with cluster(broker_url_or_skip(kind), node_count=3, station_count=6) as c:
        await wait_for(c.holders_agree, 10, "every node to agree on who holds each station")
        marker = await _reset_everywhere(c, 0)  # every node has every remote holder cached
        victim = c.nodes[1]
        moved = [
            s
            for s in c.stations
            if (await c.station_state(c.nodes[0], s.station_id))["node"] == victim.node_id
        ]
        assert moved, "the balancer gave the victim no station"
        await victim.kill()
        # Straight after the kill a command to a moved station ends quickly: 409 while it is
        # reconnecting, 200 once it has; never a wait for the command timeout on a dead node.
        loop = asyncio.get_running_loop()
        for node in c.live_nodes:
            started = loop.time()
            response = await c.reset(node, moved[0].station_id, 500)
            assert response.status_code in (200, 409), response.text
            assert loop.time() - started < 2.5
        for station in moved:
            await asyncio.wait_for(station.dropped.wait(), 10)

        async def all_moved() -> bool:
            return all(s.connections >= 2 and s.ready.is_set() for s in moved)

        await wait_for(all_moved, 20, "the victim's stations to reconnect")
        await wait_for(c.holders_agree, 20, "the surviving nodes to agree on the new holders")
        await _reset_everywhere(c, marker)
