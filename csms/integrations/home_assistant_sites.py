"""Home Assistant over MQTT: one device per site (issue 18) showing its operating envelope.

Entities of a site (all read-only, one retained JSON state on `<prefix>/sites/<node>/state`):
- sensors export_limit, import_limit, generation_limit, load_limit (kW; unknown = the envelope
  sets no such limit), ramp_rate (% of rated power per second), envelope_source (csip-aus /
  operator / none), control_id, envelope_start / envelope_end / envelope_received (timestamps;
  the end unknown = open-ended), charger_max_charge / charger_max_discharge (kW: what the
  envelope leaves the site's chargers together);
- binary sensors energized and connected: ON unless the envelope in force says
  de-energise / disconnect (no envelope, or one that does not set them, allows transfer).

The household meter (csms.services.site_meters) can be fed from Home Assistant: an automation
publishes the grid power sensor's state (W, + import, - export) to
`<prefix>/sites/<node>/set/grid_power`, or a JSON object {"grid_import_w": W} or
{"load_w": W, "solar_w": W}, optionally with "timestamp" (ISO 8601 with offset; else the time
the CSMS received it). `parse_meter_command` checks it (at most MAX_METER_PAYLOAD bytes, finite,
bounded: csms.domain.site_meter) and the bridge hands it to `SitesPort.record_meter`.

The site topics sit one level deeper than the vehicles' (`<prefix>/<vehicle>/state`), so no
vehicle id can collide with a site. The bridge (csms/integrations/home_assistant.py) publishes
configs and states with the vehicles', clears a deleted site's like a deleted vehicle's, and
publishes again as soon as an envelope changes (`SitesPort` listener) or one starts or ends.
Pure apart from the port: the functions here build messages from what the port returns.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from csms.domain.envelopes import ChargerBounds, OperatingEnvelope
from csms.domain.errors import CsmsError
from csms.domain.site_meter import MeterReading, MeterReadingError, reading_from
from csms.domain.sites import Site
from csms.integrations.ha_discovery import OFFLINE, ONLINE, add_sensor_fields

log = logging.getLogger(__name__)

SOURCES = ("csip-aus", "operator", "none", "other")
MAX_TEXT = 255  # Home Assistant refuses a state longer than this
MAX_METER_PAYLOAD = 512  # bytes: one reading
METER_COMMAND = "grid_power"


class SiteEnvelopeView(Protocol):
    """What the bridge reads of GET /sites/{id}/envelope (csms.services.envelopes)."""

    @property
    def now(self) -> datetime: ...

    @property
    def in_force(self) -> OperatingEnvelope | None: ...

    @property
    def charger_bounds(self) -> ChargerBounds: ...

    @property
    def upcoming(self) -> Sequence[OperatingEnvelope]: ...


@dataclass(frozen=True)
class SitesPort:
    """What the bridge reads of the sites: csms.services.sites.SiteService.all and
    csms.services.envelopes.EnvelopeService.view in the CSMS (csms/app.py)."""

    list_sites: Callable[[], Awaitable[list[Site]]]
    envelope_view: Callable[[str], Awaitable[SiteEnvelopeView]]
    # csms.services.site_meters.SiteMeterService.record: None = no meter commands
    record_meter: Callable[[MeterReading], Awaitable[object]] | None = None


@dataclass(frozen=True)
class SiteSensor:
    object_id: str
    name: str
    unit: str | None
    device_class: str | None
    state_class: str | None
    options: tuple[str, ...] = ()


SITE_SENSORS: tuple[SiteSensor, ...] = (
    SiteSensor("export_limit", "Envelope export limit", "kW", "power", "measurement"),
    SiteSensor("import_limit", "Envelope import limit", "kW", "power", "measurement"),
    SiteSensor("generation_limit", "Envelope generation limit", "kW", "power", "measurement"),
    SiteSensor("load_limit", "Envelope load limit", "kW", "power", "measurement"),
    SiteSensor("ramp_rate", "Envelope ramp rate", "%/s", None, "measurement"),
    SiteSensor("charger_max_charge", "Chargers max charge", "kW", "power", "measurement"),
    SiteSensor("charger_max_discharge", "Chargers max discharge", "kW", "power", "measurement"),
    SiteSensor("envelope_source", "Envelope source", None, "enum", None, SOURCES),
    SiteSensor("control_id", "Envelope control id", None, None, None),
    SiteSensor("envelope_start", "Envelope start", None, "timestamp", None),
    SiteSensor("envelope_end", "Envelope end", None, "timestamp", None),
    SiteSensor("envelope_received", "Envelope received", None, "timestamp", None),
)
SITE_BINARY_SENSORS = (
    ("energized", "Energized", "power"),
    ("connected", "Connected", "connectivity"),
)
SITE_ENTITY_COUNT = len(SITE_SENSORS) + len(SITE_BINARY_SENSORS)


def site_node(site_id: str) -> str:
    """The discovery node id (site ids allow '.', Home Assistant's node ids do not)."""
    return "site_" + "".join(c if c.isalnum() or c in "_-" else "_" for c in site_id)


def site_state_topic(site_id: str, prefix: str = "openv2g") -> str:
    return f"{prefix}/sites/{site_node(site_id)}/state"


def site_discovery_messages(
    site: Site, prefix: str = "openv2g", discovery_prefix: str = "homeassistant"
) -> list[tuple[str, dict[str, Any]]]:
    """(topic, config) for every entity of the site; publish retained."""
    node = site_node(site.id)
    slug = "".join(c if c.isalnum() else "_" for c in node.lower())
    device = {
        "identifiers": [f"openv2g_{node}"],
        "name": site.name,
        "manufacturer": "OpenV2G",
        "model": f"Site, NMI {site.nmi}" if site.nmi else "Site",
    }

    def base(component: str, object_id: str, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "unique_id": f"openv2g_{node}_{object_id}",
            "default_entity_id": f"{component}.openv2g_{slug}_{object_id}",
            "state_topic": site_state_topic(site.id, prefix),
            "value_template": f"{{{{ value_json.{object_id} }}}}",
            "availability_topic": f"{prefix}/status",
            "payload_available": ONLINE,
            "payload_not_available": OFFLINE,
            "device": device,
        }

    out: list[tuple[str, dict[str, Any]]] = []
    for sensor in SITE_SENSORS:
        config = add_sensor_fields(
            base("sensor", sensor.object_id, sensor.name),
            sensor.unit,
            sensor.device_class,
            sensor.state_class,
            sensor.options,
        )
        out.append((f"{discovery_prefix}/sensor/{node}/{sensor.object_id}/config", config))
    for object_id, name, device_class in SITE_BINARY_SENSORS:
        config = base("binary_sensor", object_id, name)
        config.update(device_class=device_class, payload_on="ON", payload_off="OFF")
        out.append((f"{discovery_prefix}/binary_sensor/{node}/{object_id}/config", config))
    return out


def _kw(watts: float | None) -> float | None:
    if watts is None or not math.isfinite(watts):
        return None
    return round(watts / 1000.0, 3) + 0.0  # + 0.0: no "-0.0"


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def site_state(view: SiteEnvelopeView) -> dict[str, Any]:
    """The site's state JSON: the envelope in force and the chargers' bounds under it."""
    e = view.in_force
    bounds = view.charger_bounds
    source = "none" if e is None else (e.source if e.source in SOURCES else "other")
    return {
        "export_limit": None if e is None else _kw(e.export_limit_w),
        "import_limit": None if e is None else _kw(e.import_limit_w),
        "generation_limit": None if e is None else _kw(e.generation_limit_w),
        "load_limit": None if e is None else _kw(e.load_limit_w),
        "ramp_rate": None if e is None else e.ramp_rate_pct_per_s,
        "charger_max_charge": _kw(bounds.max_charge_w),
        "charger_max_discharge": _kw(bounds.max_discharge_w),
        "envelope_source": source,
        "control_id": None if e is None or e.control_id is None else e.control_id[:MAX_TEXT],
        "envelope_start": None if e is None else _iso(e.start),
        "envelope_end": None if e is None else _iso(e.end),
        "envelope_received": None if e is None else _iso(e.received_at),
        "energized": "OFF" if e is not None and e.energize is False else "ON",
        "connected": "OFF" if e is not None and e.connect is False else "ON",
    }


def next_change(view: SiteEnvelopeView) -> datetime | None:
    """The next moment the envelope in force may change by itself (an envelope starting or
    ending), None when none is known in the view's horizon."""
    moments = [
        edge
        for e in (*view.upcoming, *([view.in_force] if view.in_force else []))
        for edge in (e.start, e.end)
        if edge is not None and edge > view.now
    ]
    return min(moments, default=None)


def site_meter_topic(site_id: str, prefix: str = "openv2g") -> str:
    """Where Home Assistant publishes the site's grid power (see the module doc)."""
    return f"{prefix}/sites/{site_node(site_id)}/set/{METER_COMMAND}"


def parse_meter_command(site_id: str, payload: bytes, received_at: datetime) -> MeterReading:
    """The reading a meter command carries; MeterReadingError when it is not one."""
    if len(payload) > MAX_METER_PAYLOAD:
        raise MeterReadingError(f"a meter payload is at most {MAX_METER_PAYLOAD} bytes")
    text = payload.decode("utf-8", "replace").strip()
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise MeterReadingError(f"not a number of W or a JSON object: {text[:40]!r}") from exc
    if isinstance(body, bool):
        raise MeterReadingError("a meter reading is a number of W, not a boolean")
    if isinstance(body, int | float):
        body = {"grid_import_w": body}
    if not isinstance(body, dict):
        raise MeterReadingError("a meter reading is a number of W or a JSON object")
    unknown = set(body) - {"grid_import_w", "load_w", "solar_w", "timestamp"}
    if unknown:
        raise MeterReadingError(f"unknown fields: {', '.join(sorted(unknown))[:80]}")
    measured_at = received_at
    if body.get("timestamp") is not None:
        try:
            measured_at = datetime.fromisoformat(str(body["timestamp"]))
        except ValueError as exc:
            raise MeterReadingError("timestamp: ISO 8601 with an offset") from exc

    def watts(name: str) -> float | None:
        value = body.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise MeterReadingError(f"{name} must be a number of W")
        return float(value)

    return reading_from(
        site_id,
        measured_at=measured_at,
        received_at=received_at,
        source="mqtt",
        grid_import_w=watts("grid_import_w"),
        load_w=watts("load_w"),
        solar_w=watts("solar_w"),
    )


async def handle_meter_command(
    sites: SitesPort | None, prefix: str, topic: str, payload: bytes, now: datetime
) -> bool:
    """`<prefix>/sites/<node>/set/grid_power`: the site's household meter reading recorded;
    False when the topic is not one, the site is unknown or the reading refused."""
    parts = topic.split("/")
    if (
        len(parts) != 5
        or parts[0] != prefix
        or parts[1] != "sites"
        or parts[3] != "set"
        or parts[4] != METER_COMMAND
        or sites is None
        or sites.record_meter is None
    ):
        return False
    site = next((s for s in await sites.list_sites() if site_node(s.id) == parts[2]), None)
    if site is None:
        return False
    try:
        await sites.record_meter(parse_meter_command(site.id, payload, now))
    except (ValueError, CsmsError) as exc:  # MeterReadingError is a ValueError
        log.warning("Home Assistant meter reading for %s refused: %s", site.id, exc)
        return False
    return True
