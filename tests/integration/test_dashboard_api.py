"""The dashboard's own routes: the page under `/` with its CSP, overview figures, the station
list page (search, bounds, connectors, live power), OCA schemas, what-if chart data, and the
live stream over a real socket (scope, first bytes, an event arriving)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from csms.domain.models import ApiScope, MeterSample
from tests.support.api_harness import ApiHarness, api_harness
from tests.support.e2e_stack import running_stack


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[ApiHarness]:
    async with api_harness(tmp_path) as harness:
        yield harness


async def test_the_page_and_its_assets_come_from_the_package(api: ApiHarness) -> None:
    page = await api.anonymous.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert '<script src="/static/vendor/uPlot.iife.min.js">' in page.text
    script = await api.anonymous.get("/static/vendor/uPlot.iife.min.js")
    assert script.status_code == 200 and "uPlot" in script.text
    assert (await api.anonymous.get("/static/app.js")).status_code == 200
    assert (await api.anonymous.get("/static/../settings.py")).status_code == 404


async def test_session_tells_the_scope_and_refuses_without_token(api: ApiHarness) -> None:
    assert (await api.anonymous.get("/api/v1/dashboard/session")).status_code == 401
    created = await api.services.api_tokens.create("viewer", ApiScope.READ)
    answer = await api.anonymous.get(
        "/api/v1/dashboard/session", headers={"Authorization": f"Bearer {created.plaintext}"}
    )
    assert answer.json() == {"name": "viewer", "scope": "read"}


async def test_station_rows_are_paged_searched_and_carry_live_power(api: ApiHarness) -> None:
    for k in range(12):
        await api.add_station(f"SITE-{k:02d}")
    api.services.live.meter_samples(
        [MeterSample("SITE-03", datetime.now(UTC), 4.2, "Power.Active.Export", unit="kW")]
    )
    page = (await api.client.get("/api/v1/dashboard/stations", params={"limit": 5})).json()
    assert page["total"] == 12 and [s["id"] for s in page["items"]][:2] == ["SITE-00", "SITE-01"]
    found = (await api.client.get("/api/v1/dashboard/stations", params={"q": "e-03"})).json()
    assert [s["id"] for s in found["items"]] == ["SITE-03"]
    assert found["items"][0]["power_w"] == -4200.0 and found["items"][0]["connected"] is False
    like = (await api.client.get("/api/v1/dashboard/stations", params={"q": "%"})).json()
    assert like["total"] == 0  # a LIKE wildcard is searched for, not expanded
    online = (await api.client.get("/api/v1/dashboard/stations", params={"online": True})).json()
    assert online["total"] == 0
    for bad in ({"limit": 201}, {"limit": 0}, {"offset": -1}, {"q": "x" * 49}):
        response = await api.client.get("/api/v1/dashboard/stations", params=bad)
        assert response.status_code == 422, bad
    overview = (await api.client.get("/api/v1/dashboard/overview")).json()
    assert overview["stations"] == 12 and overview["power_export_kw"] == 4.2
    assert overview["power_import_kw"] == 0.0 and overview["transactions_today"] == 0


async def test_schemas_for_the_generic_form(api: ApiHarness) -> None:
    actions = (await api.client.get("/api/v1/dashboard/actions")).json()
    assert "TriggerMessage" in actions and "BootNotification" not in actions
    schema = (await api.client.get("/api/v1/dashboard/actions/Reset/schema")).json()
    assert schema["required"] == ["type"]
    for station_side in ("BootNotification", "Nope"):
        response = await api.client.get(f"/api/v1/dashboard/actions/{station_side}/schema")
        assert response.status_code == 404


async def test_what_if_gives_plan_and_baselines(api: ApiHarness) -> None:
    start = datetime(2030, 1, 1, 6, tzinfo=UTC)
    prices = [10.0] * 8 + [60.0] * 8  # cheap first, dear later
    body = {
        "capacity_kwh": 40.0,
        "max_charge_kw": 7.0,
        "max_discharge_kw": 7.0,
        "soc": 0.5,
        "target_soc": 0.6,
        "departure": (start + timedelta(hours=8)).isoformat(),
        "prices": {
            "start": start.isoformat(),
            "interval_s": 1800,
            "import_c_kwh": prices,
            "export_c_kwh": [p - 2 for p in prices],
        },
    }
    chart = (await api.client.post("/api/v1/dashboard/what-if", json=body)).json()
    assert len(chart["times"]) == len(chart["plan_kw"]) == len(chart["plain_kw"]) == 16
    assert chart["plan_cost_c"] <= chart["plain_cost_c"]
    assert chart["plan_cost_c"] <= chart["rules_cost_c"]
    assert min(chart["plan_kw"][8:]) < 0  # sells when it is dear
    far = {**body, "departure": (start + timedelta(days=30)).isoformat()}
    assert (await api.client.post("/api/v1/dashboard/what-if", json=far)).status_code == 422


async def test_live_stream_over_a_socket(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        assert stack.csms is not None
        url = stack.csms.api_url + "/api/v1/dashboard/live"
        reader = await stack.csms.services.api_tokens.create("viewer", ApiScope.READ)
        async with httpx.AsyncClient(timeout=10) as client:
            assert (await client.get(url)).status_code == 401
            headers = {"Authorization": f"Bearer {reader.plaintext}"}
            async with client.stream("GET", url, headers=headers) as stream:
                assert stream.status_code == 200
                assert stream.headers["content-type"].startswith("text/event-stream")
                chunks = stream.aiter_text()
                assert (await anext(chunks)).startswith("retry: 2000")
                stack.csms.services.live.publish({"type": "boot", "station": "X", "status": "Ok"})
                text = await asyncio.wait_for(anext(chunks), 5)
                assert "event: batch" in text and '"station": "X"' in text
            assert stack.csms.services.live.viewer_count <= 1
