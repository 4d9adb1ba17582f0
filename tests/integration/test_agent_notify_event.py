"""NotifyEvent (N07) for hardware problems: queued durably, so an outage never loses one."""

from __future__ import annotations

from pathlib import Path

from tests.support.agent_harness import eventually, start_harness


async def test_n07_notify_event_raised_offline_is_delivered_after_reconnect(
    tmp_path: Path,
) -> None:
    h = await start_harness(tmp_path)
    try:
        await h.csms.stop()
        await eventually(lambda: not h.agent.online, message="agent still online")
        h.evse.trip("overcurrent: 250 A")
        await eventually(
            lambda: any(m.action == "NotifyEvent" for m in h.agent.storage.pending()),
            message="NotifyEvent not queued",
        )
        assert h.csms.actions("NotifyEvent") == []
        await h.csms.start(port=h.csms.port)
        events = await h.csms.wait_for("NotifyEvent", within_s=10)
        data = events[0]["eventData"][0]
        assert data["actualValue"] == "true"
        assert data["variable"] == {"name": "Problem"}
        assert data["component"] == {"name": "EVSE", "evse": {"id": 1}}
        assert data["techInfo"].startswith("overcurrent")
        # The timestamp is when the fault happened, not when the message went out.
        assert data["timestamp"] <= events[0]["generatedAt"]
    finally:
        await h.close()


async def test_n07_notify_event_queued_offline_survives_agent_restart(tmp_path: Path) -> None:
    h = await start_harness(tmp_path)
    await h.csms.stop()
    await eventually(lambda: not h.agent.online, message="agent still online")
    h.evse.trip("ground_fault")
    await eventually(
        lambda: any(m.action == "NotifyEvent" for m in h.agent.storage.pending()),
        message="NotifyEvent not queued",
    )
    await h.stop_agent()
    h.agent.close()
    # A new agent process on the same state directory, with the CSMS back.
    h2 = await start_harness(tmp_path, csms=h.csms)
    try:
        events = await h2.csms.wait_for(
            "NotifyEvent", lambda p: p["eventData"][0]["techInfo"] == "ground_fault", within_s=10
        )
        assert events[0]["eventData"][0]["actualValue"] == "true"
    finally:
        await h2.close()


async def test_n07_fault_and_clear_arrive_in_order_with_increasing_event_ids(
    tmp_path: Path,
) -> None:
    h = await start_harness(tmp_path)
    try:
        await h.csms.stop()
        await eventually(lambda: not h.agent.online, message="agent still online")
        h.evse.trip("emergency_stop")
        await eventually(lambda: h.agent.transactions.evses[1].faulted)
        h.evse.reset_faults()
        await eventually(lambda: not h.agent.transactions.evses[1].faulted)
        await h.csms.start(port=h.csms.port)
        events = await h.csms.wait_for("NotifyEvent", count=2, within_s=10)
        values = [e["eventData"][0]["actualValue"] for e in events]
        ids = [e["eventData"][0]["eventId"] for e in events]
        assert values == ["true", "false"]
        assert ids[0] < ids[1]
    finally:
        await h.close()
