"""Issue 15 finding 2, in real time: the car exports under a plan (93 % SoC, expensive evening
prices); Home Assistant's "V2G enabled" switch turned off must stop the export at once (a new
plan sent to the station in the same command), not at the next re-plan (off by default).
The charge-point agent and a simulated CHAdeMO car on a virtual CAN bus do the exporting.
benchmarks/ha_switch_off.py prints the distribution of the bound measured here."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from csms.integrations.home_assistant import HomeAssistantBridge
from tests.support.v2g_live_rig import exporting_rig, wait_for


async def test_v2g_switch_off_stops_export_at_once(tmp_path: Path) -> None:
    async with exporting_rig(tmp_path) as live:
        assert live.v2g.settings.replan_interval_s == 0  # no re-planning loop to help
        bridge = HomeAssistantBridge(live.v2g)
        before = (await bridge.vehicle_state(await live.v2g.get_vehicle("sim-leaf"))).to_json()
        assert before["v2g_enabled"] == "ON"
        started = time.monotonic()
        assert await bridge.handle_command("openv2g/sim-leaf/set/v2g_enabled", b"OFF")
        command_s = time.monotonic() - started
        # The charger's current leaves export (a ramp, then the plan's charge or idle).
        stopped_s = command_s + await wait_for(lambda: live.current_a() > -0.1, within_s=10)
        print(
            f"\nV2G switch off: command applied in {command_s:.2f} s, export stopped "
            f"{stopped_s:.2f} s after the command"
        )
        state = (await bridge.vehicle_state(await live.v2g.get_vehicle("sim-leaf"))).to_json()
        assert state["v2g_enabled"] == "OFF"
        plan = await live.v2g.current_plan("CP-TEST-1")
        assert plan.status == "Accepted" and min(plan.plan["power_kw"]) >= 0
        # It stays stopped: no profile left that exports.
        for _ in range(20):
            assert live.current_a() > -0.1
            await asyncio.sleep(0.05)
        # Back on: the next plan may export again, at once.
        assert await bridge.handle_command("openv2g/sim-leaf/set/v2g_enabled", b"ON")
        await wait_for(lambda: live.current_a() < -1.0, within_s=10)
