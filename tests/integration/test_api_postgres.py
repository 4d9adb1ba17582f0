"""The REST API and a command round trip on PostgreSQL (CSMS_TEST_POSTGRES_URL), in a
throw-away database."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.api_harness import STATION_PASSWORD, api_harness
from tests.support.api_payloads import DISCHARGE_PROFILE
from tests.support.api_station import connected_station
from tests.support.csms_db import fresh_postgres_database, postgres_url_or_skip

pytestmark = pytest.mark.postgres


async def test_api_on_postgres(tmp_path: Path) -> None:
    base_url = postgres_url_or_skip()
    async with (
        fresh_postgres_database(base_url) as database_url,
        api_harness(tmp_path, with_ocpp=True, database_url=database_url) as api,
    ):
        await api.add_station("PG1")
        await api.add_station("PG2")
        page = (await api.client.get("/api/v1/stations", params={"limit": 1})).json()
        assert page["total"] == 2 and len(page["items"]) == 1
        assert api.ocpp_url is not None
        async with connected_station(api.ocpp_url, "PG1", STATION_PASSWORD) as station:
            await station.call_status_notification(1, 1)
            response = await api.client.post(
                "/api/v1/stations/PG1/charging-profiles",
                json={"evse_id": 1, "charging_profile": DISCHARGE_PROFILE},
            )
            assert response.json()["status"] == "Accepted"
        stored = (await api.client.get("/api/v1/stations/PG1/charging-profiles")).json()
        assert stored[0]["profile"] == DISCHARGE_PROFILE
        assert (await api.client.get("/api/v1/stations/PG1/messages")).json()["total"] >= 1
        tariff = await api.client.put(
            "/api/v1/stations/PG1/tariff", json={"currency": "AUD", "price_per_kwh": 0.3}
        )
        assert tariff.status_code == 200
        assert (await api.client.get("/api/v1/stations/NOPE")).status_code == 404
