"""The dashboard's live fan-out: one encoding per tick shared by every viewer, bounded queues,
power signs and units from meter values, connection changes from the router's list."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

from csms.domain.models import MeterSample
from csms.services.live import MAX_EVENTS_PER_TICK, MAX_VIEWERS, VIEWER_QUEUE_TICKS, LiveFeed

NOW = datetime(2030, 1, 1, 12, tzinfo=UTC)


def sample(station: str, measurand: str, value: float, **extra: object) -> MeterSample:
    return MeterSample(station, NOW, value, measurand, **extra)  # type: ignore[arg-type]


def events(chunk: bytes) -> list[dict[str, object]]:
    text = chunk.decode()
    assert text.startswith("id: ") and "\nevent: batch\n" in text and text.endswith("\n\n")
    data = text.split("data: ", 1)[1].strip()
    parsed: list[dict[str, object]] = json.loads(data)
    return parsed


async def test_every_viewer_gets_the_same_bytes_once_per_tick() -> None:
    feed = LiveFeed()
    viewers = [feed.subscribe() for _ in range(3)]
    feed.publish({"type": "boot", "station": "S1", "status": "Accepted"})
    feed.publish({"type": "event", "station": "S2", "kind": "NotifyEvent"})
    chunk = feed.flush()
    assert chunk is not None
    received = [v.queue.get_nowait() for v in viewers if v is not None]
    assert len(received) == 3 and all(r is chunk for r in received)  # encoded once, shared
    assert [e["station"] for e in events(chunk)] == ["S1", "S2"]
    assert feed.flush() is None  # nothing new: nothing sent


def test_power_is_import_minus_export_in_watts_and_phases_are_not_summed() -> None:
    feed = LiveFeed()
    feed.subscribe()
    feed.meter_samples(
        [
            sample("S1", "Power.Active.Import", 0.0, unit="W"),
            sample("S1", "Power.Active.Export", 6.5, unit="kW"),
            sample("S1", "Power.Active.Export", 2000.0, phase="L1"),  # a phase: not the total
            sample("S1", "SoC", 63.0, unit="Percent"),
            sample("S1", "Energy.Active.Export.Register", 1.25, unit="kWh"),
            sample("S2", "Power.Active.Import", 7000.0),
        ],
        transaction_id="T1",
    )
    s1, s2 = feed.stations["S1"], feed.stations["S2"]
    assert s1.power_w == -6500.0 and s1.soc == 63.0 and s1.energy_export_wh == 1250.0
    assert s1.transaction_id == "T1"
    assert s2.power_w == 7000.0
    assert feed.power_totals_w() == (7000.0, 6500.0)
    chunk = feed.flush()
    assert chunk is not None
    meters = {e["station"]: e for e in events(chunk)}
    assert meters["S1"]["power_w"] == -6500.0
    assert meters["S1"]["t"] == NOW.timestamp()  # the station's time, as its meter values
    feed.transaction_ended("S1", "T1")
    assert feed.stations["S1"].power_w == 0.0
    assert feed.power_totals_w() == (7000.0, 0.0)


def test_without_a_viewer_values_are_kept_and_nothing_is_encoded() -> None:
    # Issue 17: a node with no dashboard open spends nothing per message on events.
    feed = LiveFeed()
    feed.publish({"type": "boot", "station": "S1", "status": "Accepted"})
    feed.meter_samples([sample("S1", "Power.Active.Import", 7.0, unit="kW")], "T1")
    assert feed.flush() is None and feed.encoded_ticks == 0
    assert feed.stations["S1"].power_w == 7000.0 and feed.stations["S1"].transaction_id == "T1"
    assert feed.power_totals_w() == (7000.0, 0.0)
    viewer = feed.subscribe()  # from now on it is told
    assert viewer is not None
    feed.meter_samples([sample("S1", "SoC", 40.0)])
    chunk = feed.flush()
    assert chunk is not None and viewer.queue.get_nowait() is chunk
    assert [(e["type"], e["soc"]) for e in events(chunk)] == [("meter", 40.0)]


def test_connection_changes_come_from_the_router_list_diffed_per_tick() -> None:
    connected = ["A", "B"]
    feed = LiveFeed(connected_ids=lambda: list(connected))
    feed.subscribe()
    first = feed.flush()
    assert first is not None
    assert {(e["station"], e["connected"]) for e in events(first)} == {("A", True), ("B", True)}
    assert feed.flush() is None  # no change, no event
    connected.remove("A")
    change = feed.flush()
    assert change is not None
    assert events(change) == [{"type": "connection", "station": "A", "connected": False}]
    assert feed.connected_count() == 1 and feed.connected_ids_sorted() == ["B"]


def test_a_slow_viewer_is_dropped_and_a_tick_is_bounded() -> None:
    feed = LiveFeed()
    slow = feed.subscribe()
    assert slow is not None
    for k in range(VIEWER_QUEUE_TICKS + 1):
        feed.publish({"type": "event", "station": "S", "kind": str(k)})
        feed.flush()
    assert slow.dropped and feed.viewer_count == 0
    feed.subscribe()  # events are only gathered while someone watches
    for k in range(MAX_EVENTS_PER_TICK + 10):
        feed.publish({"type": "event", "station": "S", "kind": str(k)})
    assert feed.overflowed == 10
    chunk = feed.flush()
    assert chunk is not None and len(events(chunk)) == MAX_EVENTS_PER_TICK


def test_viewers_are_bounded_and_end_at_shutdown() -> None:
    feed = LiveFeed()
    viewers = [feed.subscribe() for _ in range(MAX_VIEWERS)]
    assert feed.subscribe() is None
    feed.end_viewers()
    assert feed.viewer_count == 0
    assert all(v is not None and v.dropped and v.queue.get_nowait() == b"" for v in viewers)


async def test_the_tick_task_flushes_until_closed() -> None:
    feed = LiveFeed(tick_s=0.01)
    viewer = feed.subscribe()
    assert viewer is not None
    feed.start()
    feed.publish({"type": "boot", "station": "S", "status": "Accepted"})
    chunk = await asyncio.wait_for(viewer.queue.get(), 2)
    assert events(chunk)[0]["type"] == "boot"
    await feed.close()
