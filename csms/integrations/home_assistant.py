"""Home Assistant over MQTT: per-vehicle entities by MQTT discovery, their state, and commands.

Home Assistant's MQTT discovery: a retained JSON config on
`<discovery_prefix>/<component>/<node_id>/<object_id>/config` creates an entity; here every
entity of a vehicle reads one retained JSON state on `<prefix>/<vehicle_id>/state` (through a
`value_template`), and settable entities write to `<prefix>/<vehicle_id>/set/<object_id>`.

Entities (the seed's): sensors battery_soc, available_capacity, charge_rate, discharge_rate,
connection_status, vehicle_model, backup_duration; switches v2g_enabled, emergency_backup_mode;
numbers max_discharge_power, min_departure_soc, backup_reserve_soc.

`HomeAssistantBridge.run()` publishes discovery and state every `interval_s` and applies the
commands it receives through the V2G service (`V2gPort`, the few calls it makes). Off unless
CSMS_MQTT_URL is set (mqtt://host:port): csms/app.py starts it with `start_bridge`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

from pydantic import BaseModel

from csms.domain.errors import CsmsError
from csms.domain.v2g_records import VehicleRecord
from csms.services.redaction import redact_url
from csms.services.v2g.records import BackupState, SessionContext
from csms.settings import Settings

log = logging.getLogger(__name__)


class V2gPort(Protocol):
    """What the bridge needs of the V2G service."""

    def now(self) -> datetime: ...

    async def session_context(self, record: VehicleRecord, now: datetime) -> SessionContext: ...

    async def latest_power_kw(self, record: VehicleRecord) -> float: ...

    async def backup_state(
        self, station_id: str, house_load_kw: float | None = None
    ) -> BackupState: ...

    async def list_vehicles(self, station_id: str | None = None) -> list[VehicleRecord]: ...

    async def update_vehicle(self, vehicle_id: str, **changes: Any) -> VehicleRecord: ...

    async def set_emergency_backup(self, station_id: str, enabled: bool) -> dict[str, Any]: ...


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
    """What the entities show (one retained JSON)."""

    battery_soc: float | None  # %
    available_capacity: float | None  # kWh above the reserve
    charge_rate: float  # kW
    discharge_rate: float  # kW
    connection_status: str  # connected / plugged / disconnected
    vehicle_model: str
    backup_duration: float | None  # h
    v2g_enabled: bool
    emergency_backup_mode: bool
    max_discharge_power: float  # kW
    min_departure_soc: float  # %
    backup_reserve_soc: float  # %

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.__dict__)
        out["v2g_enabled"] = "ON" if self.v2g_enabled else "OFF"
        out["emergency_backup_mode"] = "ON" if self.emergency_backup_mode else "OFF"
        return out


_SENSORS: tuple[tuple[str, str, str | None, str | None], ...] = (
    # object id, name, unit, device class
    ("battery_soc", "Battery SoC", "%", "battery"),
    ("available_capacity", "Available V2G energy", "kWh", "energy_storage"),
    ("charge_rate", "Charge rate", "kW", "power"),
    ("discharge_rate", "Discharge rate", "kW", "power"),
    ("connection_status", "Connection", None, None),
    ("vehicle_model", "Vehicle model", None, None),
    ("backup_duration", "Backup duration", "h", "duration"),
)
_SWITCHES = (("v2g_enabled", "V2G enabled"), ("emergency_backup_mode", "Emergency backup"))
_NUMBERS: tuple[tuple[str, str, str, float, float, float], ...] = (
    # object id, name, unit, min, max, step
    ("max_discharge_power", "Max discharge power", "kW", 0.0, 50.0, 0.1),
    ("min_departure_soc", "Departure SoC", "%", 0.0, 100.0, 1.0),
    ("backup_reserve_soc", "Backup reserve SoC", "%", 0.0, 100.0, 1.0),
)


def _node(vehicle_id: str) -> str:
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in vehicle_id)


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

    def base(object_id: str, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "unique_id": f"openv2g_{node}_{object_id}",
            "object_id": f"{node}_{object_id}",
            "state_topic": state_topic,
            "value_template": f"{{{{ value_json.{object_id} }}}}",
            "device": device,
        }

    out: list[tuple[str, dict[str, Any]]] = []
    for object_id, name, unit, device_class in _SENSORS:
        config = base(object_id, name)
        if unit is not None:
            config["unit_of_measurement"] = unit
        if device_class is not None:
            config["device_class"] = device_class
        out.append((f"{discovery_prefix}/sensor/{node}/{object_id}/config", config))
    for object_id, name in _SWITCHES:
        config = base(object_id, name)
        config["command_topic"] = f"{prefix}/{node}/set/{object_id}"
        config["payload_on"], config["payload_off"] = "ON", "OFF"
        out.append((f"{discovery_prefix}/switch/{node}/{object_id}/config", config))
    for object_id, name, unit, low, high, step in _NUMBERS:
        config = base(object_id, name)
        config.update(
            command_topic=f"{prefix}/{node}/set/{object_id}",
            unit_of_measurement=unit,
            min=low,
            max=high,
            step=step,
        )
        out.append((f"{discovery_prefix}/number/{node}/{object_id}/config", config))
    return out


class HomeAssistantBridge:
    def __init__(
        self,
        v2g: V2gPort,
        *,
        prefix: str = "openv2g",
        discovery_prefix: str = "homeassistant",
        interval_s: float = 30.0,
    ) -> None:
        self.v2g = v2g
        self.prefix = prefix
        self.discovery_prefix = discovery_prefix
        self.interval_s = interval_s
        # V2G switched off by Home Assistant: the discharge power to give back when on again.
        self._paused_discharge_kw: dict[str, float] = {}

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
        if vehicle.station_id is not None:
            power_kw = await self.v2g.latest_power_kw(vehicle)
            backup = await self.v2g.backup_state(vehicle.station_id)
            backup_h = backup.backup_hours
            emergency = backup.emergency_backup
        status = (
            "connected"
            if ctx.transaction is not None
            else ("plugged" if vehicle.station_id else "disconnected")
        )
        return VehicleState(
            battery_soc=None if soc is None else round(soc * 100.0, 1),
            available_capacity=None if available is None else round(available, 2),
            charge_rate=round(max(power_kw, 0.0), 2),
            discharge_rate=round(max(-power_kw, 0.0), 2),
            connection_status=status,
            vehicle_model=vehicle.name or vehicle.id,
            backup_duration=None
            if backup_h is None or math.isinf(backup_h)
            else round(backup_h, 2),
            v2g_enabled=vehicle.id not in self._paused_discharge_kw
            and vehicle.max_discharge_kw > 0,
            emergency_backup_mode=emergency,
            max_discharge_power=vehicle.max_discharge_kw,
            min_departure_soc=round((ctx.target_soc) * 100.0, 1),
            backup_reserve_soc=round(vehicle.backup_reserve_soc * 100.0, 1),
        )

    async def handle_command(self, topic: str, payload: bytes) -> bool:
        """Apply `<prefix>/<vehicle>/set/<entity>`; False when the topic or value is not ours."""
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
                await self.v2g.update_vehicle(vehicle.id, max_discharge_kw=float(text))
            elif entity == "min_departure_soc":
                await self.v2g.update_vehicle(vehicle.id, target_soc=float(text) / 100.0)
            elif entity == "backup_reserve_soc":
                await self.v2g.update_vehicle(vehicle.id, backup_reserve_soc=float(text) / 100.0)
            elif entity == "v2g_enabled" and text in ("ON", "OFF"):
                await self._set_v2g_enabled(vehicle, text == "ON")
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

    async def _set_v2g_enabled(self, vehicle: VehicleRecord, enabled: bool) -> None:
        if enabled and vehicle.id in self._paused_discharge_kw:
            restore = self._paused_discharge_kw.pop(vehicle.id)
            await self.v2g.update_vehicle(vehicle.id, max_discharge_kw=restore)
        elif not enabled and vehicle.id not in self._paused_discharge_kw:
            self._paused_discharge_kw[vehicle.id] = vehicle.max_discharge_kw
            await self.v2g.update_vehicle(vehicle.id, max_discharge_kw=0.0)

    async def messages(self) -> list[tuple[str, dict[str, Any]]]:
        """Discovery configs and states of every vehicle, to publish retained."""
        out: list[tuple[str, dict[str, Any]]] = []
        for vehicle in await self.v2g.list_vehicles():
            out.extend(discovery_messages(vehicle, self.prefix, self.discovery_prefix))
            state = await self.vehicle_state(vehicle)
            out.append((f"{self.prefix}/{_node(vehicle.id)}/state", state.to_json()))
        return out

    async def run(self, mqtt_url: str) -> None:
        """Publish and listen until cancelled (reconnects after a lost broker)."""
        import aiomqtt

        parts = urlsplit(mqtt_url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 1883
        while True:
            try:
                async with aiomqtt.Client(
                    host, port, username=parts.username, password=parts.password
                ) as client:
                    await client.subscribe(f"{self.prefix}/+/set/+")
                    publisher = asyncio.create_task(self._publish_forever(client))
                    try:
                        async for message in client.messages:
                            body = message.payload
                            raw = body if isinstance(body, bytes) else str(body).encode()
                            if await self.handle_command(str(message.topic), raw):
                                await self._publish_once(client)
                    finally:
                        publisher.cancel()
            except aiomqtt.MqttError as exc:
                log.warning("MQTT broker %s: %s; retrying in 5 s", redact_url(mqtt_url), exc)
                await asyncio.sleep(5.0)

    async def _publish_once(self, client: Any) -> None:
        for topic, body in await self.messages():
            await client.publish(topic, json.dumps(body), retain=True)

    async def _publish_forever(self, client: Any) -> None:
        while True:
            try:
                await self._publish_once(client)
            except CsmsError as exc:
                log.warning("Home Assistant state not published: %s", exc)
            await asyncio.sleep(self.interval_s)


def start_bridge(settings: HomeAssistantSettings, v2g: V2gPort) -> asyncio.Task[None] | None:
    """The bridge running as a task when `settings.mqtt_url` is set, else None."""
    if not settings.mqtt_url:
        return None
    bridge = HomeAssistantBridge(
        v2g,
        prefix=settings.mqtt_topic_prefix,
        discovery_prefix=settings.mqtt_discovery_prefix,
        interval_s=settings.mqtt_state_interval_s,
    )
    return asyncio.create_task(bridge.run(settings.mqtt_url), name="v2g-home-assistant")


async def stop_bridge(task: asyncio.Task[None] | None) -> None:
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
