from __future__ import annotations

from pathlib import Path

from tests.support.agent_harness import start_harness


async def test_b01_boot_accepted_then_status_per_connector(tmp_path: Path) -> None:
    h = await start_harness(tmp_path, evse_count=2)
    try:
        boots = await h.csms.wait_for("BootNotification")
        assert boots[0]["reason"] == "PowerUp"
        statuses = await h.csms.wait_for("StatusNotification", count=2)
        assert sorted(s["evseId"] for s in statuses) == [1, 2]
        assert all(s["connectorStatus"] == "Available" for s in statuses)
    finally:
        await h.close()
