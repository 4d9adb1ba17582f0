"""The CSMS configures the agent's local frequency response and emergency backup (the project
CSMS, the real agent with a fake EVSE): PUT frequency-response -> SetVariables V2XCtrlr ->
the agent applies the curve to the measured grid frequency; the emergency-backup switch ->
DataTransfer -> the agent holds the battery."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from chargepoint_firmware.interfaces import EvseSetpoint, EvseStatus
from chargepoint_firmware.wiring import build_agent
from csms.services.v2g import V2gService
from tests.support.agent_fakes import FakeEvse
from tests.support.agent_harness import STATION_ID, agent_settings, eventually
from tests.support.csms_harness import PASSWORD, running_csms

CURVE = [[49.0, -6000.0], [49.85, 0.0], [50.15, 0.0], [51.0, 6000.0]]


async def test_csms_switches_the_agents_frequency_response_and_backup(tmp_path: Path) -> None:
    (tmp_path / "csms").mkdir()
    async with running_csms(tmp_path / "csms") as csms:
        await csms.add_station(STATION_ID, password=PASSWORD)
        settings = agent_settings(
            tmp_path / "agent", csms.url, security={"profile": 1, "basic_auth_password": PASSWORD}
        )
        evse = FakeEvse(1)
        agent = build_agent(settings, {1: evse})
        task = asyncio.create_task(agent.run())
        v2g = V2gService(csms.services.db, csms.services.commands)
        try:
            await eventually(lambda: agent.online, within_s=10)
            evse.plug_in(soc_pct=70.0)
            evse._update(grid_frequency_hz=49.5)
            answer = await v2g.set_frequency_response(STATION_ID, CURVE, True)
            assert answer["accepted"] is True, answer
            expected = -6000.0 * (49.85 - 49.5) / (49.85 - 49.0)

            def last_limit() -> float | None:
                return evse.setpoints[-1][1].limit if evse.setpoints else None

            def near_expected() -> bool:
                limit = last_limit()
                return limit is not None and abs(limit - expected) < 1.0

            await eventually(near_expected, within_s=5)
            assert evse.setpoints[-1][1].source == "freq_watt"
            # The frequency recovers: the schedule (no limit) rules again.
            evse._update(grid_frequency_hz=50.0)
            await eventually(lambda: last_limit() is None, within_s=5)
            # Emergency backup: the agent keeps the battery, even under frequency.
            backup = await v2g.set_emergency_backup(STATION_ID, True)
            assert backup["status"] == "Accepted"
            # Count the agent's re-evaluations that see 49 Hz (it polls the frequency while
            # the response is enabled): wait for two of them instead of sleeping, so a slow
            # machine cannot pass this without the agent having looked.
            local_v2x = agent.smart.local_v2x
            seen_hz: list[float | None] = []
            adjust = local_v2x.adjust

            def counting_adjust(
                setpoint: EvseSetpoint, status: EvseStatus, nominal_voltage_v: float
            ) -> EvseSetpoint:
                result = adjust(setpoint, status, nominal_voltage_v)
                seen_hz.append(status.grid_frequency_hz)
                return result

            local_v2x.adjust = counting_adjust  # type: ignore[method-assign]
            mark = len(evse.setpoints)
            evse._update(grid_frequency_hz=49.0)
            await eventually(lambda: seen_hz.count(49.0) >= 2, within_s=10)
            after = [s.limit for _, s in evse.setpoints[mark:]]
            assert all(limit is None or limit >= 0 for limit in after), after
            assert last_limit() is None
            assert (await v2g.station_settings(STATION_ID)).emergency_backup is True
            off = await v2g.set_frequency_response(STATION_ID, None, False)
            assert off["accepted"] is True
            assert (await v2g.station_settings(STATION_ID)).freq_watt_enabled is False
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            agent.close()
