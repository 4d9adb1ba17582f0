"""Observability of a running CSMS (`csms.app.start`, real sockets on loopback): /metrics,
/health and /ready, and the OCPP message log of station-initiated messages."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from csms.app import RunningCsms, start
from csms.persistence import migrate
from csms.services.health import HealthService
from tests.support.csms_harness import BOOT, basic_auth
from tests.support.e2e_stack import stack_settings

PASSWORD = "observability-pass-01"


@pytest.fixture
async def csms(tmp_path: Path) -> AsyncIterator[RunningCsms]:
    running = await start(
        stack_settings(tmp_path, metrics_v2g_refresh_s=0.2, message_log_incoming=True)
    )
    try:
        for station_id in ("OBS1", "OBS2"):
            await running.services.stations.create(station_id, password=PASSWORD)
        yield running
    finally:
        await running.stop()


async def _connect(
    csms: RunningCsms, station_id: str, subprotocol: str = "ocpp2.0.1"
) -> ClientConnection:
    return await websockets.connect(
        f"{csms.ocpp_url}/{station_id}",
        subprotocols=[subprotocol],  # type: ignore[list-item]
        additional_headers=basic_auth(station_id, PASSWORD),
        open_timeout=5,
    )


async def _call(ws: ClientConnection, action: str, payload: dict[str, Any]) -> list[Any]:
    await ws.send(orjson.dumps([2, str(uuid.uuid4()), action, payload]).decode())
    async with asyncio.timeout(5):
        reply: list[Any] = orjson.loads(await ws.recv())
    return reply


async def _scrape(csms: RunningCsms) -> str:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{csms.api_url}/metrics")
    assert response.status_code == 200
    return response.text


def _value(text: str, series: str) -> float:
    """The sample `series` (name and labels exactly as exposed) in a scrape."""
    match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.MULTILINE)
    assert match, f"{series} not in:\n{text}"
    return float(match.group(1))


async def _api(csms: RunningCsms) -> httpx.AsyncClient:
    token = (await csms.services.api_tokens.create(f"t{uuid.uuid4().hex[:6]}")).plaintext
    return httpx.AsyncClient(
        base_url=f"{csms.api_url}/api/v1", headers={"Authorization": f"Bearer {token}"}
    )


async def test_metrics_count_ocpp_messages_by_action_direction_and_result(
    csms: RunningCsms,
) -> None:
    ws = await _connect(csms, "OBS1")
    try:
        assert (await _call(ws, "BootNotification", BOOT))[2]["status"] == "Accepted"
        for _ in range(3):
            assert (await _call(ws, "Heartbeat", {}))[0] == 3
        # An action no OCPP version has: answered NotImplemented, counted as "unknown".
        assert (await _call(ws, "NoSuchAction-OBS1", {}))[2] == "NotImplemented"
        # A schema violation (an extra property): the OCPP-J error code is the result.
        assert (await _call(ws, "Heartbeat", {"x": 1}))[0] == 4
        text = await _scrape(csms)
    finally:
        await ws.close()
    prefix = "csms_ocpp_messages_total"
    assert _value(text, f'{prefix}{{action="BootNotification",direction="in",result="ok"}}') == 1
    assert _value(text, f'{prefix}{{action="Heartbeat",direction="in",result="ok"}}') == 3
    assert _value(text, f'{prefix}{{action="unknown",direction="in",result="NotImplemented"}}') == 1
    assert (
        _value(text, f'{prefix}{{action="Heartbeat",direction="in",result="FormatViolation"}}') == 1
    )
    assert "_created" not in text  # one series per counter, not two
    assert _value(text, 'csms_ocpp_handling_seconds_count{action="Heartbeat"}') == 4
    assert _value(text, 'csms_ocpp_handling_seconds_bucket{action="Heartbeat",le="5.0"}') == 4
    # Every stored boot/heartbeat went through the group-commit writer.
    assert _value(text, "csms_db_commit_seconds_count") >= 1
    assert _value(text, "csms_db_committed_writes_total") >= 1
    # Process metrics from prometheus-client's collectors.
    assert _value(text, "process_resident_memory_bytes") > 1e6
    assert "process_cpu_seconds_total" in text and "python_info" in text
    # Bounded cardinality: no station id (nor the station's own action name) in any series.
    assert "OBS1" not in text and "NoSuchAction" not in text


async def test_metrics_connected_stations_by_ocpp_version(csms: RunningCsms) -> None:
    text = await _scrape(csms)
    assert _value(text, 'csms_connected_stations{ocpp_version="2.0.1"}') == 0
    assert _value(text, 'csms_connected_stations{ocpp_version="2.1"}') == 0
    first, second = await _connect(csms, "OBS1"), await _connect(csms, "OBS2", "ocpp2.1")
    try:
        await _call(first, "BootNotification", BOOT)
        await _call(second, "BootNotification", BOOT)
        text = await _scrape(csms)
        assert _value(text, 'csms_connected_stations{ocpp_version="2.0.1"}') == 1
        assert _value(text, 'csms_connected_stations{ocpp_version="2.1"}') == 1
    finally:
        await first.close()
        await second.close()


async def test_metrics_csms_commands_and_api_command_latency(csms: RunningCsms) -> None:
    ws = await _connect(csms, "OBS1")
    api = await _api(csms)
    try:
        await _call(ws, "BootNotification", BOOT)

        async def answer_reset() -> None:
            frame = orjson.loads(await ws.recv())
            assert frame[2] == "Reset"
            await ws.send(orjson.dumps([3, frame[1], {"status": "Accepted"}]).decode())

        answering = asyncio.create_task(answer_reset())
        response = await api.post("/stations/OBS1/commands/reset", json={"type": "Immediate"})
        assert response.status_code == 200, response.text
        await answering
        # A station that is not connected: the command fails before it is sent.
        offline = await api.post("/stations/OBS2/commands/reset", json={"type": "Immediate"})
        assert offline.status_code == 409, offline.text
        text = await _scrape(csms)
    finally:
        await api.aclose()
        await ws.close()
    assert _value(text, 'csms_ocpp_messages_total{action="Reset",direction="out",result="ok"}') == 1
    assert _value(text, 'csms_api_command_seconds_count{action="Reset",outcome="ok"}') == 1
    assert (
        _value(text, 'csms_api_command_seconds_count{action="Reset",outcome="StationOffline"}') == 1
    )
    assert _value(text, 'csms_api_commands_total{action="Reset",outcome="ok"}') == 1


async def test_metrics_v2g_fleet_gauges_follow_meter_values(csms: RunningCsms) -> None:
    ws = await _connect(csms, "OBS1")
    api = await _api(csms)
    try:
        await _call(ws, "BootNotification", BOOT)
        vehicle = {
            "id": "leaf-obs",
            "capacity_kwh": 40,
            "max_charge_kw": 7,
            "max_discharge_kw": 5,
            "station_id": "OBS1",
            "evse_id": 1,
        }
        assert (await api.post("/vehicles", json=vehicle)).status_code == 201
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")

        def sampled(measurand: str, value: float, unit: str) -> dict[str, Any]:
            return {"measurand": measurand, "value": value, "unitOfMeasure": {"unit": unit}}

        started = {
            "eventType": "Started",
            "timestamp": now,
            "triggerReason": "CablePluggedIn",
            "seqNo": 0,
            "transactionInfo": {"transactionId": "tx-obs-1"},
            "evse": {"id": 1, "connectorId": 1},
            "meterValue": [
                {
                    "timestamp": now,
                    "sampledValue": [
                        sampled("Power.Active.Export", 4200.0, "W"),
                        sampled("Energy.Active.Import.Register", 12_500.0, "Wh"),
                        sampled("Energy.Active.Export.Register", 3_000.0, "Wh"),
                    ],
                }
            ],
        }
        assert (await _call(ws, "TransactionEvent", started))[0] == 3
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            text = await _scrape(csms)
            if 'csms_v2g_vehicles{state="plugged_in"} 1.0' in text:
                break
            assert asyncio.get_running_loop().time() < deadline, text
            await asyncio.sleep(0.1)
    finally:
        await api.aclose()
        await ws.close()
    assert _value(text, 'csms_v2g_vehicles{state="registered"}') == 1
    assert _value(text, 'csms_v2g_power_kw{direction="discharge"}') == pytest.approx(4.2)
    assert _value(text, 'csms_v2g_power_kw{direction="charge"}') == 0
    assert _value(text, 'csms_v2g_energy_kwh{direction="import"}') == pytest.approx(12.5)
    assert _value(text, 'csms_v2g_energy_kwh{direction="export"}') == pytest.approx(3.0)
    assert "leaf-obs" not in text  # no per-vehicle series


async def test_health_is_unauthenticated_and_ready_names_each_check(csms: RunningCsms) -> None:
    async with httpx.AsyncClient(base_url=csms.api_url) as anonymous:
        health = await anonymous.get("/health")
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        ready = await anonymous.get("/ready")
        assert ready.status_code == 200, ready.text
        checks = ready.json()["checks"]
        assert set(checks) == {"database", "migrations", "ocpp_listener", "router"}
        assert all(check["ok"] for check in checks.values()), checks
        assert checks["migrations"]["detail"].startswith("at head ")
        # The OCPP listener closes: not ready, and the answer says which check failed.
        await csms.ocpp_server.close()
        ready = await anonymous.get("/ready")
        assert ready.status_code == 503
        body = ready.json()
        assert body["status"] == "not ready"
        assert body["checks"]["ocpp_listener"] == {"ok": False, "detail": "not listening"}
        assert body["checks"]["database"]["ok"] is True


async def test_readiness_reports_a_database_behind_the_migrations(tmp_path: Path) -> None:
    from csms.persistence.database import Database

    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    heads = migrate.head_revisions(url)
    await migrate.upgrade_async(url, "0005")
    db = Database(url)
    try:
        checks = await HealthService(db, cache_s=0).readiness({})
        assert checks["database"].ok
        assert not checks["migrations"].ok
        assert "at 0005, head is" in checks["migrations"].detail
        assert "csms db upgrade" in checks["migrations"].detail
        await migrate.upgrade_async(url, "head")
        checks = await HealthService(db, cache_s=0).readiness({})
        assert checks["migrations"].ok and checks["migrations"].detail == f"at head {heads[0]}"
    finally:
        await db.close()


async def test_readiness_reports_an_unreachable_database(tmp_path: Path) -> None:
    from csms.persistence.database import Database

    # Nothing listens on port 9 of loopback: the connection is refused at once.
    db = Database("postgresql+asyncpg://csms@127.0.0.1:9/none")
    try:
        checks = await HealthService(db, timeout_s=2.0).readiness({})
    finally:
        await db.close()
    assert not checks["database"].ok and not checks["migrations"].ok
    assert "csms@" not in checks["database"].detail  # no URL in a public answer


def test_csms_serve_log_format_json_writes_only_json_lines(tmp_path: Path) -> None:
    import json
    import os
    import signal
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "csms",
            "serve",
            "--log-format",
            "json",
            "--log-level",
            "INFO",
            "--api-host",
            "127.0.0.1",
            "--api-port",
            "0",
            "--ocpp-host",
            "127.0.0.1",
            "--ocpp-port",
            "0",
            "--database-url",
            f"sqlite+aiosqlite:///{tmp_path / 'csms.db'}",
            "--password-key-file",
            str(tmp_path / "key"),
        ],
        cwd=root,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    try:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line)
            if "REST API on" in line:
                break
        process.send_signal(signal.SIGINT)
        _, rest = process.communicate(timeout=30)
        lines += rest.splitlines()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, "".join(lines)
    records = [json.loads(line) for line in lines if line.strip()]  # every line is JSON
    messages = [r["message"] for r in records]
    assert any(m.startswith("REST API on http://127.0.0.1:") for m in messages), messages
    assert "stopped" in messages
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)


async def _messages(csms: RunningCsms, station_id: str) -> list[dict[str, Any]]:
    await csms.services.message_log.flush()  # what the background writer would do within 0.25 s
    api = await _api(csms)
    try:
        response = await api.get(f"/stations/{station_id}/messages", params={"limit": 100})
    finally:
        await api.aclose()
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


CERTIFICATE = "-----BEGIN CERTIFICATE-----\n" + "A" * 64 + "\n-----END CERTIFICATE-----"


async def test_message_log_holds_station_messages_with_tokens_and_certificates_hidden(
    csms: RunningCsms,
) -> None:
    assert csms.settings.message_log_incoming
    ws = await _connect(csms, "OBS1")
    try:
        await _call(ws, "BootNotification", BOOT)
        await _call(ws, "Heartbeat", {})
        authorize = {
            "idToken": {"idToken": "04A1B2C3D4E5F6", "type": "ISO14443"},
            "certificate": CERTIFICATE,
        }
        await _call(ws, "Authorize", authorize)
        await _call(ws, "SignCertificate", {"csr": "-----BEGIN CERTIFICATE REQUEST-----xyz"})
        secret = {"vendorId": "acme", "data": {"password": "hunter2-hunter2"}}
        await _call(ws, "DataTransfer", secret)
    finally:
        await ws.close()
    entries = await _messages(csms, "OBS1")
    seen = [(e["direction"], e["kind"], e["action"]) for e in reversed(entries)]
    for action in ("BootNotification", "Heartbeat", "Authorize", "SignCertificate"):
        assert ("in", "CALL", action) in seen, seen
        assert ("out", "CALLRESULT", action) in seen, seen
    text = orjson.dumps(entries).decode()
    assert "04A1B2C3D4E5F6" not in text, [e for e in entries if "04A1B2C3D4E5F6" in str(e)]
    assert "***E5F6" in text, [e for e in entries if e["action"] == "Authorize"]
    assert "BEGIN CERTIFICATE" not in text and "hunter2" not in text
    calls = {e["action"]: e["payload"] for e in entries if e["kind"] == "CALL"}
    assert calls["Authorize"]["certificate"] == f"*** ({len(CERTIFICATE)} characters)"
    assert calls["Heartbeat"] == {}
    # Not stored either (only a hidden form reaches the database).
    stored = await csms.services.message_log.list("OBS1", 0, 100)
    assert "04A1B2C3D4E5F6" not in repr(stored)


async def test_message_log_of_station_messages_is_off_by_default(tmp_path: Path) -> None:
    running = await start(stack_settings(tmp_path))
    assert running.settings.message_log_incoming is False
    try:
        await running.services.stations.create("OBS1", password=PASSWORD)
        ws = await _connect(running, "OBS1")
        try:
            await _call(ws, "BootNotification", BOOT)
            await _call(ws, "Heartbeat", {})
        finally:
            await ws.close()
        assert await _messages(running, "OBS1") == []
    finally:
        await running.stop()


async def test_message_log_keeps_at_most_max_rows_per_station(tmp_path: Path) -> None:
    running = await start(
        stack_settings(tmp_path, message_log_max_rows_per_station=10, message_log_incoming=True)
    )
    try:
        for station_id in ("OBS1", "OBS2"):
            await running.services.stations.create(station_id, password=PASSWORD)
        ws1, ws2 = await _connect(running, "OBS1"), await _connect(running, "OBS2")
        try:
            await _call(ws1, "BootNotification", BOOT)
            await _call(ws2, "BootNotification", BOOT)
            for _ in range(20):
                await _call(ws1, "Heartbeat", {})
        finally:
            await ws1.close()
            await ws2.close()
        await running.services.message_log.flush()
        removed = await running.services.message_log.prune_expired()
        assert removed == 2 + 40 - 10  # OBS1: boot + 20 heartbeats, two entries each
        kept = await _messages(running, "OBS1")
        assert len(kept) == 10
        assert {e["action"] for e in kept} == {"Heartbeat"}  # the newest are kept
        assert len(await _messages(running, "OBS2")) == 2  # under the limit: untouched
    finally:
        await running.stop()
