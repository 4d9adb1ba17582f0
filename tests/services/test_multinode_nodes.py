"""Several real `csms serve` processes on one PostgreSQL database and a broker, a TCP balancer
in front of their OCPP ports, stations connecting through it (issue 7, "Several nodes").

- commands through every node's API reach every station, errors keep their HTTP mapping;
- SIGKILL a node: its stations reconnect through the balancer to the others, commands reach them
  again, and every TransactionEvent/MeterValues a station got an answer for is in the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from ocpp.v201 import call

from benchmarks.tcp_balancer import TcpBalancer
from tests.support.api_station import connected_station
from tests.support.csms_payloads import tx_event
from tests.support.multinode import (
    PASSWORD,
    HaproxyBalancer,
    NodeProcess,
    RoamingStation,
    api_client,
    env_or_skip,
    fresh_database,
    prepare_database,
    start_node,
    wait_for,
)
from tests.support.multinode_routing import broker_url_or_skip

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(240)]


@dataclass
class Cluster:
    database_url: str
    token: str
    nodes: list[NodeProcess]
    balancer: TcpBalancer | HaproxyBalancer
    stations: list[RoamingStation]
    client: httpx.AsyncClient

    @property
    def live_nodes(self) -> list[NodeProcess]:
        return [node for node in self.nodes if node.process.returncode is None]

    async def station_state(self, node: NodeProcess, station_id: str) -> dict[str, Any]:
        response = await self.client.get(f"{node.api_url}/stations/{station_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def holders_agree(self) -> bool:
        """Every live node's API names the same live holder for every station."""
        live = {node.node_id for node in self.live_nodes}
        for station in self.stations:
            if not station.ready.is_set():
                return False
            seen = {
                (state["connected"], state["node"])
                for state in [
                    await self.station_state(n, station.station_id) for n in self.live_nodes
                ]
            }
            if len(seen) != 1:
                return False
            connected, node_id = seen.pop()
            if not connected or node_id not in live:
                return False
        return True

    async def reset(self, node: NodeProcess, station_id: str, marker: int) -> httpx.Response:
        return await self.client.post(
            f"{node.api_url}/stations/{station_id}/commands/reset",
            json={"type": "OnIdle", "evse_id": marker},
        )


@contextlib.asynccontextmanager
async def cluster(
    broker_url: str | None, node_count: int, station_count: int, balancer_kind: str = "asyncio"
) -> AsyncIterator[Cluster]:
    postgres = env_or_skip("CSMS_TEST_POSTGRES_URL")
    run = uuid.uuid4().hex[:8]
    station_ids = [f"MN-{run}-{i}" for i in range(station_count)]
    async with fresh_database(postgres) as database_url:
        token = await prepare_database(database_url, [*station_ids, f"MN-{run}-offline"])
        nodes: list[NodeProcess] = []
        stations: list[RoamingStation] = []
        try:
            # The database is migrated already (prepare_database): start the nodes together.
            started = await asyncio.gather(
                *(start_node(f"mn-{run}-{i}", database_url, broker_url) for i in range(node_count)),
                return_exceptions=True,
            )
            nodes.extend(node for node in started if isinstance(node, NodeProcess))
            for failure in started:
                if isinstance(failure, BaseException):
                    raise failure
            backends = [("127.0.0.1", node.ocpp_port) for node in nodes]
            balancer: TcpBalancer | HaproxyBalancer
            if balancer_kind == "haproxy":
                config_dir = tempfile.mkdtemp(prefix="csms-mn-haproxy-")
                balancer = HaproxyBalancer(backends, config_dir)
            else:
                balancer = TcpBalancer(backends)
            await balancer.start()
            try:
                url = f"ws://127.0.0.1:{balancer.port}/ocpp"
                stations = [RoamingStation(url, station_id) for station_id in station_ids]
                for station in stations:
                    station.start()
                    # One at a time, so that round robin spreads them evenly.
                    await asyncio.wait_for(station.ready.wait(), 20)
                async with api_client(token) as client:
                    yield Cluster(database_url, token, nodes, balancer, stations, client)
            finally:
                for station in stations:
                    await station.stop()
                await balancer.close()
        finally:
            for node in nodes:
                await node.stop()


def _broker(kind: str) -> str:
    return broker_url_or_skip(kind)


@pytest.mark.parametrize(
    "kind",
    [pytest.param("nats", marks=pytest.mark.nats), pytest.param("redis", marks=pytest.mark.redis)],
)
async def test_commands_through_every_node_reach_every_station(kind: str) -> None:
    async with cluster(_broker(kind), node_count=3, station_count=6) as c:
        # The balancer spread the stations over the three nodes.
        assert isinstance(c.balancer, TcpBalancer)
        assert sorted(c.balancer.accepted.values()) == [2, 2, 2]
        await wait_for(c.holders_agree, 10, "every node to agree on who holds each station")
        holders = {
            s.station_id: (await c.station_state(c.nodes[0], s.station_id))["node"]
            for s in c.stations
        }
        assert set(holders.values()) == {node.node_id for node in c.nodes}

        marker = 0
        for node in c.nodes:
            for station in c.stations:
                marker += 1
                response = await c.reset(node, station.station_id, marker)
                assert response.status_code == 200, response.text
                assert response.json() == {"status": "Accepted"}
        for station in c.stations:
            markers = [p["evseId"] for action, p in station.all_commands() if action == "Reset"]
            # Each station got the command from each of the three nodes, exactly once.
            assert len(markers) == 3 and len(set(markers)) == 3

        # Errors cross the broker with their type: CALLERROR -> 502 with the code, silence ->
        # 504, a station that is not connected -> 409, on a node that does not hold it.
        target = c.stations[0]
        holder = holders[target.station_id]
        other = next(node for node in c.nodes if node.node_id != holder)
        assert target.station is not None
        target.station.behaviour.call_errors["Reset"] = ("NotSupported", "not here")
        response = await c.reset(other, target.station_id, 99)
        assert response.status_code == 502, response.text
        assert response.json()["code"] == "NotSupported"
        target.station.behaviour.call_errors.clear()
        target.station.behaviour.silent.add("Reset")
        response = await c.reset(other, target.station_id, 98)  # waits CSMS_COMMAND_TIMEOUT_S
        assert response.status_code == 504, response.text
        target.station.behaviour.silent.clear()
        offline_id = target.station_id.rsplit("-", 1)[0] + "-offline"
        for node in c.nodes:
            response = await c.reset(node, offline_id, 1)
            assert response.status_code == 409, response.text


async def _stream(
    station: RoamingStation, tx_id: str, stop: asyncio.Event, answered: list[tuple[str, float]]
) -> None:
    """Started, then TransactionEvent Updated and MeterValues in turn until `stop`, then Ended;
    records (kind, value) of every message the CSMS answered."""
    seq = 0

    async def send_event(event_type: str, energy: float | None) -> None:
        payload = tx_event(event_type, seq, tx_id=tx_id, energy_wh=energy)
        await station.deliver(
            lambda s: s.call(call.TransactionEvent(**_snake(payload)), suppress=False)
        )
        answered.append((f"event-{seq}", energy or 0.0))

    await send_event("Started", None)
    step = 0
    while not stop.is_set():
        step += 1
        seq += 1
        await send_event("Updated", 1000.0 + step)
        value = 50_000.0 + step
        # One sample time per step: a repeated sample is stored once.
        sample = {"timestamp": _sample_time(step), "sampledValue": [{"value": value}]}
        await station.deliver(
            lambda s, m=sample: s.call(  # type: ignore[misc]
                call.MeterValues(evse_id=1, meter_value=[m]),
                suppress=False,
            )
        )
        answered.append(("meter", value))
        await asyncio.sleep(0.02)
    seq += 1
    await send_event("Ended", None)


def _sample_time(step: int) -> str:
    at = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=step)
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def _snake(payload: dict[str, Any]) -> dict[str, Any]:
    import re

    return {re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower(): value for key, value in payload.items()}


@pytest.mark.nats
@pytest.mark.parametrize("balancer_kind", ["asyncio", "haproxy"])
async def test_sigkill_a_node_stations_move_commands_follow_no_message_lost(
    balancer_kind: str,
) -> None:
    async with cluster(_broker("nats"), 3, 6, balancer_kind) as c:
        await wait_for(c.holders_agree, 10, "every node to agree on who holds each station")
        victim = c.nodes[1]
        moved = [
            s
            for s in c.stations
            if (await c.station_state(c.nodes[0], s.station_id))["node"] == victim.node_id
        ]
        assert moved, "the balancer gave the victim no station"

        stop = asyncio.Event()
        answered: dict[str, list[tuple[str, float]]] = {s.station_id: [] for s in c.stations}
        tx_ids = {s.station_id: f"TX-{s.station_id}" for s in c.stations}
        streams = [
            asyncio.create_task(_stream(s, tx_ids[s.station_id], stop, answered[s.station_id]))
            for s in c.stations
        ]
        await asyncio.sleep(1.0)
        await victim.kill()
        for station in moved:
            await asyncio.wait_for(station.dropped.wait(), 10)
        await wait_for(lambda: _all_moved(moved), 20, "the victim's stations to reconnect")
        await wait_for(c.holders_agree, 20, "the surviving nodes to agree on the new holders")
        moved_count = {s.station_id: len(answered[s.station_id]) for s in moved}

        async def flowing_again() -> bool:
            return all(len(answered[sid]) > count + 2 for sid, count in moved_count.items())

        # Messages flow on the new connections too (a call lost with the old one first waits
        # out the station's 3 s response timeout).
        await wait_for(flowing_again, 15, "the moved stations' messages to be answered again")
        stop.set()
        await asyncio.wait_for(asyncio.gather(*streams), 60)

        survivors = c.live_nodes
        assert victim not in survivors and len(survivors) == 2
        for station in c.stations:
            state = await c.station_state(survivors[0], station.station_id)
            assert state["connected"] and state["node"] != victim.node_id
        marker = 1000
        for node in survivors:
            for station in c.stations:
                marker += 1
                response = await c.reset(node, station.station_id, marker)
                assert response.status_code == 200, response.text
                assert any(
                    action == "Reset" and p.get("evseId") == marker
                    for action, p in station.all_commands()
                )

        # Every answered message is stored, whichever node answered it (read on a survivor).
        connection = await asyncpg.connect(
            c.database_url.replace("postgresql+asyncpg://", "postgresql://")
        )
        try:
            for station in c.stations:
                rows = await connection.fetch(
                    "SELECT seq_no FROM transaction_events"
                    " WHERE station_id = $1 AND transaction_id = $2",
                    station.station_id,
                    tx_ids[station.station_id],
                )
                stored_seq = {int(r["seq_no"]) for r in rows}
                values = await connection.fetch(
                    "SELECT sampled_values FROM meter_values WHERE station_id = $1",
                    station.station_id,
                )
                stored_values = {  # one row per MeterValue (0017): [measurand, value, ...]
                    float(sample[1]) for r in values for sample in orjson.loads(r["sampled_values"])
                }
                sent = answered[station.station_id]
                sent_seq = {
                    int(kind.split("-")[1]) for kind, _ in sent if kind.startswith("event-")
                }
                sent_values = {v for kind, v in sent if kind == "meter" or v}
                assert sent_seq <= stored_seq, (station.station_id, sorted(sent_seq - stored_seq))
                assert sent_values <= stored_values, (
                    station.station_id,
                    sorted(sent_values - stored_values),
                )
                assert len(sent_seq) >= 3
        finally:
            await connection.close()
        for station in c.stations:
            response = await c.client.get(
                f"{survivors[-1].api_url}/stations/{station.station_id}/transactions/{tx_ids[station.station_id]}"
            )
            assert response.status_code == 200, response.text
            assert response.json()["transaction"]["state"] == "Ended"


async def _all_moved(stations: list[RoamingStation]) -> bool:
    return all(s.connections >= 2 and s.ready.is_set() for s in stations)


@pytest.mark.nats
async def test_station_reconnecting_to_another_node_takes_over_and_old_node_drops_it() -> None:
    """The old socket is still open (a half-open link, say) when the station connects to another
    node: the new node claims the station and the old node closes its socket."""
    async with cluster(_broker("nats"), node_count=2, station_count=0) as c:
        station_id = await _any_registered_offline_station(c)
        first, second = c.nodes
        async with connected_station(
            f"ws://127.0.0.1:{first.ocpp_port}/ocpp", station_id, PASSWORD
        ) as old:
            state = await c.station_state(second, station_id)
            assert (state["connected"], state["node"]) == (True, first.node_id)
            async with connected_station(
                f"ws://127.0.0.1:{second.ocpp_port}/ocpp", station_id, PASSWORD
            ) as new:
                # The first node closes the old connection (websocket close from the server).
                await asyncio.wait_for(old._connection.wait_closed(), 10)
                for node in (first, second):
                    state = await c.station_state(node, station_id)
                    assert (state["connected"], state["node"]) == (True, second.node_id)
                    response = await c.reset(node, station_id, 7)
                    assert response.status_code == 200, response.text
                assert len(new.calls_of("Reset")) == 2
                assert old.calls_of("Reset") == []
            # The new connection ends: nobody holds the station any more.
            await wait_for(
                lambda: _offline_everywhere(c, station_id), 10, "the station to read as offline"
            )


async def _any_registered_offline_station(c: Cluster) -> str:
    response = await c.client.get(f"{c.nodes[0].api_url}/stations")
    assert response.status_code == 200, response.text
    return next(s["id"] for s in response.json()["items"] if s["id"].endswith("-offline"))


async def _offline_everywhere(c: Cluster, station_id: str) -> bool:
    for node in c.live_nodes:
        if (await c.station_state(node, station_id))["connected"]:
            return False
    return True
