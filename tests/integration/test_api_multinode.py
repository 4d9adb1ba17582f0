"""Two CSMS nodes started by the composition root (csms.app.start) share a database and a
broker: a command sent to node A's REST API reaches a station connected to node B."""

from __future__ import annotations

import os
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
async def test_command_crosses_nodes_through_the_broker(tmp_path: Path, env: str) -> None:
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
        finally:
            await node_b.stop()
    finally:
        await node_a.stop()
