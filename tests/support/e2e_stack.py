"""The whole system on loopback for end-to-end tests and the latency benchmark.

`running_stack(tmp_path)` starts the real CSMS (`csms.app.start`: OCPP server, services, REST
API under uvicorn, SQLite file) and hands out an authenticated httpx client on the REST API.
`stack.add_station(...)` registers a station through the API and starts a `SimStation` (the real
agent + ChademoEvse + simulated vehicle on its own python-can virtual channel) against it.
Everything the tests ask the CSMS goes through the REST API, as an operator would.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import can
import httpx

from chargepoint_firmware.hardware.sim_vehicle import SimVehicleConfig
from chargepoint_firmware.simulate import Car, ScaledClock, SimStation, station_settings
from csms.app import RunningCsms, start
from csms.settings import Settings
from tests.support.chademo_sim import BusRecorder

STATION_PASSWORD = "e2e-station-password-01"
DRIVER_TOKEN = "E2E-DRIVER"
T = TypeVar("T")


def iso_ms(moment: datetime) -> str:
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


async def until(
    check: Callable[[], Awaitable[T | None]], within_s: float = 10.0, what: str = "condition"
) -> T:
    """Poll an async check until it returns something truthy."""
    deadline = time.monotonic() + within_s
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {within_s} s")
        await asyncio.sleep(0.05)


async def until_true(predicate: Callable[[], bool], within_s: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + within_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what or 'condition'} not reached within {within_s} s")
        await asyncio.sleep(0.01)


def stack_settings(directory: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": f"sqlite+aiosqlite:///{directory / 'csms.db'}",
        "ocpp_host": "127.0.0.1",
        "ocpp_port": 0,
        "api_host": "127.0.0.1",
        "api_port": 0,
        "command_timeout_s": 5.0,
        "heartbeat_interval_s": 300,
        "log_level": "WARNING",
        "password_key_file": directory / "csms.password-key",  # not the working directory
    }
    values.update(overrides)
    return Settings(**values)


@dataclass
class E2eStack:
    directory: Path
    settings: Settings
    csms: RunningCsms | None = None
    token: str = ""
    client: httpx.AsyncClient | None = None
    stations: list[SimStation] = field(default_factory=list)
    sniffers: list[BusRecorder] = field(default_factory=list)
    ocpp_url: str = ""

    # -- CSMS --------------------------------------------------------------------------------
    async def start_csms(self) -> RunningCsms:
        self.csms = await start(self.settings)
        # Same ports after a restart: stations reconnect to the URL they know.
        self.settings = self.settings.model_copy(
            update={"ocpp_port": self.csms.ocpp_port, "api_port": self.csms.api_port}
        )
        self.ocpp_url = self.csms.ocpp_url
        if not self.token:
            created = await self.csms.services.api_tokens.create("e2e")
            self.token = created.plaintext
            await self.csms.services.id_tokens.create(DRIVER_TOKEN, "ISO14443")
        if self.client is None:
            self.client = httpx.AsyncClient(
                base_url=self.csms.api_url + "/api/v1",
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=15.0,
            )
        return self.csms

    async def stop_csms(self) -> None:
        if self.csms is not None:
            await self.csms.stop()
            self.csms = None

    @property
    def api(self) -> httpx.AsyncClient:
        assert self.client is not None, "start_csms() first"
        return self.client

    # -- stations ----------------------------------------------------------------------------
    async def add_station(
        self,
        station_id: str,
        *,
        car: Car,
        speed: float = 1.0,
        vehicle_config: SimVehicleConfig | None = None,
        meter_interval_s: int | None = 1,
        **overrides: Any,
    ) -> SimStation:
        response = await self.api.post(
            "/stations", json={"id": station_id, "password": STATION_PASSWORD}
        )
        assert response.status_code == 201, response.text
        settings = station_settings(
            station_id,
            self.ocpp_url,
            self.directory / "stations" / station_id,
            password=STATION_PASSWORD,
            reconnect_min_s=0.05,
            reconnect_max_s=0.3,
            transaction_message_retry_interval_s=0.05,
            message_timeout_s=5.0,
            **overrides,
        )
        station = SimStation(
            settings, car=car, clock=ScaledClock(speed), vehicle_config=vehicle_config
        )
        if meter_interval_s is not None:
            station.configure("SampledDataCtrlr", "TxUpdatedInterval", str(meter_interval_s))
        self.stations.append(station)
        await station.start()
        await station.wait_online(within_s=10)
        return station

    def sniff(self, station: SimStation) -> BusRecorder:
        """A second python-can Bus on the station's virtual channel, recording every frame."""
        recorder = BusRecorder(can.Bus(interface="virtual", channel=station.channel))
        self.sniffers.append(recorder)
        return recorder

    # -- REST API helpers --------------------------------------------------------------------
    async def remote_start(self, station: SimStation, remote_start_id: int = 1) -> str:
        """RequestStartTransaction through the API; the CSMS's transaction id once it exists."""
        await station.wait_plugged()  # the car is plugged in before the remote start
        response = await self.api.post(
            f"/stations/{station.station_id}/commands/request-start",
            json={
                "id_token": DRIVER_TOKEN,
                "id_token_type": "ISO14443",
                "evse_id": 1,
                "remote_start_id": remote_start_id,
            },
        )
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "Accepted", response.text

        async def active() -> str | None:
            page = await self.api.get(
                f"/stations/{station.station_id}/transactions", params={"state": "Active"}
            )
            items = page.json()["items"]
            return str(items[0]["transaction_id"]) if items else None

        return await until(active, within_s=10, what="an active transaction in the API")

    async def set_variable(self, station_id: str, component: str, variable: str, value: str) -> str:
        response = await self.api.post(
            f"/stations/{station_id}/commands/set-variables",
            json={"variables": [{"component": component, "variable": variable, "value": value}]},
        )
        assert response.status_code == 200, response.text
        return str(response.json()["setVariableResult"][0]["attributeStatus"])

    async def set_tx_profile(
        self,
        station_id: str,
        transaction_id: str,
        limit: float,
        *,
        unit: str = "W",
        profile_id: int = 100,
        start: datetime | None = None,
    ) -> httpx.Response:
        """POST /charging-profiles: a TxProfile with one period of `limit` (negative =
        discharge)."""
        begin = start or datetime.now(UTC) - timedelta(seconds=5)
        profile = {
            "id": profile_id,
            "stackLevel": 0,
            "chargingProfilePurpose": "TxProfile",
            "chargingProfileKind": "Absolute",
            "transactionId": transaction_id,
            "chargingSchedule": [
                {
                    "id": profile_id,
                    "startSchedule": iso_ms(begin),
                    "chargingRateUnit": unit,
                    "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}],
                }
            ],
        }
        return await self.api.post(
            f"/stations/{station_id}/charging-profiles",
            json={"evse_id": 1, "charging_profile": profile},
        )

    async def meter_values(
        self, station_id: str, transaction_id: str, measurand: str | None = None
    ) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        offset = 0
        while True:
            params: dict[str, Any] = {"offset": offset, "limit": 500}
            if measurand is not None:
                params["measurand"] = measurand
            response = await self.api.get(
                f"/stations/{station_id}/transactions/{transaction_id}/meter-values",
                params=params,
            )
            assert response.status_code == 200, response.text
            page = response.json()
            items.extend(page["items"])
            offset += len(page["items"])
            if not page["items"] or offset >= page["total"]:
                return items

    async def events(self, station_id: str, kind: str | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": 200}
        if kind is not None:
            params["kind"] = kind
        response = await self.api.get(f"/stations/{station_id}/events", params=params)
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    async def close(self) -> None:
        for station in self.stations:
            with contextlib.suppress(Exception):
                await station.stop(drain_s=1.0)
        for sniffer in self.sniffers:
            sniffer.close()
        if self.client is not None:
            await self.client.aclose()
        await self.stop_csms()


@contextlib.asynccontextmanager
async def running_stack(directory: Path, **overrides: Any) -> AsyncIterator[E2eStack]:
    stack = E2eStack(directory, stack_settings(directory, **overrides))
    await stack.start_csms()
    try:
        yield stack
    finally:
        await stack.close()
