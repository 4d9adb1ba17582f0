"""The household meter across nodes (issue 18): a reading pushed to node A re-sends the
envelope profile of a station connected to node B (through the broker) with the new limit; the
bases applied are in the database, so neither node re-sends it again on its check round."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from tests.support.api_station import connected_station
from tests.support.two_nodes import BROKERS, PASSWORD, bearer_headers, two_nodes

HYSTERESIS_W = 300.0
# No check round of the nodes' own (the test calls check_all) and no wait between re-sends.
ROUNDS_RUN_BY_THE_TEST = {"site_meter_min_resend_s": 0, "site_meter_check_s": 0}


def limits(station: Any) -> list[float]:
    return [
        r.payload["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"][0]["limit"]
        for r in station.received
        if r.action == "SetChargingProfile"
        and r.payload["chargingProfile"]["chargingProfilePurpose"] == "ChargingStationMaxProfile"
    ]


@BROKERS
async def test_meter_reading_on_one_node_resends_to_a_station_on_another(
    tmp_path: Path, env: str
) -> None:
    async with two_nodes(tmp_path, env, **ROUNDS_RUN_BY_THE_TEST) as (node_a, node_b):
        headers = await bearer_headers(node_a)
        await node_a.services.stations.create("CS-M", password=PASSWORD)
        async with (
            httpx.AsyncClient(base_url=node_a.api_url, headers=headers, timeout=30) as a,
            httpx.AsyncClient(base_url=node_b.api_url, headers=headers, timeout=30) as b,
            connected_station(node_b.ocpp_url, "CS-M", PASSWORD) as station,
        ):
            site = {"id": "home-1", "name": "Home", "station_ids": ["CS-M"]}
            assert (await a.post("/api/v1/sites", json=site)).status_code == 201
            start = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
            answer = await a.put(
                "/api/v1/sites/home-1/envelopes/operator",
                json={"envelopes": [{"start": start, "import_limit_w": 8000}]},
            )
            assert answer.status_code == 200, answer.text
            assert limits(station) == [8000.0]

            # The house draws 2.5 kW (no transaction: the station counts 0 W).
            posted = await a.post(
                "/api/v1/sites/home-1/meter",
                json={"timestamp": datetime.now(UTC).isoformat(), "grid_import_w": 2500},
            )
            assert posted.status_code == 200, posted.text
            deadline = asyncio.get_running_loop().time() + 15
            while len(limits(station)) < 2:
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.05)
            assert limits(station)[-1] == 8000.0 - 2500.0 - HYSTERESIS_W

            # Node B reads the same reading and the same bases applied: nothing to send.
            seen = (await b.get("/api/v1/sites/home-1/meter")).json()
            assert seen["grid_import_w"] == 2500.0 and seen["rule"] == "metered"
            assert await node_b.services.site_meters.check_all() == []
            assert await node_a.services.site_meters.check_all() == []
            await asyncio.sleep(0.3)
            assert len(limits(station)) == 2
