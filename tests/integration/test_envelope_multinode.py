"""Issue 18 across nodes: an operator envelope set through node A's REST API reaches a station
connected to node B (through the broker), and is recorded where both nodes read it."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from csms import app
from csms.settings import Settings
from tests.support.api_station import connected_station

PASSWORD = "multinode-password-1"


def _broker_url(env: str) -> str:
    url = os.environ.get(env)
    if not url:
        pytest.skip(f"{env} not set (broker tests skipped)")
    return url


def _settings(tmp_path: Path, broker_url: str, node: str) -> Settings:
    return Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}",
        ocpp_host="127.0.0.1",
        ocpp_port=0,
        api_host="127.0.0.1",
        api_port=0,
        broker_url=broker_url,
        node_id=f"{node}-{os.getpid()}-{tmp_path.name}",
        command_timeout_s=5.0,
    )


@pytest.mark.parametrize(
    "env",
    [
        pytest.param("CSMS_TEST_NATS_URL", marks=pytest.mark.nats),
        pytest.param("CSMS_TEST_REDIS_URL", marks=pytest.mark.redis),
    ],
)
async def test_envelope_set_on_one_node_reaches_a_station_on_another(
    tmp_path: Path, env: str
) -> None:
    broker_url = _broker_url(env)
    node_a = await app.start(_settings(tmp_path, broker_url, "a"))
    try:
        node_b = await app.start(_settings(tmp_path, broker_url, "b"))
        try:
            token = (await node_a.services.api_tokens.create("multinode")).plaintext
            await node_a.services.stations.create("CS-MULTI", password=PASSWORD)
            headers = {"Authorization": f"Bearer {token}"}
            async with (
                httpx.AsyncClient(base_url=node_a.api_url, headers=headers) as client,
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
        finally:
            await node_b.stop()
    finally:
        await node_a.stop()
