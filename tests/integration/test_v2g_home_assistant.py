"""Home Assistant over MQTT: discovery configs, state, commands; and through a real broker
(Mosquitto) when CSMS_TEST_MQTT_URL is set."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from csms.domain.v2g_records import VehicleRecord
from csms.integrations.home_assistant import (
    ENTITY_COUNT,
    SENSORS,
    HomeAssistantBridge,
    discovery_messages,
)
from tests.support.api_harness import ApiHarness
from tests.support.api_station import ApiTestStation
from tests.support.v2g_harness import (
    LEAF,
    iso,
    meter_value,
    transaction_event,
    v2g_api,
    v2g_of,
    v2g_station,
)

V1 = "/api/v1"


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[ApiHarness]:
    async with v2g_api(tmp_path) as harness:
        yield harness


@pytest.fixture
async def station(api: ApiHarness) -> AsyncIterator[ApiTestStation]:
    async with v2g_station(api, "CS1") as cs:
        yield cs


def test_discovery_configs_name_every_entity_once() -> None:
    vehicle = VehicleRecord(
        id="leaf-1",
        capacity_kwh=40.0,
        chemistry="NMC",
        soc_min=0.0,
        soc_max=1.0,
        max_charge_kw=7.0,
        max_discharge_kw=7.0,
        round_trip_efficiency=0.9,
        driving_reserve_soc=0.2,
        backup_reserve_soc=0.1,
    )
    messages = discovery_messages(vehicle, "openv2g", "homeassistant")
    topics = [topic for topic, _ in messages]
    assert len(topics) == len(set(topics)) == ENTITY_COUNT
    by_object = {config["unique_id"]: (topic, config) for topic, config in messages}
    topic, soc = by_object["openv2g_leaf-1_battery_soc"]
    assert topic == "homeassistant/sensor/leaf-1/battery_soc/config"
    assert soc["state_topic"] == "openv2g/leaf-1/state"
    assert soc["value_template"] == "{{ value_json.battery_soc }}"
    assert soc["unit_of_measurement"] == "%"
    assert soc["device"]["identifiers"] == ["openv2g_leaf-1"]
    _, switch = by_object["openv2g_leaf-1_emergency_backup_mode"]
    assert switch["command_topic"] == "openv2g/leaf-1/set/emergency_backup_mode"
    _, number = by_object["openv2g_leaf-1_max_discharge_power"]
    assert (number["min"], number["max"]) == (0.0, 50.0)


async def test_state_and_commands_through_the_service(
    api: ApiHarness, station: ApiTestStation
) -> None:
    await api.client.post(f"{V1}/vehicles", json=dict(LEAF, station_id="CS1", evse_id=1))
    now = datetime.now(UTC)
    meter = [meter_value(now, soc_pct=60.0, import_wh=0.0, power_w=-3000.0)]
    await transaction_event(station, "Started", "tx-1", 0, now, meter=meter)
    bridge = HomeAssistantBridge(v2g_of(api))
    messages = dict(await bridge.messages())
    state = messages["openv2g/leaf-1/state"]
    assert state["battery_soc"] == 60.0
    assert state["available_capacity"] == pytest.approx(40.0 * (0.6 - 0.2))
    assert state["discharge_rate"] == 3.0
    assert state["connection_status"] == "connected"
    assert state["v2g_enabled"] == "ON"
    assert await bridge.handle_command("openv2g/leaf-1/set/max_discharge_power", b"4.5")
    assert (await api.client.get(f"{V1}/vehicles/leaf-1")).json()["max_discharge_kw"] == 4.5
    assert await bridge.handle_command("openv2g/leaf-1/set/v2g_enabled", b"OFF")
    off = (await api.client.get(f"{V1}/vehicles/leaf-1")).json()
    # V2G off is its own setting: the discharge limit (and V2H backup) stay as they were.
    assert (off["v2g_enabled"], off["max_discharge_kw"]) == (False, 4.5)
    assert dict(await bridge.messages())["openv2g/leaf-1/state"]["v2g_enabled"] == "OFF"
    assert await bridge.handle_command("openv2g/leaf-1/set/v2g_enabled", b"ON")
    assert (await api.client.get(f"{V1}/vehicles/leaf-1")).json()["v2g_enabled"] is True
    assert await bridge.handle_command("openv2g/leaf-1/set/backup_reserve_soc", b"35")
    assert (await api.client.get(f"{V1}/vehicles/leaf-1")).json()["backup_reserve_soc"] == 0.35
    assert await bridge.handle_command("openv2g/leaf-1/set/emergency_backup_mode", b"ON")
    assert station.calls_of("DataTransfer")
    # Not ours, or not a value: refused without effect.
    assert not await bridge.handle_command("openv2g/leaf-1/set/min_departure_soc", b"lots")
    assert not await bridge.handle_command("openv2g/nobody/set/v2g_enabled", b"ON")
    assert not await bridge.handle_command("other/leaf-1/set/v2g_enabled", b"ON")


async def test_through_a_real_broker(api: ApiHarness) -> None:
    url = os.environ.get("CSMS_TEST_MQTT_URL")
    if not url:
        pytest.skip("CSMS_TEST_MQTT_URL not set (MQTT broker tests skipped)")
    import aiomqtt

    await api.client.post(f"{V1}/vehicles", json=LEAF)
    prefix = f"openv2g-test-{uuid.uuid4().hex[:8]}"
    discovery = f"ha-test-{uuid.uuid4().hex[:8]}"
    bridge = HomeAssistantBridge(
        v2g_of(api), prefix=prefix, discovery_prefix=discovery, interval_s=0.2
    )
    parts = urlsplit(url)
    runner = asyncio.create_task(bridge.run(url))
    try:
        async with aiomqtt.Client(parts.hostname or "127.0.0.1", parts.port or 1883) as client:
            await client.subscribe(f"{discovery}/#")
            await client.subscribe(f"{prefix}/leaf-1/state")
            seen: dict[str, dict[str, object]] = {}

            async def collect(
                until: str, check: Callable[[dict[str, object]], bool] | None = None
            ) -> None:
                async for message in client.messages:
                    body = message.payload
                    assert isinstance(body, bytes | bytearray)
                    seen[str(message.topic)] = json.loads(body)
                    if str(message.topic) == until and (check is None or check(seen[until])):
                        return

            await asyncio.wait_for(collect(f"{prefix}/leaf-1/state"), 10)
            assert f"{discovery}/sensor/leaf-1/battery_soc/config" in seen
            assert seen[f"{prefix}/leaf-1/state"]["max_discharge_power"] == 7.0
            await client.publish(f"{prefix}/leaf-1/set/max_discharge_power", b"2.5")
            await asyncio.wait_for(
                collect(f"{prefix}/leaf-1/state", lambda s: s["max_discharge_power"] == 2.5),
                10,
            )
            for topic in seen:  # clear the retained messages again
                await client.publish(topic, b"", retain=True)
        vehicle = (await api.client.get(f"{V1}/vehicles/leaf-1")).json()
        assert vehicle["max_discharge_kw"] == 2.5
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner


def _leaf(**changes: object) -> VehicleRecord:
    values: dict[str, object] = dict(
        id="leaf-1",
        capacity_kwh=40.0,
        chemistry="NMC",
        soc_min=0.0,
        soc_max=1.0,
        max_charge_kw=7.0,
        max_discharge_kw=7.0,
        round_trip_efficiency=0.9,
        driving_reserve_soc=0.2,
        backup_reserve_soc=0.1,
    )
    values.update(changes)
    return VehicleRecord(**values)  # type: ignore[arg-type]


def test_discovery_as_home_assistant_expects() -> None:
    """Issue 15 finding 3: availability with a last will, classes on every sensor, kWh
    total_increasing energy for the Energy dashboard, default_entity_id and no object_id."""
    messages = discovery_messages(_leaf(), "openv2g", "homeassistant")
    for topic, config in messages:
        assert config["availability_topic"] == "openv2g/status", topic
        assert (config["payload_available"], config["payload_not_available"]) == (
            "online",
            "offline",
        )
        assert "object_id" not in config
        component = topic.split("/")[1]
        assert config["default_entity_id"].startswith(f"{component}.openv2g_leaf_1_")
    sensors = {
        c["unique_id"].removeprefix("openv2g_leaf-1_"): c for t, c in messages if "/sensor/" in t
    }
    assert set(sensors) == {s.object_id for s in SENSORS}
    numeric = {k: c for k, c in sensors.items() if "unit_of_measurement" in c}
    # Every numeric sensor keeps long-term statistics; every one but the prices has a device
    # class (Home Assistant has none for a price per kWh).
    assert all("state_class" in c for c in numeric.values())
    assert {k for k, c in numeric.items() if "device_class" not in c} == {
        "import_price",
        "export_price",
    }
    for name in ("energy_import", "energy_export"):
        assert (
            sensors[name]["device_class"],
            sensors[name]["state_class"],
            sensors[name]["unit_of_measurement"],
        ) == ("energy", "total_increasing", "kWh")
    # Text sensors: enums with their options, no state class (Home Assistant refuses one).
    assert sensors["connection_status"]["device_class"] == "enum"
    assert sensors["next_action"]["options"] == ["charge", "discharge", "idle", "none"]
    assert sensors["next_action_at"]["device_class"] == "timestamp"
    assert sensors["vehicle_model"]["entity_category"] == "diagnostic"
    assert sensors["grid_frequency"]["device_class"] == "frequency"
    (grid,) = [c for t, c in messages if "/binary_sensor/" in t]
    assert grid["device_class"] == "power"


async def test_configs_published_once_and_cleared_on_delete(api: ApiHarness) -> None:
    await api.client.post(f"{V1}/vehicles", json=LEAF)
    bridge = HomeAssistantBridge(v2g_of(api))
    bridge.state_clear_delay_s = 0.0  # the next round (15 s by default)
    first = dict(await bridge.changes())
    configs = [t for t in first if t.endswith("/config")]
    assert len(configs) == ENTITY_COUNT and all(first[t] for t in configs)
    second = dict(await bridge.changes())
    assert list(second) == ["openv2g/leaf-1/state"]  # the state again, the configs not
    await api.client.patch(f"{V1}/vehicles/leaf-1", json={"name": "Leaf two"})
    renamed = dict(await bridge.changes())  # the device name changed: configs again
    assert len([t for t in renamed if t.endswith("/config")]) == ENTITY_COUNT
    assert (await api.client.delete(f"{V1}/vehicles/leaf-1")).status_code == 204
    gone = dict(await bridge.changes())
    assert set(gone) == set(configs)
    assert all(body == b"" for body in gone.values())  # empty retained: Home Assistant removes
    # The state in a later round, when the entities are gone (no template errors meanwhile).
    assert await bridge.changes() == [("openv2g/leaf-1/state", b"")]
    assert await bridge.changes() == []


async def test_backup_duration_with_v2g_off_at_95_percent(
    api: ApiHarness, station: ApiTestStation
) -> None:
    """Issue 15 finding 2: "Backup duration" read 0.0 h whenever V2G was off, even at 95 %."""
    await api.client.post(f"{V1}/vehicles", json=dict(LEAF, station_id="CS1", evse_id=1))
    now = datetime.now(UTC)
    meter = [meter_value(now, soc_pct=95.0, import_wh=1000.0, export_wh=250.0)]
    await transaction_event(station, "Started", "tx-1", 0, now, meter=meter)
    bridge = HomeAssistantBridge(v2g_of(api))
    assert await bridge.handle_command("openv2g/leaf-1/set/v2g_enabled", b"OFF")
    state = dict(await bridge.messages())["openv2g/leaf-1/state"]
    assert state["v2g_enabled"] == "OFF"
    load_kw = v2g_of(api).settings.house_load_kw
    # 40 kWh x (95 % - 10 % backup reserve) x discharge efficiency / house load
    expected = 40.0 * (0.95 - 0.10) * 0.9**0.5 / load_kw
    assert state["backup_duration"] == pytest.approx(expected, rel=0.02)
    assert (state["energy_import"], state["energy_export"]) == (1.0, 0.25)
    assert state["grid_present"] == "ON"


async def _expensive_now(api: ApiHarness, now: datetime) -> None:
    """Prices that make the plan export now (60 c/kWh for 2 h, then 10 c/kWh)."""
    start = now.replace(minute=0, second=0, microsecond=0)
    intervals = [
        {
            "start": iso(start + timedelta(minutes=30 * k)),
            "interval_s": 1800,
            "import_c_kwh": 60.0 if k < 4 else 10.0,
            "export_c_kwh": 54.0 if k < 4 else 9.0,
        }
        for k in range(24)
    ]
    assert (await api.client.put(f"{V1}/prices", json={"intervals": intervals})).is_success


async def test_commands_send_a_new_plan_and_are_kept_only_when_accepted(
    api: ApiHarness, station: ApiTestStation
) -> None:
    """A switch or number reaches the station in the same call (a new TxProfile); refused by
    the station, the setting stays as it was and the state says so."""
    await api.client.post(f"{V1}/vehicles", json=dict(LEAF, station_id="CS1", evse_id=1))
    now = datetime.now(UTC)
    await _expensive_now(api, now)
    await transaction_event(
        station, "Started", "tx-1", 0, now, meter=[meter_value(now, soc_pct=90.0)]
    )
    bridge = HomeAssistantBridge(v2g_of(api))
    assert await bridge.handle_command("openv2g/leaf-1/set/max_discharge_power", b"5")
    sent = station.calls_of("SetChargingProfile")
    assert len(sent) == 1  # applied at once, not at a later re-plan
    limits = [
        p["limit"]
        for p in sent[-1].payload["chargingProfile"]["chargingSchedule"][0][
            "chargingSchedulePeriod"
        ]
    ]
    assert min(limits) == pytest.approx(-5000.0)  # the plan exports at the new limit
    state = dict(await bridge.messages())["openv2g/leaf-1/state"]
    assert state["next_action"] in ("charge", "idle")  # after the expensive hours
    assert state["import_price"] == 0.6 and state["export_price"] == 0.54
    # The station refuses the next profile: V2G stays on, in the CSMS and in Home Assistant.
    station.behaviour.responses["SetChargingProfile"] = {"status": "Rejected"}
    assert not await bridge.handle_command("openv2g/leaf-1/set/v2g_enabled", b"OFF")
    assert (await api.client.get(f"{V1}/vehicles/leaf-1")).json()["v2g_enabled"] is True
    assert dict(await bridge.messages())["openv2g/leaf-1/state"]["v2g_enabled"] == "ON"
    station.behaviour.responses.pop("SetChargingProfile")
    assert await bridge.handle_command("openv2g/leaf-1/set/v2g_enabled", b"OFF")
    off_plan = station.calls_of("SetChargingProfile")[-1].payload["chargingProfile"]
    assert all(p["limit"] >= 0 for p in off_plan["chargingSchedule"][0]["chargingSchedulePeriod"])
    # Dispatch and frequency profiles (they may discharge) were cleared too.
    cleared = {c.payload["chargingProfileId"] for c in station.calls_of("ClearChargingProfile")}
    assert cleared == {62_002, 62_003}
    # A manual discharge is refused with V2G off; a charge runs and shows.
    assert not await bridge.handle_command("openv2g/leaf-1/set/dispatch_power", b"-3")
    assert await bridge.handle_command("openv2g/leaf-1/set/dispatch_power", b"2.5")
    assert dict(await bridge.messages())["openv2g/leaf-1/state"]["dispatch_power"] == 2.5
    assert await bridge.handle_command("openv2g/leaf-1/set/dispatch_power", b"0")
    assert dict(await bridge.messages())["openv2g/leaf-1/state"]["dispatch_power"] == 0.0
    assert not await bridge.handle_command("openv2g/leaf-1/set/dispatch_power", b"nan")


_BRIDGE_PROCESS = """
import asyncio, sys
from csms.integrations.home_assistant import HomeAssistantBridge

class NoVehicles:
    async def list_vehicles(self, station_id=None):
        return []

asyncio.run(HomeAssistantBridge(NoVehicles(), prefix=sys.argv[2]).run(sys.argv[1]))
"""


async def test_availability_last_will_when_the_csms_dies() -> None:
    """Issue 15 finding 3: the CSMS killed (no clean disconnect): the broker publishes the
    bridge's last will, "offline", so Home Assistant shows the entities unavailable."""
    url = os.environ.get("CSMS_TEST_MQTT_URL")
    if not url:
        pytest.skip("CSMS_TEST_MQTT_URL not set (MQTT broker tests skipped)")
    import aiomqtt

    prefix = f"openv2g-will-{uuid.uuid4().hex[:8]}"
    parts = urlsplit(url)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _BRIDGE_PROCESS, url, prefix, cwd=Path(__file__).parents[2]
    )
    try:
        async with aiomqtt.Client(parts.hostname or "127.0.0.1", parts.port or 1883) as client:
            await client.subscribe(f"{prefix}/status")

            async def status(wanted: bytes) -> None:
                async for message in client.messages:
                    if message.payload == wanted:
                        return

            await asyncio.wait_for(status(b"online"), 30)
            process.kill()  # SIGKILL: no DISCONNECT, no "offline" from the bridge itself
            await process.wait()
            await asyncio.wait_for(status(b"offline"), 30)
            await client.publish(f"{prefix}/status", b"", retain=True)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
