"""Process-level multinode harness: a fresh PostgreSQL database, real `csms serve` node
processes sharing it and a broker, the TCP balancer in front of their OCPP ports, and stations
(the `ocpp` library's v201 ChargePoint) that reconnect through the balancer when dropped."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from websockets.asyncio.client import connect

from benchmarks.tcp_balancer import TcpBalancer
from csms import cli_admin as admin
from csms.settings import Settings
from tests.support.api_station import ApiTestStation, basic_auth_header

PASSWORD = "multinode-password-01"


def env_or_skip(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.skip(f"{name} is not set: this test needs that service")
    return value


def _plain_dsn(sqlalchemy_url: str) -> str:
    return sqlalchemy_url.replace("postgresql+asyncpg://", "postgresql://", 1)


@contextlib.asynccontextmanager
async def fresh_database(base_url: str) -> AsyncIterator[str]:
    """A new, empty PostgreSQL database beside `base_url`'s (dropped afterwards); its URL."""
    name = f"csms_mn_{uuid.uuid4().hex[:12]}"
    admin_conn = await asyncpg.connect(_plain_dsn(base_url))
    try:
        await admin_conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin_conn.close()
    head, _, _ = base_url.rpartition("/")
    try:
        yield f"{head}/{name}"
    finally:
        admin_conn = await asyncpg.connect(_plain_dsn(base_url))
        try:
            await admin_conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin_conn.close()


async def prepare_database(database_url: str, station_ids: list[str]) -> str:
    """Migrate, register the stations (Basic auth, PASSWORD); return a new API token."""
    settings = Settings(database_url=database_url, password_key_file=_shared_key_file(database_url))
    async with admin.opened(settings) as services:
        for station_id in station_ids:
            await services.stations.create(station_id, password=PASSWORD)
        created = await services.api_tokens.create("multinode")
    return created.plaintext


@dataclass
class NodeProcess:
    """One `csms serve` process (OCPP and API on free loopback ports)."""

    node_id: str
    process: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)
    api_port: int = 0
    ocpp_port: int = 0
    _reader: asyncio.Task[None] | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}/api/v1"

    @property
    def log(self) -> str:
        return "".join(self.lines)

    async def kill(self) -> None:
        """SIGKILL: no goodbye to the broker, the database or the stations."""
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        await self.process.wait()

    async def stop(self) -> int:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 20)
            except TimeoutError:
                await self.kill()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 5)
        return int(self.process.returncode or 0)


_OCPP_LINE = re.compile(r"OCPP server listening on wss?://[^ ]*?:(\d+)")
_API_LINE = re.compile(r"REST API on https?://[^ ]*?:(\d+)/api/v1")


def _shared_key_file(database_url: str) -> Path:
    name = database_url.rsplit("/", 1)[-1]
    return Path(tempfile.gettempdir()) / f"csms-multinode-{name}.password-key"


async def start_node(
    node_id: str,
    database_url: str,
    broker_url: str | None,
    python: str | None = None,
    cwd: str | None = None,
) -> NodeProcess:
    """`csms serve` run by `python` (default: this interpreter; another tree's venv to
    compare trees) in `cwd` (a tree's root there would shadow that venv's editable install)."""
    env = {
        **os.environ,
        "CSMS_DATABASE_URL": database_url,
        # Nodes of one deployment share the password-check key (see README, several nodes).
        "CSMS_PASSWORD_KEY_FILE": str(_shared_key_file(database_url)),
        "CSMS_NODE_ID": node_id,
        "CSMS_OCPP_HOST": "127.0.0.1",
        "CSMS_OCPP_PORT": "0",
        "CSMS_OCPP_PATH": "ocpp",
        "CSMS_API_HOST": "127.0.0.1",
        "CSMS_API_PORT": "0",
        "CSMS_COMMAND_TIMEOUT_S": "3",
        "CSMS_LOG_LEVEL": "INFO",
    }
    env.pop("CSMS_BROKER_URL", None)
    if broker_url:
        env["CSMS_BROKER_URL"] = broker_url
    process = await asyncio.create_subprocess_exec(
        python or sys.executable,
        "-m",
        "csms",
        "serve",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
    )
    node = NodeProcess(node_id, process)
    started = asyncio.get_running_loop().create_future()

    async def read_log() -> None:
        # Drains stderr for the process's whole life (a full pipe would block the node).
        assert process.stderr is not None
        while raw := await process.stderr.readline():
            line = raw.decode(errors="replace")
            node.lines.append(line)
            if match := _OCPP_LINE.search(line):
                node.ocpp_port = int(match.group(1))
            if (match := _API_LINE.search(line)) and not started.done():
                started.set_result(None)
                node.api_port = int(match.group(1))
        if not started.done():
            started.set_exception(AssertionError(f"{node_id} exited early:\n{node.log}"))

    node._reader = asyncio.create_task(read_log())
    try:
        await asyncio.wait_for(started, 60)
    except BaseException:
        await node.kill()
        raise
    assert node.ocpp_port, node.log
    return node


class RoamingStation:
    """A station that stays connected: through the balancer, booting on every connection,
    reconnecting 0.2 s after a drop. Answers every CSMS command (ApiTestStation)."""

    def __init__(self, url: str, station_id: str, password: str = PASSWORD) -> None:
        self.url = f"{url.rstrip('/')}/{station_id}"
        self.station_id = station_id
        self.password = password
        self.station: ApiTestStation | None = None
        self.connections = 0
        self.ready = asyncio.Event()
        self.dropped = asyncio.Event()
        self.commands_received: list[tuple[str, dict[str, Any]]] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"station-{self.station_id}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _run(self) -> None:
        headers = {"Authorization": basic_auth_header(self.station_id, self.password)}
        while True:
            try:
                async with connect(
                    self.url,
                    subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
                    additional_headers=headers,
                    open_timeout=5,
                ) as websocket:
                    station = ApiTestStation(self.station_id, websocket)
                    station._response_timeout = 3  # a dead node must not stall a call for long
                    runner = asyncio.create_task(station.start())
                    try:
                        if await station.boot() != "Accepted":
                            raise RuntimeError("boot not accepted")
                        self.station = station
                        self.connections += 1
                        self.dropped.clear()
                        self.ready.set()
                        with contextlib.suppress(Exception):
                            await runner
                    finally:
                        self.ready.clear()
                        self.dropped.set()
                        self.commands_received.extend(
                            (received.action, received.payload) for received in station.received
                        )
                        runner.cancel()
                        with contextlib.suppress(asyncio.CancelledError, Exception):
                            await runner
            except asyncio.CancelledError:
                raise
            except Exception:
                pass  # refused, closed, timed out: try again
            await asyncio.sleep(0.2)

    def all_commands(self) -> list[tuple[str, dict[str, Any]]]:
        current = self.station.received if self.station is not None and self.ready.is_set() else []
        return self.commands_received + [(r.action, r.payload) for r in current]

    async def deliver(
        self, make_call: Callable[[ApiTestStation], Awaitable[Any]], within_s: float = 30.0
    ) -> int:
        """Send one message until the CSMS answers it (retrying after drops, as a station's
        offline queue does); return how many attempts it took."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        attempts = 0
        while loop.time() < deadline:
            await asyncio.wait_for(self.ready.wait(), max(0.1, deadline - loop.time()))
            station = self.station
            assert station is not None
            attempts += 1
            try:
                await make_call(station)
                return attempts
            except Exception:
                await asyncio.sleep(0.1)
        raise AssertionError(f"{self.station_id}: message not answered within {within_s} s")


@contextlib.asynccontextmanager
async def balancer_for(nodes: list[NodeProcess]) -> AsyncIterator[TcpBalancer]:
    balancer = TcpBalancer([("127.0.0.1", node.ocpp_port) for node in nodes])
    await balancer.start()
    try:
        yield balancer
    finally:
        await balancer.close()


def api_client(token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30)


async def wait_for(predicate: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await predicate():
        if loop.time() >= deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.1)


HAPROXY_CONFIG = """\
global
    maxconn 4000
defaults
    mode tcp
    timeout connect 2s
    timeout client 1h
    timeout server 1h
frontend ocpp
    bind 127.0.0.1:{port}
    default_backend csms
backend csms
    balance roundrobin
    option redispatch
    retries 3
    default-server check inter 500ms fall 1 rise 1 on-marked-down shutdown-sessions
{servers}
"""


class HaproxyBalancer:
    """HAProxy in TCP mode in front of the nodes (the production choice), when installed."""

    def __init__(self, backends: list[tuple[str, int]], config_dir: str) -> None:
        self.backends = backends
        self.config_path = os.path.join(config_dir, "haproxy.cfg")
        self.port = 0
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        import shutil
        import socket

        binary = shutil.which("haproxy")
        if binary is None:
            if os.environ.get("CI"):  # .ci/run installs it: missing in CI is a failure
                pytest.fail("haproxy is not installed (apt-get install haproxy)")
            pytest.skip("haproxy is not installed (apt-get install haproxy)")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        servers = "\n".join(
            f"    server n{i} {host}:{port}" for i, (host, port) in enumerate(self.backends)
        )
        config = HAPROXY_CONFIG.format(port=self.port, servers=servers)
        await asyncio.to_thread(Path(self.config_path).write_text, config)
        self._process = await asyncio.create_subprocess_exec(
            binary,
            "-db",
            "-f",
            self.config_path,
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

        await wait_for(listening, 10, "haproxy to listen")

    async def close(self) -> None:
        if self._process is not None and self._process.returncode is None:
            self._process.terminate()
            try:
                await asyncio.wait_for(self._process.wait(), 10)
            except TimeoutError:
                self._process.kill()
                await self._process.wait()
