"""Issue 18 across nodes: an operator envelope set through node A's REST API reaches a station
connected to node B (through the broker), and is recorded where both nodes read it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx

from tests.support.api_station import connected_station
from tests.support.two_nodes import BROKERS, PASSWORD, bearer_headers, two_nodes


@BROKERS
async def test_envelope_set_on_one_node_reaches_a_station_on_another(
    tmp_path: Path, env: str
) -> None:
    async with two_nodes(tmp_path, env) as (node_a, node_b):
        headers = await bearer_headers(node_a)
        await node_a.services.stations.create("CS-MULTI", password=PASSWORD)
        async with (
            # Routing is asserted here, not latency: a loaded box took over httpx's 5 s.
            httpx.AsyncClient(base_url=node_a.api_url, headers=headers, timeout=30) as client,
            connected_station(node_b.ocpp_url, "CS-MULTI", PASSWORD) as station,
        ):
            site = {"id": "home-1", "name": "Home", "station_ids": ["CS-MULTI"]}
            assert (await client.post("/api/v1/sites", json=site)).status_code == 201
            start = datetime.now(UTC).isoformat()
            answer = await client.put(
                "/api/v1/sites/home-1/envelopes/operator",
                json={"envelopes": [{"start": start, "export_limit_w": 1200}]},
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["stations"][0]["status"] == "Accepted"
            sent = (await station.wait_for_call("SetChargingProfile")).payload
            period = sent["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"]
            assert period[0]["customData"]["dischargeLimitW"] == 1200.0
            # Node B holds the station; it reads the same record: nothing left to send.
            assert await node_b.services.envelopes.refresh_due() == []
            assert await node_a.services.envelopes.refresh_due() == []  # not its station
