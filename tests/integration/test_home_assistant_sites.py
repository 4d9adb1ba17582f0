"""Home Assistant site devices (issue 18) through the real sites and envelope services: the
envelope in force, its source and times, published as it changes; and through a real broker
(Mosquitto) when CSMS_TEST_MQTT_URL is set: a new envelope reaches MQTT at once, not at the
bridge's interval, and one starting or ending later is published when it does."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from csms.integrations.home_assistant import HomeAssistantBridge
from csms.integrations.home_assistant_sites import (
    SITE_ENTITY_COUNT,
    SitesPort,
    site_state_topic,
)
from tests.support.api_harness import ApiHarness
from tests.support.api_station import ApiTestStation
from tests.support.v2g_harness import v2g_api, v2g_of, v2g_station

V1 = "/api/v1"


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[ApiHarness]:
    async with v2g_api(tmp_path) as harness:
        yield harness


@pytest.fixture
async def station(api: ApiHarness) -> AsyncIterator[ApiTestStation]:
    async with v2g_station(api, "CS1") as cs:
        yield cs


def sites_of(api: ApiHarness) -> SitesPort:
    return SitesPort(api.services.sites.all, api.services.envelopes.view)


def iso(moment: datetime) -> str:
    return moment.isoformat()


def instant(text: Any) -> datetime:
    assert isinstance(text, str), text
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def put_operator(api: ApiHarness, **envelope: Any) -> dict[str, Any]:
    response = await api.client.put(
        f"{V1}/sites/home.1/envelopes/operator", json={"envelopes": [envelope]}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_site_device_follows_the_envelope_in_force(
    api: ApiHarness, station: ApiTestStation
) -> None:
    created = await api.client.post(
        f"{V1}/sites", json={"id": "home.1", "name": "Home", "station_ids": ["CS1"]}
    )
    assert created.status_code == 201, created.text
    bridge = HomeAssistantBridge(v2g_of(api), sites=sites_of(api))
    bridge.state_clear_delay_s = 0.0
    topic = site_state_topic("home.1")
    first = dict(await bridge.changes())
    configs = [t for t in first if t.endswith("/config") and "/site_home_1/" in t]
    assert len(configs) == SITE_ENTITY_COUNT
    state = json.loads(first[topic])
    assert state["envelope_source"] == "none" and state["export_limit"] is None
    assert (state["energized"], state["connected"]) == ("ON", "ON")
    rated = state["charger_max_discharge"]
    assert rated > 2.0  # the station's rating (22 kW when it reports none)

    now = datetime.now(UTC)
    view = await put_operator(
        api,
        control_id="evening-cap",
        start=iso(now - timedelta(minutes=1)),
        end=iso(now + timedelta(hours=1)),
        export_limit_w=2000,
        import_limit_w=5000,
        ramp_rate_pct_per_s=1.0,
    )
    state = json.loads(dict(await bridge.changes())[topic])
    in_force = view["in_force"]
    assert state["envelope_source"] == "operator"
    assert state["control_id"] == "evening-cap"
    assert (state["export_limit"], state["import_limit"]) == (2.0, 5.0)
    assert state["generation_limit"] is None and state["ramp_rate"] == 1.0
    assert (state["charger_max_charge"], state["charger_max_discharge"]) == (5.0, 2.0)
    for name, key in (
        ("envelope_start", "start"),
        ("envelope_end", "end"),
        ("envelope_received", "received_at"),
    ):
        assert instant(state[name]) == instant(in_force[key]), name
        assert instant(state[name]).tzinfo is not None  # Home Assistant needs the offset

    await put_operator(api, start=iso(now - timedelta(minutes=1)), energize=False)
    state = json.loads(dict(await bridge.changes())[topic])
    assert (state["energized"], state["connected"]) == ("OFF", "ON")
    assert (state["charger_max_charge"], state["charger_max_discharge"]) == (0.0, 0.0)
    assert state["envelope_end"] is None  # open-ended

    assert (await api.client.delete(f"{V1}/sites/home.1/envelopes/operator")).status_code == 204
    state = json.loads(dict(await bridge.changes())[topic])
    assert state["envelope_source"] == "none"
    assert state["charger_max_discharge"] == rated

    # The site deleted: its entities are removed, then its state.
    assert (await api.client.delete(f"{V1}/sites/home.1")).status_code == 204
    gone = dict(await bridge.changes())
    assert set(configs) <= set(gone) and not any(gone[t] for t in configs)
    assert topic not in gone
    assert (topic, b"") in await bridge.changes()


async def test_envelope_changes_reach_the_broker_without_waiting_for_the_interval(
    api: ApiHarness, station: ApiTestStation
) -> None:
    url = os.environ.get("CSMS_TEST_MQTT_URL")
    if not url:
        pytest.skip("CSMS_TEST_MQTT_URL not set (MQTT broker tests skipped)")
    import aiomqtt

    created = await api.client.post(
        f"{V1}/sites", json={"id": "home.1", "name": "Home", "station_ids": ["CS1"]}
    )
    assert created.status_code == 201, created.text
    prefix = f"openv2g-sites-{uuid.uuid4().hex[:8]}"
    discovery = f"ha-sites-{uuid.uuid4().hex[:8]}"
    interval_s = 120.0  # far longer than the test: what arrives came from a change
    bridge = HomeAssistantBridge(
        v2g_of(api),
        prefix=prefix,
        discovery_prefix=discovery,
        interval_s=interval_s,
        sites=sites_of(api),
    )
    api.services.envelopes.add_listener(bridge.envelope_changed)  # as csms/app.py does
    topic = site_state_topic("home.1", prefix)
    parts = urlsplit(url)
    runner = asyncio.create_task(bridge.run(url))
    seen: set[str] = set()
    try:
        async with aiomqtt.Client(parts.hostname or "127.0.0.1", parts.port or 1883) as client:
            await client.subscribe(f"{discovery}/#")
            await client.subscribe(f"{prefix}/#")

            async def state(check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
                async for message in client.messages:
                    seen.add(str(message.topic))
                    body = message.payload
                    if str(message.topic) == topic and isinstance(body, bytes) and body:
                        found: dict[str, Any] = json.loads(body)
                        if check(found):
                            return found
                raise AssertionError("the broker connection ended")

            await asyncio.wait_for(state(lambda s: s["envelope_source"] == "none"), 15)
            assert f"{discovery}/sensor/site_home_1/export_limit/config" in seen

            # A new envelope in force: published at once (the listener), not in 120 s.
            now = datetime.now(UTC)
            sent = time.monotonic()
            await put_operator(api, start=iso(now - timedelta(seconds=5)), export_limit_w=1500)
            got = await asyncio.wait_for(state(lambda s: s["export_limit"] == 1.5), 10)
            assert got["envelope_source"] == "operator"
            assert time.monotonic() - sent < 10

            # One starting in 3 s and ending 3 s later: published when each happens.
            start = datetime.now(UTC) + timedelta(seconds=3)
            await put_operator(
                api, start=iso(start), end=iso(start + timedelta(seconds=3)), import_limit_w=800
            )
            await asyncio.wait_for(state(lambda s: s["envelope_source"] == "none"), 10)
            began = await asyncio.wait_for(state(lambda s: s["import_limit"] == 0.8), 10)
            assert datetime.now(UTC) >= start
            assert instant(began["envelope_start"]) == start
            await asyncio.wait_for(state(lambda s: s["envelope_source"] == "none"), 10)
            assert datetime.now(UTC) >= start + timedelta(seconds=3)

            for name in sorted(seen):  # clear the retained messages again
                await client.publish(name, b"", retain=True)
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
