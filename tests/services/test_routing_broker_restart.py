"""The broker restarts under running nodes: the routers reconnect and commands reach the stations
again (presence is in a file-backed JetStream bucket / Redis with an append-only file, so it
survives the restart).

Runs its own `nats-server` / `redis-server` (store in a temporary directory, free loopback port),
since the shared brokers must not be restarted under other tests."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from pathlib import Path

import pytest

from csms.domain.errors import BrokerUnavailable, CommandTimeout, StationOffline
from tests.support.multinode_routing import FakeLink, broker_routers, wait_until

pytestmark = pytest.mark.timeout(90)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PrivateBroker:
    """A `nats-server` (JetStream) or `redis-server` (append-only file) on `port`, its store in
    `store`; killed and started again by the test."""

    def __init__(self, kind: str, port: int, store: Path) -> None:
        self.kind = kind
        self.port = port
        self.store = store
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        name = f"{self.kind}-server"
        binary = shutil.which(name)
        if binary is None:
            if os.environ.get("CI"):  # .ci/run installs it: missing in CI is a failure
                pytest.fail(f"{name} is not installed: cannot run a private broker to restart")
            pytest.skip(f"{name} is not installed: cannot run a private broker to restart")
        if self.kind == "nats":
            args = ["-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store)]
        else:
            args = [
                "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.store),
                "--save", "", "--appendonly", "yes", "--appendfsync", "always",
            ]  # fmt: skip
        self.process = await asyncio.create_subprocess_exec(
            binary,
            *args,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )

        async def listening() -> bool:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                return False
            writer.close()
            return True

        assert await wait_until(listening, 10), f"{name} did not start"

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            await self.process.wait()


@pytest.mark.parametrize(
    "kind",
    [pytest.param("nats", marks=pytest.mark.nats), pytest.param("redis", marks=pytest.mark.redis)],
)
async def test_routers_ride_out_a_broker_restart(kind: str, tmp_path: Path) -> None:
    port = _free_port()
    url = f"{kind}://127.0.0.1:{port}"
    server = PrivateBroker(kind, port, tmp_path)
    await server.start()
    try:
        async with broker_routers(kind, url, 2) as (a, b):
            a.register(FakeLink("CP-1"))
            await a.settle()
            assert (await b.call("CP-1", "Reset", {}, 2.0))["station"] == "CP-1"

            await server.kill()  # the broker dies...
            # A typed error the API maps (503 / 504 / 409), not a raw client error, not a hang.
            with pytest.raises((BrokerUnavailable, CommandTimeout, StationOffline)):
                await asyncio.wait_for(b.call("CP-1", "Reset", {}, 2.0), 10)
            # The presence look-up the API makes before every command fails the same typed way.
            with pytest.raises(BrokerUnavailable):
                await asyncio.wait_for(b.is_connected("CP-1"), 15)
            await server.start()  # ...and comes back with its store

            async def answered() -> bool:
                try:
                    answer = await b.call("CP-1", "Reset", {}, 1.0)
                except Exception:
                    return False
                return answer["station"] == "CP-1"

            assert await wait_until(answered, 20), "no command got through after the restart"
            assert await b.node_of("CP-1") == "n0"
            # A station connecting after the restart is claimed and reachable too.
            b.register(FakeLink("CP-2"))
            await b.settle()
            assert (await a.call("CP-2", "Reset", {}, 2.0))["station"] == "CP-2"
    finally:
        await server.stop()
