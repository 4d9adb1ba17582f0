"""`csms serve` as a real process on free loopback ports: it answers the REST API, accepts an
OCPP connection, and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from tests.support.api_station import connected_station

PASSWORD = "serve-test-password1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _wait_for_log(process: asyncio.subprocess.Process, pattern: str, lines: list[str]) -> str:
    assert process.stderr is not None
    while True:
        raw = await asyncio.wait_for(process.stderr.readline(), 30)
        if not raw:
            raise AssertionError("csms serve exited early:\n" + "".join(lines))
        line = raw.decode()
        lines.append(line)
        if re.search(pattern, line):
            return line


async def test_serve_answers_api_and_ocpp_and_stops_on_sigterm(tmp_path: Path) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}"
    env = {**os.environ, "CSMS_DATABASE_URL": database_url}
    # Register a station and a token the way an operator would, before starting.
    await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "csms", "station", "add", "CS-SERVE", "--password", PASSWORD],
        env=env,
        check=True,
        capture_output=True,
        cwd=tmp_path,
        timeout=60,
    )
    created = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "csms", "token", "create", "serve-test"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    token = created.stdout.strip().splitlines()[-1]

    ocpp_port, api_port = _free_port(), _free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "csms",
        "serve",
        "--ocpp-host",
        "127.0.0.1",
        "--ocpp-port",
        str(ocpp_port),
        "--api-host",
        "127.0.0.1",
        "--api-port",
        str(api_port),
        env={**env, "CSMS_OCPP_PATH": "ocpp"},
        cwd=tmp_path,
        stderr=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
    )
    lines: list[str] = []
    try:
        await _wait_for_log(process, r"OCPP server listening on", lines)
        api_line = await _wait_for_log(process, r"REST API on", lines)
        assert f"http://127.0.0.1:{api_port}/api/v1" in api_line
        assert f"ws://127.0.0.1:{ocpp_port}/ocpp" in "".join(lines)

        headers = {"Authorization": f"Bearer {token}"}
        base = f"http://127.0.0.1:{api_port}"
        async with httpx.AsyncClient(base_url=base, headers=headers) as client:
            listing = await client.get("/api/v1/stations")
            assert listing.status_code == 200
            assert [s["id"] for s in listing.json()["items"]] == ["CS-SERVE"]
            assert (
                await client.get("/api/v1/stations", headers={"Authorization": ""})
            ).status_code == 401

            url = f"ws://127.0.0.1:{ocpp_port}/ocpp"
            async with connected_station(url, "CS-SERVE", PASSWORD) as station:
                shown = (await client.get("/api/v1/stations/CS-SERVE")).json()
                assert shown["connected"] is True
                assert shown["registration_status"] == "Accepted"
                answer = await client.post(
                    "/api/v1/stations/CS-SERVE/ocpp/GetLocalListVersion", json={}
                )
                assert answer.json() == {"versionNumber": 3}
                assert station.calls_of("GetLocalListVersion")
                metrics = (await client.get("/metrics")).text
                assert 'csms_connected_stations{ocpp_version="2.0.1"} 1.0' in metrics
                assert (
                    'csms_api_commands_total{action="GetLocalListVersion",outcome="ok"} 1.0'
                    in metrics
                )

        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0
        rest = await process.stderr.read() if process.stderr else b""
        assert "Traceback" not in "".join(lines) + rest.decode()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_serve_refuses_a_busy_port(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "csms",
                "serve",
                "--api-host",
                "127.0.0.1",
                "--api-port",
                str(port),
                "--ocpp-host",
                "127.0.0.1",
                "--ocpp-port",
                "0",
                "--database-url",
                f"sqlite+aiosqlite:///{tmp_path / 'x.db'}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=tmp_path,
        )
    assert result.returncode != 0
    assert f"cannot listen on the REST API port 127.0.0.1:{port}: already in use" in result.stderr
    assert "--api-port / CSMS_API_PORT" in result.stderr
