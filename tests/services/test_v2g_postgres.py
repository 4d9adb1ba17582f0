"""The V2G API on PostgreSQL (CSMS_TEST_POSTGRES_URL), in a throw-away database: vehicles,
NEM upload (upserts), an optimized plan sent to a station, dispatch records and economics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.api_harness import api_harness
from tests.support.csms_db import fresh_postgres_database, postgres_url_or_skip
from tests.support.v2g_harness import (
    LEAF,
    NEM_FILE,
    iso,
    meter_value,
    transaction_event,
    v2g_station,
    with_v2g_routes,
)

pytestmark = pytest.mark.postgres
V1 = "/api/v1"


async def test_v2g_api_on_postgres(tmp_path: Path) -> None:
    base_url = postgres_url_or_skip()
    async with (
        fresh_postgres_database(base_url) as database_url,
        api_harness(tmp_path, with_ocpp=True, database_url=database_url) as api,
    ):
        with_v2g_routes(api)
        for _ in range(2):  # the second upload replaces every interval (upsert)
            uploaded = await api.client.post(
                f"{V1}/prices/nem",
                content=NEM_FILE.read_bytes(),
                headers={"Content-Type": "text/csv"},
            )
            assert uploaded.status_code == 200, uploaded.text
            assert uploaded.json()["stored"] == 576
        assert len((await api.client.get(f"{V1}/prices")).json()["intervals"]) == 576
        async with v2g_station(api, "PG1") as station:
            body = dict(LEAF, station_id="PG1", evse_id=1)
            assert (await api.client.post(f"{V1}/vehicles", json=body)).status_code == 201
            now = datetime.now(UTC)
            start = now.replace(minute=0, second=0, microsecond=0)
            intervals = [
                {
                    "start": iso(start + timedelta(hours=k)),
                    "interval_s": 3600,
                    "import_c_kwh": 10.0 if k < 3 else 50.0,
                    "export_c_kwh": 9.0 if k < 3 else 45.0,
                }
                for k in range(12)
            ]
            await api.client.put(f"{V1}/prices", json={"intervals": intervals})
            await api.client.patch(
                f"{V1}/vehicles/leaf-1", json={"departure": iso(now + timedelta(hours=10))}
            )
            meter = [meter_value(now, soc_pct=55.0, import_wh=0.0, export_wh=0.0)]
            await transaction_event(station, "Started", "pg-tx", 0, now, meter=meter)
            sent = await api.client.post(f"{V1}/stations/PG1/v2g/optimize")
            assert sent.status_code == 200, sent.text
            assert sent.json()["status"] == "Accepted"
            plan = (await api.client.get(f"{V1}/stations/PG1/v2g/plan")).json()
            assert plan["transaction_id"] == "pg-tx"
            dispatched = await api.client.post(f"{V1}/v2g/dispatch", json={"target_kw": -3.0})
            assert dispatched.json()["accepted_kw"] == pytest.approx(-3.0)
            later = now + timedelta(hours=1)
            meter = [meter_value(later, soc_pct=80.0, import_wh=10_000.0, export_wh=0.0)]
            await transaction_event(station, "Updated", "pg-tx", 1, later, meter=meter)
            economics = await api.client.get(
                f"{V1}/vehicles/leaf-1/economics",
                params={"from": iso(start), "to": iso(start + timedelta(days=1))},
            )
            assert economics.status_code == 200, economics.text
            e = economics.json()
            assert e["imported_kwh"] == pytest.approx(10.0)
            assert e["grid_service_aud"] > 0  # the accepted dispatch, x the configured rate
