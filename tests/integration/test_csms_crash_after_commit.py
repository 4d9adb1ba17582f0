"""A crash of the CSMS after a message's commit and before the station has its answer (issue 17):
the station never got the CALLRESULT, so it sends the same frame again (same messageId, same
seqNo) to the restarted CSMS, which must answer it correctly and store it exactly once.

`csms serve` runs as a real process on SQLite; the test watches the database from outside and
SIGKILLs the process the moment the message's rows are committed, then discards whatever the
socket still delivered (the answer may or may not have left the process: either way the station
treats it as lost, which is the case the retry must survive)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.support.api_station import basic_auth_header

PASSWORD = "crash-test-password1"
STATION = "CS-CRASH"
pytestmark = pytest.mark.timeout(180)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@asynccontextmanager
async def _serve(tmp_path: Path, env: dict[str, str], port: int) -> AsyncIterator[Any]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "csms",
        "serve",
        "--ocpp-host",
        "127.0.0.1",
        "--ocpp-port",
        str(port),
        "--api-host",
        "127.0.0.1",
        "--api-port",
        str(_free_port()),
        env={**env, "CSMS_OCPP_PATH": "ocpp"},
        cwd=tmp_path,
        stderr=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
    )
    try:
        assert process.stderr is not None
        while True:
            raw = await asyncio.wait_for(process.stderr.readline(), 60)
            assert raw, "csms serve exited early"
            if re.search(r"OCPP server listening on", raw.decode()):
                break
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def _connect(port: int) -> ClientConnection:
    return await connect(
        f"ws://127.0.0.1:{port}/ocpp/{STATION}",
        subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
        additional_headers={"Authorization": basic_auth_header(STATION, PASSWORD)},
    )


async def _call(ws: ClientConnection, message_id: str, action: str, payload: Any) -> Any:
    await ws.send(orjson.dumps([2, message_id, action, payload]).decode())
    async with asyncio.timeout(20):
        while True:
            frame = orjson.loads(await ws.recv())
            if frame[0] == 2:  # a CSMS-initiated call (none expected): refuse politely
                await ws.send(orjson.dumps([4, frame[1], "NotImplemented", "", {}]).decode())
                continue
            if frame[1] == message_id:
                return frame


BOOT = {"reason": "PowerUp", "chargingStation": {"model": "Crash", "vendorName": "Test"}}


def _rows(db: Path, sql: str, args: tuple[Any, ...]) -> list[Any]:
    with sqlite3.connect(db, timeout=5) as conn:
        return conn.execute(sql, args).fetchall()


async def _kill_when_committed(process: Any, db: Path, sql: str, args: tuple[Any, ...]) -> float:
    """SIGKILL the moment `sql` finds the rows (committed: visible to another connection)."""
    started = time.monotonic()
    while time.monotonic() - started < 20:
        if await asyncio.to_thread(_rows, db, sql, args):
            process.send_signal(signal.SIGKILL)
            await process.wait()
            return time.monotonic() - started
        await asyncio.sleep(0.001)
    raise AssertionError("the message was never committed")


@pytest.mark.parametrize("action", ["TransactionEvent", "MeterValues"])
async def test_crash_after_commit_before_answer_retry_stored_once(
    tmp_path: Path, action: str
) -> None:
    db = tmp_path / "crash.db"
    env = {**os.environ, "CSMS_DATABASE_URL": f"sqlite+aiosqlite:///{db}"}
    await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "csms", "station", "add", STATION, "--password", PASSWORD],
        env=env,
        check=True,
        capture_output=True,
        cwd=tmp_path,
        timeout=60,
    )
    port = _free_port()
    stamp = _now()
    samples = [
        {
            "value": 1234.5,
            "measurand": "Energy.Active.Import.Register",
            "unitOfMeasure": {"unit": "Wh"},
        },
        {"value": -3000.0, "measurand": "Power.Active.Import", "unitOfMeasure": {"unit": "W"}},
        {"value": 61.0, "measurand": "SoC", "unitOfMeasure": {"unit": "Percent"}},
    ]
    if action == "TransactionEvent":
        payload: dict[str, Any] = {
            "eventType": "Updated",
            "timestamp": stamp,
            "triggerReason": "MeterValuePeriodic",
            "seqNo": 1,
            "transactionInfo": {"transactionId": "TX-CRASH"},
            "evse": {"id": 1, "connectorId": 1},
            "meterValue": [{"timestamp": stamp, "sampledValue": samples}],
        }
        committed = (
            "SELECT 1 FROM transaction_events WHERE station_id=? AND transaction_id=? AND seq_no=1",
            (STATION, "TX-CRASH"),
        )
    else:
        payload = {"evseId": 1, "meterValue": [{"timestamp": stamp, "sampledValue": samples}]}
        committed = (
            "SELECT 1 FROM meter_values WHERE station_id=? AND sampled_values LIKE '%\"SoC\"%'",
            (STATION,),
        )

    async with _serve(tmp_path, env, port) as process:
        ws = await _connect(port)
        assert (await _call(ws, "b1", "BootNotification", BOOT))[0] == 3
        started = {
            "eventType": "Started",
            "timestamp": _now(),
            "triggerReason": "CablePluggedIn",
            "seqNo": 0,
            "transactionInfo": {"transactionId": "TX-CRASH"},
            "evse": {"id": 1, "connectorId": 1},
        }
        assert (await _call(ws, "t0", "TransactionEvent", started))[0] == 3
        frame = orjson.dumps([2, "m-crash", action, payload]).decode()
        await ws.send(frame)
        await _kill_when_committed(process, db, *committed)
        # Whatever the socket still delivers is treated as lost.
        await ws.close()

    async with _serve(tmp_path, env, port):
        ws = await _connect(port)
        try:
            assert (await _call(ws, "b2", "BootNotification", BOOT))[0] == 3
            await ws.send(frame)  # the same frame again: same messageId, same seqNo
            async with asyncio.timeout(20):
                while True:
                    answer = orjson.loads(await ws.recv())
                    if answer[1] == "m-crash":
                        break
        finally:
            await ws.close()
    assert answer[0] == 3, answer  # a CALLRESULT, not an error for the repeat
    stored = _rows(
        db,
        # one row per MeterValue (0017): its packed sampled values, one result row each
        "SELECT json_extract(s.value, '$[0]'), json_extract(s.value, '$[1]') "
        "FROM meter_values, json_each(meter_values.sampled_values) AS s "
        "WHERE station_id=? ORDER BY 1",
        (STATION,),
    )
    assert sorted(stored) == sorted((s["measurand"], s["value"]) for s in samples)
    if action == "TransactionEvent":
        events = _rows(
            db,
            "SELECT seq_no FROM transaction_events WHERE station_id=? AND transaction_id=?",
            (STATION, "TX-CRASH"),
        )
        assert sorted(e[0] for e in events) == [0, 1]
