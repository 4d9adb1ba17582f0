"""Home Assistant site devices (issue 18): discovery configs, the state built from the envelope
in force, when the bridge must look again, and configs cleared when a site is deleted."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from csms.domain.envelopes import ChargerBounds, OperatingEnvelope
from csms.domain.errors import NotFound
from csms.domain.sites import Site
from csms.integrations.home_assistant import SENSORS, HomeAssistantBridge
from csms.integrations.home_assistant_sites import (
    SITE_ENTITY_COUNT,
    SitesPort,
    next_change,
    site_discovery_messages,
    site_state,
    site_state_topic,
)

NOW = datetime(2026, 12, 6, 18, 0, tzinfo=UTC)
HOME = Site(id="home.1", name="Home <b>1</b>", nmi="4102000000", station_ids=("CS1",))


@dataclass(frozen=True)
class View:
    now: datetime
    in_force: OperatingEnvelope | None
    charger_bounds: ChargerBounds
    upcoming: Sequence[OperatingEnvelope] = ()


def envelope(**changes: object) -> OperatingEnvelope:
    values: dict[str, object] = dict(
        site_id="home.1",
        source="csip-aus",
        control_id="DERC-77",
        is_default=False,
        start=NOW - timedelta(minutes=5),
        end=NOW + timedelta(minutes=25),
        received_at=NOW - timedelta(minutes=10),
        export_limit_w=1500.0,
        import_limit_w=10_000.0,
    )
    values.update(changes)
    return OperatingEnvelope(**values)  # type: ignore[arg-type]


def test_discovery_one_device_per_site_with_every_entity_once() -> None:
    messages = site_discovery_messages(HOME, "openv2g", "homeassistant")
    topics = [t for t, _ in messages]
    assert len(topics) == len(set(topics)) == SITE_ENTITY_COUNT
    by_id = {c["unique_id"].removeprefix("openv2g_site_home_1_"): c for _, c in messages}
    # The node id has no '.', the state topic is the sites' own level (no vehicle collides).
    assert "homeassistant/sensor/site_home_1/export_limit/config" in topics
    assert all(c["state_topic"] == "openv2g/sites/site_home_1/state" for _, c in messages)
    assert all(c["device"]["identifiers"] == ["openv2g_site_home_1"] for _, c in messages)
    assert by_id["export_limit"]["device"]["name"] == "Home <b>1</b>"  # JSON, not markup
    assert by_id["export_limit"]["device"]["model"] == "Site, NMI 4102000000"
    for name in ("envelope_start", "envelope_end", "envelope_received"):
        assert by_id[name]["device_class"] == "timestamp"
        assert "state_class" not in by_id[name]
    assert by_id["envelope_source"]["options"] == ["csip-aus", "operator", "none", "other"]
    for name in ("export_limit", "import_limit", "charger_max_charge", "charger_max_discharge"):
        assert (by_id[name]["device_class"], by_id[name]["unit_of_measurement"]) == ("power", "kW")
    assert by_id["energized"]["device_class"] == "power"
    assert by_id["connected"]["device_class"] == "connectivity"
    assert {c["payload_on"] for c in (by_id["energized"], by_id["connected"])} == {"ON"}
    for topic, config in messages:
        assert config["availability_topic"] == "openv2g/status"
        assert config["default_entity_id"].startswith(f"{topic.split('/')[1]}.openv2g_site_")
    # No site entity shares an object id with a vehicle entity.
    assert not set(by_id) & {s.object_id for s in SENSORS}


def test_state_shows_the_envelope_in_force_its_source_and_time() -> None:
    view = View(NOW, envelope(ramp_rate_pct_per_s=0.5), ChargerBounds(7000.0, 1500.0))
    state = site_state(view)
    assert state == {
        "export_limit": 1.5,
        "import_limit": 10.0,
        "generation_limit": None,
        "load_limit": None,
        "ramp_rate": 0.5,
        "charger_max_charge": 7.0,
        "charger_max_discharge": 1.5,
        "envelope_source": "csip-aus",
        "control_id": "DERC-77",
        "envelope_start": "2026-12-06T17:55:00+00:00",
        "envelope_end": "2026-12-06T18:25:00+00:00",
        "envelope_received": "2026-12-06T17:50:00+00:00",
        "energized": "ON",
        "connected": "ON",
    }


def test_state_de_energised_open_ended_operator_and_no_envelope() -> None:
    off = envelope(source="operator", control_id=None, energize=False, end=None)
    state = site_state(View(NOW, off, ChargerBounds(0.0, 0.0)))
    assert (state["envelope_source"], state["control_id"], state["envelope_end"]) == (
        "operator",
        None,
        None,
    )
    assert (state["energized"], state["connected"]) == ("OFF", "ON")
    assert site_state(View(NOW, envelope(connect=False), ChargerBounds(0, 0)))["connected"] == "OFF"
    none = site_state(View(NOW, None, ChargerBounds(22_000.0, 22_000.0)))
    assert none["envelope_source"] == "none"
    assert none["export_limit"] is None and none["envelope_start"] is None
    assert (none["energized"], none["connected"]) == ("ON", "ON")  # nothing forbids transfer
    assert none["charger_max_discharge"] == 22.0
    # A source the enum does not know would be an error in Home Assistant; a long id too.
    odd = site_state(View(NOW, envelope(source="x" * 9, control_id="c" * 400), ChargerBounds(0, 0)))
    assert odd["envelope_source"] == "other" and len(odd["control_id"]) == 255


def test_next_change_is_the_nearest_start_or_end_to_come() -> None:
    later = envelope(start=NOW + timedelta(minutes=40), end=NOW + timedelta(hours=2))
    view = View(NOW, envelope(), ChargerBounds(0, 0), upcoming=(envelope(), later))
    assert next_change(view) == NOW + timedelta(minutes=25)  # the one in force ends
    assert next_change(View(NOW, None, ChargerBounds(0, 0), upcoming=(later,))) == later.start
    assert next_change(View(NOW, envelope(end=None), ChargerBounds(0, 0))) is None


@dataclass
class FakeSites:
    sites: list[Site]
    views: dict[str, View] = field(default_factory=dict)

    async def list_sites(self) -> list[Site]:
        return list(self.sites)

    async def view(self, site_id: str) -> View:
        if site_id not in self.views:
            raise NotFound(site_id)
        return self.views[site_id]


class NoVehicles:
    async def list_vehicles(self, station_id: str | None = None) -> list[object]:
        return []


async def test_bridge_publishes_site_configs_once_and_clears_a_deleted_site() -> None:
    fake = FakeSites([HOME], {"home.1": View(NOW, envelope(), ChargerBounds(7000.0, 1500.0))})
    bridge = HomeAssistantBridge(
        NoVehicles(),  # type: ignore[arg-type]
        sites=SitesPort(list_sites=fake.list_sites, envelope_view=fake.view),
    )
    bridge.state_clear_delay_s = 0.0
    state_topic = site_state_topic("home.1")
    first = dict(await bridge.changes())
    configs = [t for t in first if t.endswith("/config")]
    assert len(configs) == SITE_ENTITY_COUNT
    assert b'"export_limit": 1.5' in first[state_topic]
    fake.views["home.1"] = View(NOW, None, ChargerBounds(7000.0, 7000.0))
    second = dict(await bridge.changes())
    assert list(second) == [state_topic]  # the state again (now no envelope), configs not
    assert b'"envelope_source": "none"' in second[state_topic]
    fake.sites.clear()
    gone = dict(await bridge.changes())
    assert set(gone) == set(configs) and not any(gone.values())
    assert await bridge.changes() == [(state_topic, b"")]  # its state, once the entities are gone
    # A site listed but deleted before its view is read: skipped, not an error.
    fake.sites.append(Site(id="gone", name="Gone"))
    assert await bridge.changes() == []


async def test_envelope_change_wakes_the_publisher() -> None:
    bridge = HomeAssistantBridge(NoVehicles())  # type: ignore[arg-type]
    await bridge.envelope_changed("home.1", ["CS1"])
    assert bridge._wake.is_set()


@pytest.mark.parametrize("site_id", ["a", "A-b_c.d", "x" * 64])
def test_site_state_topic_is_one_mqtt_level(site_id: str) -> None:
    topic = site_state_topic(site_id, "p")
    assert topic.count("/") == 3 and "+" not in topic and "#" not in topic


async def test_retained_config_of_a_site_deleted_while_down_is_cleared_with_its_state() -> None:
    """A config of ours found retained on the broker at connect, for a site that no longer
    exists: cleared, and its state topic (named in the config) after it."""
    fake = FakeSites([])
    bridge = HomeAssistantBridge(
        NoVehicles(),  # type: ignore[arg-type]
        sites=SitesPort(list_sites=fake.list_sites, envelope_view=fake.view),
    )
    bridge.state_clear_delay_s = 0.0
    topic, config = site_discovery_messages(HOME)[0]
    bridge.forget_config(topic, config["state_topic"])
    assert await bridge.changes() == [(topic, b"")]
    assert await bridge.changes() == [(site_state_topic("home.1"), b"")]
    # A state topic outside the bridge's prefix is never cleared on a config's word.
    bridge.forget_config(topic, "elsewhere/state")
    assert await bridge.changes() == [(topic, b"")]
    assert await bridge.changes() == [("openv2g/site_home_1/state", b"")]
