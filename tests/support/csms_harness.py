"""CSMS test harness: services on a fresh SQLite file, the real OCPP server on a free loopback
port, and stations built on the `ocpp` library's v201 ChargePoint (or raw websockets)."""

from __future__ import annotations

import asyncio
import atexit
import base64
import contextlib
import os
import shutil
import ssl
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import websockets
from argon2 import PasswordHasher
from ocpp.routing import on
from ocpp.v201 import ChargePoint, call_result
from websockets.asyncio.client import ClientConnection

from csms.domain.models import BootPolicy, SecurityProfile
from csms.ocpp_server.server import OcppServer, start_ocpp_server
from csms.persistence.migrate import upgrade_async
from csms.services.container import Services, build_services
from csms.settings import Settings
from v2g_shared.ocpp_versions import OcppVersion

PASSWORD = "station-secret-0001"


def csms_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'csms.db'}",
        "ocpp_host": "127.0.0.1",
        "ocpp_port": 0,
        "command_timeout_s": 2.0,
        "heartbeat_interval_s": 300,
        "boot_retry_interval_s": 30,
        "password_key_file": tmp_path / "csms.password-key",  # not the working directory
    }
    values.update(overrides)
    return Settings(**values)


@dataclass
class Csms:
    settings: Settings
    services: Services
    server: OcppServer

    @property
    def url(self) -> str:
        scheme = "wss" if self.settings.tls_enabled else "ws"
        path = f"/{self.settings.ocpp_path}" if self.settings.ocpp_path else ""
        return f"{scheme}://127.0.0.1:{self.server.port}{path}"

    async def add_station(
        self,
        station_id: str,
        *,
        password: str | None = PASSWORD,
        security_profile: SecurityProfile = SecurityProfile.BASIC_AUTH,
        boot_policy: BootPolicy = BootPolicy.ACCEPTED,
        ocpp_versions: Sequence[OcppVersion] | None = None,
    ) -> None:
        await self.services.stations.create(
            station_id,
            password=password,
            security_profile=security_profile,
            boot_policy=boot_policy,
            ocpp_versions=ocpp_versions,
        )

    async def restart_server(self) -> None:
        """Stop the OCPP endpoint (connections drop) and start it again on the same port."""
        port = self.server.port
        await self.server.close()
        self.settings = self.settings.model_copy(update={"ocpp_port": port})
        self.server = await start_ocpp_server(self.settings, self.services)


# Cheap argon2 parameters: tests check behaviour, not password-cracking cost.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
_TEMPLATE_DB: Path | None = None


async def _migrated_copy(target: Path) -> None:
    """A freshly migrated SQLite file (migrations run once per test process, then copied)."""
    global _TEMPLATE_DB
    if _TEMPLATE_DB is None:
        template = Path(tempfile.mkdtemp(prefix="csms-template-")) / "template.db"
        atexit.register(shutil.rmtree, template.parent, True)  # leave no temp dirs behind
        await upgrade_async(f"sqlite+aiosqlite:///{template}")
        _TEMPLATE_DB = template
    shutil.copyfile(_TEMPLATE_DB, target)
    os.chmod(target, 0o600)  # as the CSMS itself creates it (else it warns: world-readable)


@contextlib.asynccontextmanager
async def running_services(tmp_path: Path, **overrides: Any) -> AsyncIterator[Services]:
    """Services only (no OCPP endpoint), on a migrated SQLite file in tmp_path."""
    settings = csms_settings(tmp_path, **overrides)
    await _migrated_copy(tmp_path / "csms.db")
    services = build_services(settings, sqlite_synchronous="NORMAL", password_hasher=FAST_HASHER)
    await services.start()
    try:
        yield services
    finally:
        await services.close()


@contextlib.asynccontextmanager
async def running_csms(tmp_path: Path, **overrides: Any) -> AsyncIterator[Csms]:
    settings = csms_settings(tmp_path, **overrides)
    if not overrides.get("database_url"):
        await _migrated_copy(tmp_path / "csms.db")
    services = build_services(settings, sqlite_synchronous="NORMAL", password_hasher=FAST_HASHER)
    await services.start(migrate=bool(overrides.get("database_url")))
    server = await start_ocpp_server(settings, services)
    csms = Csms(settings, services, server)
    try:
        yield csms
    finally:
        await csms.server.close()
        await services.close()


def basic_auth(station_id: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{station_id}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


class TestStation(ChargePoint):
    """A v201 station that answers CSMS commands with configurable answers."""

    __test__ = False

    def __init__(self, station_id: str, connection: Any) -> None:
        super().__init__(station_id, connection, response_timeout=5)
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.answers: dict[str, Any] = {}  # action -> payload dict, or an exception to raise
        self.delay: dict[str, float] = {}
        self.event = asyncio.Event()

    async def _answer(self, action: str, default: dict[str, Any], kwargs: dict[str, Any]) -> Any:
        self.received.append((action, kwargs))
        self.event.set()
        if action in self.delay:
            await asyncio.sleep(self.delay[action])
        answer = self.answers.get(action, default)
        if isinstance(answer, Exception):
            raise answer
        return answer

    @on("GetTransactionStatus")
    async def on_get_transaction_status(self, **kwargs: Any) -> Any:
        a = await self._answer("GetTransactionStatus", {"messages_in_queue": False}, kwargs)
        return call_result.GetTransactionStatus(**a)

    @on("CertificateSigned")
    async def on_certificate_signed(self, **kwargs: Any) -> Any:
        a = await self._answer("CertificateSigned", {"status": "Accepted"}, kwargs)
        return call_result.CertificateSigned(**a)

    @on("GetVariables")
    async def on_get_variables(self, **kwargs: Any) -> Any:
        results = [
            {
                "attribute_status": "Accepted",
                "component": item["component"],
                "variable": item["variable"],
                "attribute_value": "42",
            }
            for item in kwargs["get_variable_data"]
        ]
        a = await self._answer("GetVariables", {"get_variable_result": results}, kwargs)
        return call_result.GetVariables(**a)

    @on("SetChargingProfile")
    async def on_set_charging_profile(self, **kwargs: Any) -> Any:
        a = await self._answer("SetChargingProfile", {"status": "Accepted"}, kwargs)
        return call_result.SetChargingProfile(**a)

    @on("ClearChargingProfile")
    async def on_clear_charging_profile(self, **kwargs: Any) -> Any:
        a = await self._answer("ClearChargingProfile", {"status": "Accepted"}, kwargs)
        return call_result.ClearChargingProfile(**a)

    @on("TriggerMessage")
    async def on_trigger_message(self, **kwargs: Any) -> Any:
        a = await self._answer("TriggerMessage", {"status": "Accepted"}, kwargs)
        return call_result.TriggerMessage(**a)

    @on("GetBaseReport")
    async def on_get_base_report(self, **kwargs: Any) -> Any:
        a = await self._answer("GetBaseReport", {"status": "Accepted"}, kwargs)
        return call_result.GetBaseReport(**a)

    @on("SetVariables")
    async def on_set_variables(self, **kwargs: Any) -> Any:
        results = [
            {
                "attribute_status": "Accepted",
                "component": item["component"],
                "variable": item["variable"],
            }
            for item in kwargs["set_variable_data"]
        ]
        a = await self._answer("SetVariables", {"set_variable_result": results}, kwargs)
        return call_result.SetVariables(**a)

    @on("Reset")
    async def on_reset(self, **kwargs: Any) -> Any:
        a = await self._answer("Reset", {"status": "Accepted"}, kwargs)
        return call_result.Reset(**a)

    async def wait_for(self, action: str, timeout: float = 5.0) -> dict[str, Any]:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            while True:
                for name, kwargs in self.received:
                    if name == action:
                        return kwargs
                self.event.clear()
                await self.event.wait()


@dataclass
class Connected:
    station: TestStation
    ws: ClientConnection
    task: asyncio.Task[None]
    extra: dict[str, Any] = field(default_factory=dict)


@contextlib.asynccontextmanager
async def connect_station(
    csms: Csms,
    station_id: str,
    *,
    password: str | None = PASSWORD,
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[Connected]:
    headers = basic_auth(station_id, password) if password is not None else {}
    ws = await websockets.connect(
        f"{csms.url}/{station_id}",
        subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
        additional_headers=headers,
        ssl=ssl_context,
        open_timeout=5,
    )
    station = TestStation(station_id, ws)
    task = asyncio.create_task(station.start())
    try:
        yield Connected(station, ws, task)
    finally:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        await ws.close()


async def raw_connect(
    csms: Csms,
    station_id: str,
    password: str = PASSWORD,
    subprotocols: Sequence[str] = ("ocpp2.0.1",),
) -> ClientConnection:
    return await websockets.connect(
        f"{csms.url}/{station_id}",
        subprotocols=list(subprotocols),  # type: ignore[arg-type]
        additional_headers=basic_auth(station_id, password),
        open_timeout=5,
    )


async def raw_exchange(ws: ClientConnection, frame: str | list[Any]) -> list[Any]:
    """Send one frame (text or list) and return the next frame received, decoded."""
    text = frame if isinstance(frame, str) else orjson.dumps(frame).decode()
    await ws.send(text)
    async with asyncio.timeout(5):
        reply = await ws.recv()
    decoded: list[Any] = orjson.loads(reply)
    return decoded


BOOT = {
    "chargingStation": {"vendorName": "V2GCo", "model": "Bidi-1", "serialNumber": "SN1"},
    "reason": "PowerUp",
}


async def raw_boot(ws: ClientConnection) -> list[Any]:
    return await raw_exchange(ws, [2, "boot-1", "BootNotification", BOOT])
