"""Finding 5 (secrets in clear): a rotated password, or SetNetworkProfile VPN/APN secrets, never
appear in a message-log row, an API response other than the rotation's own answer, or a log
line (frame logging at DEBUG included); the SQLite file and its WAL are created 0600."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import stat
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from csms.domain.models import DeviceVariable
from csms.persistence import migrate
from csms.persistence import repositories as repo
from csms.persistence.database import create_private_sqlite_file
from csms.services.container import build_services
from tests.support.api_harness import STATION_PASSWORD, ApiHarness, api_harness, harness_settings
from tests.support.api_payloads import EXAMPLE_REQUESTS
from tests.support.api_station import ApiTestStation, connected_station

ROTATED = "rotated-secret-0123456789"
REFUSED = "refused-secret-0123456789"
VPN_SECRET = "vpn-secret-0123"


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[ApiHarness]:
    async with api_harness(
        tmp_path, with_ocpp=True, command_timeout_s=2.0, log_ocpp_frames=True
    ) as harness:
        await harness.add_station("CS1")
        yield harness


@pytest.fixture
async def station(api: ApiHarness) -> AsyncIterator[ApiTestStation]:
    assert api.ocpp_url is not None
    async with connected_station(api.ocpp_url, "CS1", STATION_PASSWORD) as cs:
        yield cs


async def _everything_readable(api: ApiHarness, tmp_path: Path) -> str:
    """Every message-log row (raw SQL) and every read API answer about the station."""
    with sqlite3.connect(tmp_path / "csms.db") as db:
        rows = db.execute("SELECT * FROM message_log").fetchall()
    assert rows, "the commands are logged"
    answers = [
        await api.client.get(path)
        for path in (
            "/api/v1/stations/CS1/messages?limit=500",
            "/api/v1/stations/CS1/events?limit=500",
            "/api/v1/stations/CS1",
            "/api/v1/stations/CS1/variables",
        )
    ]
    return json.dumps([repr(rows)] + [answer.text for answer in answers])


async def test_finding5_rotated_password_is_nowhere_in_log_or_api(
    api: ApiHarness, station: ApiTestStation, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    station.behaviour.rejected_variables.add(("SecurityCtrlr", "BasicAuthPassword"))
    refused = await api.client.post(
        "/api/v1/stations/CS1/password-rotation", json={"password": REFUSED}
    )
    assert refused.json()["applied"] is False and REFUSED not in refused.text
    station.behaviour.rejected_variables.clear()
    rotated = await api.client.post(
        "/api/v1/stations/CS1/password-rotation", json={"password": ROTATED}
    )
    assert rotated.json()["applied"] is True  # its own answer names it: the caller chose it
    readable = await _everything_readable(api, tmp_path)
    assert "SetVariables" in readable and "***" in readable
    assert REFUSED not in readable and ROTATED not in readable
    frames = [r.getMessage() for r in caplog.records if r.name == "csms.ocpp.frames"]
    assert any("BasicAuthPassword" in line for line in frames)  # frames were logged...
    # Every log line but the test station's own (the `ocpp` library logs what it receives).
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name != "ocpp")
    assert REFUSED not in logged and ROTATED not in logged  # ...without the secret


async def test_finding5_set_network_profile_secrets_not_logged(
    api: ApiHarness, station: ApiTestStation, tmp_path: Path
) -> None:
    connection_data = {
        "ocppVersion": "OCPP20",
        "ocppTransport": "JSON",
        "ocppCsmsUrl": "wss://csms.example/ocpp",
        "messageTimeout": 30,
        "securityProfile": 2,
        "ocppInterface": "Wired0",
        "vpn": {
            "server": "vpn.example",
            "user": "station",
            "password": VPN_SECRET,
            "key": VPN_SECRET + "k",
            "type": "IPSec",
        },
    }
    response = await api.client.post(
        "/api/v1/stations/CS1/security-profile",
        json={"security_profile": 2, "connection_data": connection_data},
    )
    assert response.status_code == 200, response.text
    assert (
        station.calls_of("SetNetworkProfile")[-1].payload["connectionData"]["vpn"]["password"]
        == VPN_SECRET
    )  # the station got it
    assert VPN_SECRET not in await _everything_readable(api, tmp_path)


async def test_finding5_rows_stored_before_the_fix_are_redacted_when_read(
    api: ApiHarness, tmp_path: Path
) -> None:
    with sqlite3.connect(tmp_path / "csms.db") as db:
        db.execute(
            "INSERT INTO message_log (station_id, direction, kind, message_id, action, payload,"
            " created_at) VALUES ('CS1', 'out', 'CALL', 'm1', 'SetVariables', ?,"
            " '2026-01-01 00:00:00.000000')",
            (
                json.dumps(
                    {
                        "setVariableData": [
                            {
                                "component": {"name": "SecurityCtrlr"},
                                "variable": {"name": "BasicAuthPassword"},
                                "attributeValue": ROTATED,
                            }
                        ]
                    }
                ),
            ),
        )
    answer = await api.client.get("/api/v1/stations/CS1/messages")
    assert answer.status_code == 200 and "BasicAuthPassword" in answer.text
    assert ROTATED not in answer.text


@pytest.fixture
def usual_umask() -> Iterator[None]:
    old = os.umask(0o022)  # the common default, under which SQLite creates files 0644
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.usefixtures("usual_umask")
async def test_finding5_database_wal_shm_and_key_file_created_0600(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    await migrate.upgrade_async(url)  # `csms db upgrade` / `csms serve`: Alembic opens it first
    settings = harness_settings(tmp_path, database_url=url)
    services = build_services(settings, sqlite_synchronous="NORMAL")
    await services.start()
    try:
        await services.stations.create("CS1", password=STATION_PASSWORD)
        files = [tmp_path / name for name in ("fresh.db", "fresh.db-wal", "fresh.db-shm")]
        files.append(tmp_path / "csms.password-key")
        assert all(file.exists() for file in files)
        assert {file.name: stat.S_IMODE(file.stat().st_mode) for file in files} == {
            file.name: 0o600 for file in files
        }
    finally:
        await services.close()


@pytest.mark.usefixtures("usual_umask")
def test_finding5_existing_readable_database_kept_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    existing = tmp_path / "old.db"
    existing.touch(mode=0o644)
    create_private_sqlite_file(f"sqlite+aiosqlite:///{existing}")
    assert stat.S_IMODE(existing.stat().st_mode) == 0o644  # the operator's choice stands
    (record,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "mode 0644" in record.getMessage() and str(existing) in record.getMessage()


async def test_finding5_reported_secret_variable_not_shown_by_the_api(api: ApiHarness) -> None:
    reported = [
        DeviceVariable("CS1", "SecurityCtrlr", "BasicAuthPassword", value=ROTATED),
        DeviceVariable("CS1", "SecurityCtrlr", "SecurityProfile", value="1"),
    ]
    now = datetime.now(UTC)
    await api.services.db.write(lambda c: repo.upsert_device_variables(c, reported, now))
    answer = await api.client.get("/api/v1/stations/CS1/variables")
    assert answer.status_code == 200 and "BasicAuthPassword" in answer.text
    assert ROTATED not in answer.text and '"1"' in answer.text


async def test_finding5_invalid_command_422_does_not_echo_the_secret(api: ApiHarness) -> None:
    """A SetNetworkProfile whose VPN password breaks the schema (too long) is a 422 naming the
    field; the refused value itself is never echoed back (jsonschema quotes it)."""
    secret = "vpn-secret-" + "s" * 40  # longer than the schema allows for vpn.password
    valid = EXAMPLE_REQUESTS["SetNetworkProfile"]
    vpn = {"server": "s", "user": "u", "password": secret, "key": "k", "type": "IKEv2"}
    payload = {**valid, "connectionData": {**valid["connectionData"], "vpn": vpn}}
    answer = await api.client.post("/api/v1/stations/CS1/ocpp/SetNetworkProfile", json=payload)
    assert answer.status_code == 422, answer.text
    assert "connectionData" in answer.text and "password" in answer.text
    assert secret not in answer.text
