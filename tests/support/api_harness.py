"""The CSMS services on a fresh SQLite file, the REST app over httpx's ASGI transport, an API
token, and (optionally) the real OCPP server on a free loopback port."""

from __future__ import annotations

import atexit
import contextlib
import shutil
import sqlite3
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from csms.api.app import create_api
from csms.persistence import migrate
from csms.services.container import Services, build_services
from csms.settings import Settings

STATION_PASSWORD = "station-password-0001"


@dataclass
class ApiHarness:
    settings: Settings
    services: Services
    app: FastAPI
    client: httpx.AsyncClient  # authenticated
    anonymous: httpx.AsyncClient  # no Authorization header
    token: str
    ocpp_url: str | None = None

    async def add_station(self, station_id: str, **fields: Any) -> dict[str, Any]:
        body = {"id": station_id, "password": STATION_PASSWORD, **fields}
        response = await self.client.post("/api/v1/stations", json=body)
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result


_template_db: Path | None = None


async def _copy_of_migrated_database(target: Path) -> None:
    """Migrate one template database per test process and hand each test a copy: Alembic
    runs once instead of per test (the migrations have their own tests)."""
    global _template_db
    if _template_db is None:
        directory = Path(tempfile.mkdtemp(prefix="csms-api-template-"))
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
        template = directory / "template.db"
        await migrate.upgrade_async(f"sqlite+aiosqlite:///{template}")
        _template_db = template
    # The backup API copies a consistent database, WAL content included.
    with (
        contextlib.closing(sqlite3.connect(_template_db)) as source,
        contextlib.closing(sqlite3.connect(target)) as copy,
    ):
        source.backup(copy)


def harness_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'csms.db'}",
        "ocpp_host": "127.0.0.1",
        "ocpp_port": 0,
        "api_host": "127.0.0.1",
        "api_port": 0,
        "command_timeout_s": 2.0,
        "password_key_file": tmp_path / "csms.password-key",  # not the working directory
    }
    values.update(overrides)
    return Settings(**values)


@contextlib.asynccontextmanager
async def api_harness(
    tmp_path: Path, *, with_ocpp: bool = False, **setting_overrides: Any
) -> AsyncIterator[ApiHarness]:
    settings = harness_settings(tmp_path, **setting_overrides)
    # NORMAL: tests need no power-loss durability, and it keeps them fast.
    sqlite = settings.database_url.startswith("sqlite")
    if sqlite:
        await _copy_of_migrated_database(tmp_path / "csms.db")
    services = build_services(settings, sqlite_synchronous="NORMAL")
    await services.start(migrate=not sqlite)
    ocpp_server: Any = None
    try:
        ocpp_url = None
        if with_ocpp:
            from csms.ocpp_server.server import start_ocpp_server

            ocpp_server = await start_ocpp_server(settings, services)
            path = f"/{settings.ocpp_path}" if settings.ocpp_path else ""
            ocpp_url = f"ws://127.0.0.1:{ocpp_server.port}{path}"
        created = await services.api_tokens.create("tests")
        app = create_api(services)
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {created.plaintext}"}
        async with (
            httpx.AsyncClient(
                transport=transport, base_url="http://api", headers=headers
            ) as client,
            httpx.AsyncClient(transport=transport, base_url="http://api") as anonymous,
        ):
            yield ApiHarness(
                settings, services, app, client, anonymous, created.plaintext, ocpp_url
            )
    finally:
        if ocpp_server is not None:
            await ocpp_server.close()
        await services.close()
