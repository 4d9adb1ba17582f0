"""Two CSMS nodes in this process (csms.app.start), sharing a SQLite file and a broker (NATS
or Redis): the setup of the in-process multinode tests. A test takes `env` from
`@BROKERS` and opens `two_nodes(tmp_path, env)`; without the broker's URL it is skipped."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from csms import app
from csms.settings import Settings

PASSWORD = "multinode-password-1"

# The brokers a multinode test runs on, each named by the variable that holds its URL.
BROKERS = pytest.mark.parametrize(
    "env",
    [
        pytest.param("CSMS_TEST_NATS_URL", marks=pytest.mark.nats),
        pytest.param("CSMS_TEST_REDIS_URL", marks=pytest.mark.redis),
    ],
)


def broker_url_or_skip(env: str) -> str:
    url = os.environ.get(env)
    if not url:
        pytest.skip(f"{env} not set (broker tests skipped)")
    return url


def node_settings(tmp_path: Path, broker_url: str, node: str, **overrides: Any) -> Settings:
    """Settings of node `node` (loopback, ports chosen by the system, one database file per
    test); the node id is unique per test so that tests sharing a broker do not meet."""
    fields: dict[str, Any] = {
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}",
        "ocpp_host": "127.0.0.1",
        "ocpp_port": 0,
        "api_host": "127.0.0.1",
        "api_port": 0,
        "broker_url": broker_url,
        "node_id": f"{node}-{os.getpid()}-{tmp_path.name}",
        "command_timeout_s": 5.0,
    }
    return Settings(**(fields | overrides))


@contextlib.asynccontextmanager
async def two_nodes(
    tmp_path: Path, env: str, **overrides: Any
) -> AsyncIterator[tuple[app.RunningCsms, app.RunningCsms]]:
    """Nodes a and b, started in that order and stopped in the other (`overrides`: settings
    both get)."""
    broker_url = broker_url_or_skip(env)
    node_a = await app.start(node_settings(tmp_path, broker_url, "a", **overrides))
    try:
        node_b = await app.start(node_settings(tmp_path, broker_url, "b", **overrides))
        try:
            yield node_a, node_b
        finally:
            await node_b.stop()
    finally:
        await node_a.stop()


async def bearer_headers(node: app.RunningCsms) -> dict[str, str]:
    """An Authorization header with a new admin API token of the nodes' database."""
    token = (await node.services.api_tokens.create("multinode")).plaintext
    return {"Authorization": f"Bearer {token}"}
