"""The household meter fed through a real broker (Mosquitto, CSMS_TEST_MQTT_URL): a Home
Assistant automation publishing the grid power to `<prefix>/sites/<node>/set/grid_power`
becomes the site's reading (source mqtt); a payload that is no reading changes nothing."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from csms.integrations.home_assistant import HomeAssistantBridge
from csms.integrations.home_assistant_sites import SitesPort, site_meter_topic
from tests.support.api_harness import ApiHarness, api_harness
from tests.support.v2g_harness import v2g_of, with_v2g_routes

V1 = "/api/v1"


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[ApiHarness]:
    async with api_harness(tmp_path, site_meter_check_s=0) as harness:
        with_v2g_routes(harness)
        yield harness


async def meter_of(api: ApiHarness) -> dict[str, Any]:
    response = await api.client.get(f"{V1}/sites/home.1/meter")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_grid_power_published_by_home_assistant_becomes_the_site_reading(
    api: ApiHarness,
) -> None:
    url = os.environ.get("CSMS_TEST_MQTT_URL")
    if not url:
        pytest.skip("CSMS_TEST_MQTT_URL not set (MQTT broker tests skipped)")
    import aiomqtt

    created = await api.client.post(f"{V1}/sites", json={"id": "home.1", "name": "Home"})
    assert created.status_code == 201, created.text
    prefix = f"openv2g-meter-{uuid.uuid4().hex[:8]}"
    services = api.services
    bridge = HomeAssistantBridge(
        v2g_of(api),
        prefix=prefix,
        discovery_prefix=f"ha-meter-{uuid.uuid4().hex[:8]}",
        interval_s=120.0,
        sites=SitesPort(services.sites.all, services.envelopes.view, services.site_meters.record),
    )
    runner = asyncio.create_task(bridge.run(url))
    parts = urlsplit(url)
    topic = site_meter_topic("home.1", prefix)
    try:
        async with aiomqtt.Client(parts.hostname or "127.0.0.1", parts.port or 1883) as client:
            deadline = asyncio.get_running_loop().time() + 20.0
            # The bridge subscribes once it is connected: publish until the reading lands.
            while (await meter_of(api))["rule"] != "metered":
                assert asyncio.get_running_loop().time() < deadline, "no reading arrived"
                await client.publish(topic, b"-1800")
                await asyncio.sleep(0.3)
            meter = await meter_of(api)
            assert (meter["source"], meter["grid_import_w"]) == ("mqtt", -1800.0)

            await client.publish(topic, b"unavailable")  # a sensor that is down
            await client.publish(topic, b'{"load_w": 700, "solar_w": 2900}')
            while (await meter_of(api))["grid_import_w"] != -2200.0:
                assert asyncio.get_running_loop().time() < deadline, await meter_of(api)
                await asyncio.sleep(0.1)
            assert (await meter_of(api))["load_w"] == 700.0
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
