"""Home Assistant over MQTT: per-vehicle entities by MQTT discovery, their state, and commands.

Home Assistant's MQTT discovery: a retained JSON config on
`<discovery_prefix>/<component>/<node_id>/<object_id>/config` creates an entity; an empty
retained payload on the same topic removes it. Every entity of a vehicle reads one retained
JSON state on `<prefix>/<vehicle_id>/state` (through a `value_template`); settable entities
write to `<prefix>/<vehicle_id>/set/<object_id>`. Every entity is available while
`<prefix>/status` reads "online": the bridge publishes it (retained) when it connects and the
broker publishes "offline" (the bridge's last will) when the CSMS dies or loses the broker.

Entities: the seed's (sensors battery_soc, available_capacity, charge_rate, discharge_rate,
connection_status, vehicle_model, backup_duration; switches v2g_enabled,
emergency_backup_mode; numbers max_discharge_power, min_departure_soc, backup_reserve_soc)
plus what the seed's automations need: energy_import / energy_export (kWh registers, for the
Energy dashboard), grid_frequency, grid_present, import_price / export_price, next_action /
next_action_at, and dispatch_power (a manual charge/discharge lasting at most 15 minutes).

Commands take effect at once: a switch or number changes the vehicle and the station gets a new
plan (or profile) in the same call (`V2gPort.apply_vehicle_settings`); the setting is kept only
when the station accepted it, so the state published is what the station runs.

Configs are published retained once per vehicle (again only when one changes) and cleared when
the vehicle is deleted; states every `interval_s` and after each command. Sites (issue 18) get a
device each with their operating envelope (csms/integrations/home_assistant_sites.py), published
the same way and again at once when an envelope changes or one starts or ends.
`HomeAssistantBridge.run()` does this. Off unless CSMS_MQTT_URL is set (mqtt://host:port):
csms/app.py starts it with `start_bridge`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

from pydantic import BaseModel

from csms.domain.errors import CsmsError
from csms.domain.v2g_records import VehicleRecord
from csms.integrations.ha_discovery import OFFLINE, ONLINE, add_sensor_fields
from csms.integrations.home_assistant_sites import (
    METER_COMMAND,
    SitesPort,
    handle_meter_command,
    next_change,
    site_discovery_messages,
    site_state,
    site_state_topic,
)
from csms.services.redaction import redact_url
from csms.services.v2g.control import Applied, NextAction
from csms.services.v2g.records import BackupState, SessionContext
from csms.settings import Settings

log = logging.getLogger(__name__)

# Home Assistant removes the entities of cleared configs within this (measured: 1 s was not
# always enough for 26 entities on a loaded machine).
STATE_CLEAR_DELAY_S = 15.0


class V2gPort(Protocol):
    """What the bridge needs of the V2G service."""

    def now(self) -> datetime: ...

    async def session_context(self, record: VehicleRecord, now: datetime) -> SessionContext: ...

    async def latest_power_kw(self, record: VehicleRecord) -> float: ...

    async def backup_state(
        self, station_id: str, house_load_kw: float | None = None
    ) -> BackupState: ...

    async def list_vehicles(self, station_id: str | None = None) -> list[VehicleRecord]: ...

    async def apply_vehicle_settings(self, vehicle_id: str, **changes: Any) -> Applied: ...

    async def set_emergency_backup(self, station_id: str, enabled: bool) -> dict[str, Any]: ...

    async def dispatch_vehicle(self, vehicle_id: str, power_kw: float) -> dict[str, Any]: ...

    async def manual_dispatch_kw(self, vehicle_id: str) -> float: ...

    async def energy_registers_kwh(
        self, record: VehicleRecord
    ) -> tuple[float | None, float | None]: ...

    async def grid_frequency_hz(self, station_id: str) -> float | None: ...

    async def price_now(self) -> tuple[float, float] | None: ...

    async def next_action(self, record: VehicleRecord) -> NextAction: ...


class HomeAssistantSettings(BaseModel):
    """The `mqtt_*` fields of `csms.settings.Settings` (CSMS_MQTT_URL, ...)."""

    mqtt_url: str | None = None  # mqtt://host:1883 ; None = no Home Assistant bridge
    mqtt_topic_prefix: str = "openv2g"
    mqtt_discovery_prefix: str = "homeassistant"
    mqtt_state_interval_s: float = 30.0

    @classmethod
    def from_settings(cls, settings: Settings) -> HomeAssistantSettings:
        return cls(**{name: getattr(settings, name) for name in cls.model_fields})


@dataclass(frozen=True)
class VehicleState:
    """What the entities show (one retained JSON). None = unknown (published as null; the
    templates turn it into Home Assistant's "None" payload, which makes the state unknown)."""

    battery_soc: float | None  # %
    available_capacity: float | None  # kWh above the reserve
    charge_rate: float  # kW
    discharge_rate: float  # kW
    energy_import: float | None  # kWh, the EVSE's import register
    energy_export: float | None  # kWh, the EVSE's export register
    connection_status: str  # connected / plugged / disconnected
    vehicle_model: str
    backup_duration: float | None  # h
    grid_frequency: float | None  # Hz
    grid_present: bool | None
    import_price: float | None  # AUD/kWh now
    export_price: float | None  # AUD/kWh now
    next_action: str  # charge / discharge / idle / none
    next_action_at: str | None  # ISO 8601
    v2g_enabled: bool
    emergency_backup_mode: bool
    max_discharge_power: float  # kW
    min_departure_soc: float  # %
    backup_reserve_soc: float  # %
    dispatch_power: float  # kW, the manual dispatch running (+ charge, - discharge)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.__dict__)
        for key in ("v2g_enabled", "emergency_backup_mode", "grid_present"):
            if out[key] is not None:
                out[key] = "ON" if out[key] else "OFF"
        return out


@dataclass(frozen=True)
class Sensor:
    object_id: str
    name: str
    unit: str | None
    device_class: str | None
    state_class: str | None
    options: tuple[str, ...] = ()
    diagnostic: bool = False


CONNECTION_STATES = ("connected", "plugged", "disconnected")
ACTIONS = ("charge", "discharge", "idle", "none")

# Every numeric sensor has a state class (long-term statistics) and a device class, except the
# prices: Home Assistant has no device class for a price per kWh (monetary allows only the
# "total" state class). Text sensors are enums (no state class: Home Assistant refuses one on a
# non-numeric state); the vehicle model is a diagnostic text.
SENSORS: tuple[Sensor, ...] = (
    Sensor("battery_soc", "Battery SoC", "%", "battery", "measurement"),
    Sensor("available_capacity", "Available V2G energy", "kWh", "energy_storage", "measurement"),
    Sensor("charge_rate", "Charge rate", "kW", "power", "measurement"),
    Sensor("discharge_rate", "Discharge rate", "kW", "power", "measurement"),
    Sensor("energy_import", "Energy imported", "kWh", "energy", "total_increasing"),
    Sensor("energy_export", "Energy exported", "kWh", "energy", "total_increasing"),
    Sensor("backup_duration", "Backup duration", "h", "duration", "measurement"),
    Sensor("grid_frequency", "Grid frequency", "Hz", "frequency", "measurement"),
    Sensor("import_price", "Import price", "AUD/kWh", None, "measurement"),
    Sensor("export_price", "Export price", "AUD/kWh", None, "measurement"),
    Sensor("connection_status", "Connection", None, "enum", None, CONNECTION_STATES),
    Sensor("next_action", "Next planned action", None, "enum", None, ACTIONS),
    Sensor("next_action_at", "Next planned action at", None, "timestamp", None),
    Sensor("vehicle_model", "Vehicle model", None, None, None, diagnostic=True),
)
BINARY_SENSORS = (("grid_present", "Grid present", "power"),)
SWITCHES = (("v2g_enabled", "V2G enabled"), ("emergency_backup_mode", "Emergency backup"))
# object id, name, unit, device class, min, max, step
NUMBERS: tuple[tuple[str, str, str, str, float, float, float], ...] = (
    ("max_discharge_power", "Max discharge power", "kW", "power", 0.0, 50.0, 0.1),
    ("min_departure_soc", "Departure SoC", "%", "battery", 0.0, 100.0, 1.0),
    ("backup_reserve_soc", "Backup reserve SoC", "%", "battery", 0.0, 100.0, 1.0),
    ("dispatch_power", "Dispatch power", "kW", "power", -50.0, 50.0, 0.1),
)
ENTITY_COUNT = len(SENSORS) + len(BINARY_SENSORS) + len(SWITCHES) + len(NUMBERS)


def _node(vehicle_id: str) -> str:
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in vehicle_id)


def _entity_slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text.lower())


def discovery_messages(
    vehicle: VehicleRecord, prefix: str = "openv2g", discovery_prefix: str = "homeassistant"
) -> list[tuple[str, dict[str, Any]]]:
    """(topic, config) for every entity of the vehicle; publish retained."""
    node = _node(vehicle.id)
    state_topic = f"{prefix}/{node}/state"
    device = {
        "identifiers": [f"openv2g_{node}"],
        "name": vehicle.name or vehicle.id,
        "manufacturer": "OpenV2G",
        "model": f"{vehicle.capacity_kwh:g} kWh {vehicle.chemistry}",
    }

    def base(component: str, object_id: str, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "unique_id": f"openv2g_{node}_{object_id}",
            # Home Assistant 2025.10+ names the entity from this; 2025.4 drops the key it does
            # not know (discovery schemas remove extra keys) and names it device + entity name.
            # `object_id` is not sent: deprecated since 2025.10, refused from 2026.4.
            "default_entity_id": f"{component}.openv2g_{_entity_slug(node)}_{object_id}",
            "state_topic": state_topic,
            # null in the state JSON renders "None": Home Assistant's payload for unknown
            "value_template": f"{{{{ value_json.{object_id} }}}}",
            "availability_topic": f"{prefix}/status",
            "payload_available": ONLINE,
            "payload_not_available": OFFLINE,
            "device": device,
        }

    out: list[tuple[str, dict[str, Any]]] = []
    for sensor in SENSORS:
        config = add_sensor_fields(
            base("sensor", sensor.object_id, sensor.name),
            sensor.unit,
            sensor.device_class,
            sensor.state_class,
            sensor.options,
        )
        if sensor.diagnostic:
            config["entity_category"] = "diagnostic"
        out.append((f"{discovery_prefix}/sensor/{node}/{sensor.object_id}/config", config))
    for object_id, name, device_class in BINARY_SENSORS:
        config = base("binary_sensor", object_id, name)
        config.update(device_class=device_class, payload_on="ON", payload_off="OFF")
        out.append((f"{discovery_prefix}/binary_sensor/{node}/{object_id}/config", config))
    for object_id, name in SWITCHES:
        config = base("switch", object_id, name)
        config["command_topic"] = f"{prefix}/{node}/set/{object_id}"
        config["payload_on"], config["payload_off"] = "ON", "OFF"
        out.append((f"{discovery_prefix}/switch/{node}/{object_id}/config", config))
    for object_id, name, unit, device_class, low, high, step in NUMBERS:
        config = base("number", object_id, name)
        config.update(
            command_topic=f"{prefix}/{node}/set/{object_id}",
            unit_of_measurement=unit,
            device_class=device_class,
            min=low,
            max=high,
            step=step,
            mode="box",
        )
        out.append((f"{discovery_prefix}/number/{node}/{object_id}/config", config))
    return out


def _is_our_config(topic: str, body: bytes, discovery_prefix: str) -> bool:
    """A retained discovery config this bridge published (its unique_id says so)."""
    if not topic.startswith(f"{discovery_prefix}/") or not topic.endswith("/config") or not body:
        return False
    try:
        config = json.loads(body)
    except ValueError:
        return False
    return isinstance(config, dict) and str(config.get("unique_id", "")).startswith("openv2g_")


class HomeAssistantBridge:
    def __init__(
        self,
        v2g: V2gPort,
        *,
        prefix: str = "openv2g",
        discovery_prefix: str = "homeassistant",
        interval_s: float = 30.0,
        sites: SitesPort | None = None,
    ) -> None:
        self.v2g = v2g
        self.sites = sites
        self.prefix = prefix
        self.discovery_prefix = discovery_prefix
        self.interval_s = interval_s
        # What this connection has published retained: topic -> JSON text (configs once).
        self._configs: dict[str, str] = {}
        self._stale_states: dict[str, float] = {}  # topic -> when to clear it (monotonic)
        self.state_clear_delay_s = STATE_CLEAR_DELAY_S
        self.status_topic = f"{prefix}/status"
        self._state_of: dict[str, str] = {}  # config topic -> its entity's state topic
        self._wake = asyncio.Event()  # an envelope changed: publish now
        self._next_change: float | None = None  # monotonic: an envelope starts or ends

    async def vehicle_state(self, vehicle: VehicleRecord) -> VehicleState:
        now = self.v2g.now()
        ctx = await self.v2g.session_context(vehicle, now)
        soc = ctx.soc
        available = None
        if soc is not None:
            available = vehicle.capacity_kwh * max(
                0.0,
                soc - max(vehicle.soc_min, vehicle.driving_reserve_soc, vehicle.backup_reserve_soc),
            )
        power_kw = 0.0
        backup_h: float | None = None
        emergency = False
        grid_present: bool | None = None
        frequency: float | None = None
        if vehicle.station_id is not None:
            power_kw = await self.v2g.latest_power_kw(vehicle)
            backup = await self.v2g.backup_state(vehicle.station_id)
            backup_h = backup.backup_hours
            emergency = backup.emergency_backup
            grid_present = backup.grid_present
            frequency = await self.v2g.grid_frequency_hz(vehicle.station_id)
        imported, exported = await self.v2g.energy_registers_kwh(vehicle)
        price = await self.v2g.price_now()
        step = await self.v2g.next_action(vehicle)
        status = (
            "connected"
            if ctx.transaction is not None
            else ("plugged" if vehicle.station_id else "disconnected")
        )
        return VehicleState(
            battery_soc=None if soc is None else round(soc * 100.0, 1),
            available_capacity=None if available is None else round(available, 2),
            # + 0.0: no "-0.0 kW" on the dashboard
            charge_rate=round(max(power_kw, 0.0), 2) + 0.0,
            discharge_rate=round(max(-power_kw, 0.0), 2) + 0.0,
            energy_import=None if imported is None else round(imported, 3),
            energy_export=None if exported is None else round(exported, 3),
            connection_status=status,
            vehicle_model=vehicle.name or vehicle.id,
            backup_duration=None
            if backup_h is None or math.isinf(backup_h)
            else round(backup_h, 2),
            grid_frequency=None if frequency is None else round(frequency, 3),
            grid_present=grid_present,
            import_price=None if price is None else round(price[0] / 100.0, 5),
            export_price=None if price is None else round(price[1] / 100.0, 5),
            next_action=step.action,
            next_action_at=None if step.at is None else step.at.isoformat(),
            v2g_enabled=vehicle.v2g_enabled,
            emergency_backup_mode=emergency,
            max_discharge_power=vehicle.max_discharge_kw,
            min_departure_soc=round((ctx.target_soc) * 100.0, 1),
            backup_reserve_soc=round(vehicle.backup_reserve_soc * 100.0, 1),
            dispatch_power=round(await self.v2g.manual_dispatch_kw(vehicle.id), 2),
        )

    async def handle_command(self, topic: str, payload: bytes) -> bool:
        """Apply `<prefix>/<vehicle>/set/<entity>` at the station at once; False when the topic
        or value is not ours, or the station did not take it (the state then stays as it was)."""
        parts = topic.split("/")
        if len(parts) != 4 or parts[0] != self.prefix or parts[2] != "set":
            return False
        node, entity = parts[1], parts[3]
        text = payload.decode("utf-8", "replace").strip()
        vehicle = next((v for v in await self.v2g.list_vehicles() if _node(v.id) == node), None)
        if vehicle is None:
            return False
        try:
            if entity == "max_discharge_power":
                await self._apply(vehicle, max_discharge_kw=_finite(text))
            elif entity == "min_departure_soc":
                await self._apply(vehicle, target_soc=_finite(text) / 100.0)
            elif entity == "backup_reserve_soc":
                await self._apply(vehicle, backup_reserve_soc=_finite(text) / 100.0)
            elif entity == "v2g_enabled" and text in ("ON", "OFF"):
                await self._apply(vehicle, v2g_enabled=text == "ON")
            elif entity == "dispatch_power":
                result = await self.v2g.dispatch_vehicle(vehicle.id, _finite(text))
                if result.get("status") not in ("Accepted", "Unknown"):
                    raise CsmsError(f"station answered {result.get('status')}")
            elif entity == "emergency_backup_mode" and text in ("ON", "OFF"):
                if vehicle.station_id is None:
                    return False
                await self.v2g.set_emergency_backup(vehicle.station_id, text == "ON")
            else:
                return False
        except (ValueError, CsmsError) as exc:
            log.warning("Home Assistant command %s=%r refused: %s", topic, text, exc)
            return False
        return True

    async def _apply(self, vehicle: VehicleRecord, **changes: Any) -> None:
        applied = await self.v2g.apply_vehicle_settings(vehicle.id, **changes)
        log.info("Home Assistant %s on %s: %s", changes, vehicle.id, applied.status)

    async def messages(self) -> list[tuple[str, dict[str, Any]]]:
        """Discovery configs and states of every vehicle, to publish retained."""
        out: list[tuple[str, dict[str, Any]]] = []
        for vehicle in await self.v2g.list_vehicles():
            out.extend(discovery_messages(vehicle, self.prefix, self.discovery_prefix))
            state = await self.vehicle_state(vehicle)
            out.append((f"{self.prefix}/{_node(vehicle.id)}/state", state.to_json()))
        if self.sites is not None:
            out.extend(await self._site_messages(self.sites))
        return out

    async def _site_messages(self, sites: SitesPort) -> list[tuple[str, dict[str, Any]]]:
        out: list[tuple[str, dict[str, Any]]] = []
        soonest: float | None = None
        for site in await sites.list_sites():
            try:
                view = await sites.envelope_view(site.id)
            except CsmsError as exc:  # deleted meanwhile: gone at the next round
                log.info("site %s skipped: %s", site.id, exc)
                continue
            out.extend(site_discovery_messages(site, self.prefix, self.discovery_prefix))
            out.append((site_state_topic(site.id, self.prefix), site_state(view)))
            change = next_change(view)
            if change is not None:
                delay = (change - view.now).total_seconds()
                soonest = delay if soonest is None else min(soonest, delay)
        self._next_change = None if soonest is None else time.monotonic() + soonest
        return out

    async def envelope_changed(self, site_id: str, station_ids: Sequence[str] = ()) -> None:
        """A site's envelopes changed (a listener of the envelope service): publish now."""
        self._wake.set()

    async def changes(self) -> list[tuple[str, bytes]]:
        """What to publish now (retained): each state; a config only when new or changed;
        an empty payload for each config and state of a vehicle that is gone."""
        # States of deleted vehicles, cleared STATE_CLEAR_DELAY_S after their configs: an empty
        # state while Home Assistant still has the entities would be a template error there.
        moment = time.monotonic()
        due = sorted(t for t, at in self._stale_states.items() if at <= moment)
        out: list[tuple[str, bytes]] = [(topic, b"") for topic in due]
        for topic in due:
            del self._stale_states[topic]
        current: dict[str, str] = {}
        for topic, body in await self.messages():
            text = json.dumps(body, sort_keys=True)
            if topic.endswith("/config"):
                current[topic] = text
                if isinstance(body.get("state_topic"), str):
                    self._state_of[topic] = body["state_topic"]
                if self._configs.get(topic) == text:
                    continue
            out.append((topic, text.encode()))
        for topic in sorted(self._configs.keys() - current.keys()):
            out.append((topic, b""))  # the vehicle was deleted: Home Assistant removes it
            state = self._state_of.pop(topic, None) or f"{self.prefix}/{topic.split('/')[-3]}/state"
            self._stale_states.setdefault(state, moment + self.state_clear_delay_s)
        self._configs = current
        return out

    def forget_config(self, topic: str, state_topic: str | None = None) -> None:
        """A retained config of ours seen on the broker that this bridge did not publish: clear
        it at the next round unless a vehicle (or site) still has it (left by a deleted one
        while the CSMS was down)."""
        self._configs.setdefault(topic, "")
        if state_topic is not None and state_topic.startswith(f"{self.prefix}/"):
            self._state_of.setdefault(topic, state_topic)

    async def run(self, mqtt_url: str) -> None:
        """Publish and listen until cancelled (reconnects after a lost broker)."""
        import aiomqtt

        parts = urlsplit(mqtt_url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 1883
        will = aiomqtt.Will(self.status_topic, OFFLINE, qos=1, retain=True)
        while True:
            try:
                async with aiomqtt.Client(
                    host, port, username=parts.username, password=parts.password, will=will
                ) as client:
                    self._configs = {}
                    await client.subscribe(f"{self.prefix}/+/set/+")
                    if self.sites is not None and self.sites.record_meter is not None:
                        await client.subscribe(f"{self.prefix}/sites/+/set/{METER_COMMAND}")
                    # Retained configs on the broker: ours of deleted vehicles get cleared.
                    await client.subscribe(f"{self.discovery_prefix}/+/+/+/config")
                    await client.publish(self.status_topic, ONLINE, qos=1, retain=True)
                    publisher = asyncio.create_task(self._publish_forever(client))
                    try:
                        async for message in client.messages:
                            body = message.payload
                            raw = body if isinstance(body, bytes) else str(body).encode()
                            topic = str(message.topic)
                            if topic.startswith(f"{self.discovery_prefix}/"):
                                if message.retain and _is_our_config(
                                    topic, raw, self.discovery_prefix
                                ):
                                    self.forget_config(topic, _state_topic_of(raw))
                                continue
                            if topic.startswith(f"{self.prefix}/sites/"):
                                await handle_meter_command(
                                    self.sites, self.prefix, topic, raw, self.v2g.now()
                                )
                                continue  # a meter reading: nothing to publish for it
                            # Applied or refused: publish the state the station runs now
                            # (a refused switch flips back in Home Assistant).
                            await self.handle_command(topic, raw)
                            await self._publish_once(client)
                    finally:
                        publisher.cancel()
                        with contextlib.suppress(aiomqtt.MqttError):
                            await client.publish(self.status_topic, OFFLINE, qos=1, retain=True)
            except aiomqtt.MqttError as exc:
                log.warning("MQTT broker %s: %s; retrying in 5 s", redact_url(mqtt_url), exc)
                await asyncio.sleep(5.0)

    async def _publish_once(self, client: Any) -> None:
        for topic, body in await self.changes():
            await client.publish(topic, body, qos=1, retain=True)

    async def _publish_forever(self, client: Any) -> None:
        while True:
            try:
                await self._publish_once(client)
            except CsmsError as exc:
                log.warning("Home Assistant state not published: %s", exc)
            # Until the interval ends, an envelope changes, or one starts or ends (+ a margin:
            # the envelope service reads its own clock).
            wait = self.interval_s
            if self._next_change is not None:
                wait = min(wait, max(0.0, self._next_change - time.monotonic()) + 0.5)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
            self._wake.clear()


def _state_topic_of(body: bytes) -> str | None:
    try:
        found = json.loads(body).get("state_topic")
    except (ValueError, AttributeError):
        return None
    return found if isinstance(found, str) else None


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {text!r}")
    return value


def start_bridge(
    settings: HomeAssistantSettings,
    v2g: V2gPort,
    sites: SitesPort | None = None,
    on_envelope_change: Callable[[Callable[[str, Sequence[str]], Awaitable[None]]], None]
    | None = None,
) -> asyncio.Task[None] | None:
    """The bridge running as a task when `settings.mqtt_url` is set, else None. With `sites`,
    a device per site; `on_envelope_change` registers the bridge's envelope listener."""
    if not settings.mqtt_url:
        return None
    bridge = HomeAssistantBridge(
        v2g,
        prefix=settings.mqtt_topic_prefix,
        discovery_prefix=settings.mqtt_discovery_prefix,
        interval_s=settings.mqtt_state_interval_s,
        sites=sites,
    )
    if on_envelope_change is not None:
        on_envelope_change(bridge.envelope_changed)
    return asyncio.create_task(bridge.run(settings.mqtt_url), name="v2g-home-assistant")


async def stop_bridge(task: asyncio.Task[None] | None) -> None:
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
