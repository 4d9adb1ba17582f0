"""Two CSMS nodes started by the composition root (csms.app.start) share a database and a
broker: a command sent to node A's REST API reaches a station connected to node B."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support.api_station import connected_station
from tests.support.two_nodes import BROKERS, PASSWORD, bearer_headers, two_nodes


@BROKERS
async def test_command_crosses_nodes_through_the_broker(tmp_path: Path, env: str) -> None:
    async with two_nodes(tmp_path, env) as (node_a, node_b):
        headers = await bearer_headers(node_a)
        await node_a.services.stations.create("CS-MULTI", password=PASSWORD)
        async with (
            httpx.AsyncClient(base_url=node_a.api_url, headers=headers) as client,
            connected_station(node_b.ocpp_url, "CS-MULTI", PASSWORD) as station,
        ):
            shown = (await client.get("/api/v1/stations/CS-MULTI")).json()
            assert shown["connected"] is True
            assert shown["node"] == node_b.settings.node_id
            answer = await client.post(
                "/api/v1/stations/CS-MULTI/ocpp/DataTransfer",
                json={"vendorId": "org.example", "data": "hello"},
            )
            assert answer.status_code == 200, answer.text
            assert answer.json() == {"status": "Accepted", "data": "pong"}
            assert station.calls_of("DataTransfer")[-1].payload["data"] == "hello"
