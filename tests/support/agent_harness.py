"""Start an Agent with fake EVSEs against the test CSMS, all on loopback."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chargepoint_firmware.agent import Agent
from chargepoint_firmware.settings import StationSettings, load_settings
from chargepoint_firmware.station.clock import Clock, SystemClock
from chargepoint_firmware.wiring import build_agent
from tests.support.agent_fakes import FakeEvse, ManualClock
from tests.support.agent_test_csms import AgentTestCsms

STATION_ID = "CP-TEST-1"


def agent_settings(state_dir: Path, url: str, **overrides: Any) -> StationSettings:
    values: dict[str, Any] = {
        "station_id": STATION_ID,
        "csms_url": url,
        "state_dir": state_dir,
        "reconnect_min_s": 0.05,
        "reconnect_max_s": 0.2,
        "message_timeout_s": 3.0,
        "ping_interval_s": 5.0,
        "ping_timeout_s": 5.0,
        "boot_retry_default_s": 0.2,
        "transaction_message_retry_interval_s": 0.05,
        "reset_reconnect_min_s": 0.05,
        "reset_reconnect_max_s": 0.1,
    }
    values.update(overrides)
    # None: leave the setting unset, so the agent follows the device model for it.
    return load_settings(None, **{k: v for k, v in values.items() if v is not None})


@dataclass
class Harness:
    csms: AgentTestCsms
    agent: Agent
    evses: dict[int, FakeEvse]
    clock: Clock
    task: asyncio.Task[None] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def evse(self) -> FakeEvse:
        return self.evses[1]

    def start_agent(self) -> None:
        self.task = asyncio.create_task(self.agent.run())

    async def stop_agent(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None

    async def close(self) -> None:
        await self.stop_agent()
        self.agent.close()
        await self.csms.stop()

    async def call(self, payload: Any) -> Any:
        return await self.csms.call(STATION_ID, payload)


async def start_harness(
    state_dir: Path,
    *,
    manual_clock: bool = False,
    evse_count: int = 1,
    csms: AgentTestCsms | None = None,
    start_agent: bool = True,
    wait_online: bool = True,
    **overrides: Any,
) -> Harness:
    csms = csms or AgentTestCsms()
    url = await csms.start()
    clock: Clock = ManualClock() if manual_clock else SystemClock()
    evse_overrides = overrides.pop("evses", [{"id": i} for i in range(1, evse_count + 1)])
    settings = agent_settings(state_dir, url, evses=evse_overrides, **overrides)
    evses = {
        e.id: FakeEvse(e.id, clock if isinstance(clock, ManualClock) else None)
        for e in settings.evses
    }
    agent = build_agent(settings, evses, clock=clock)
    harness = Harness(csms, agent, evses, clock)
    if start_agent:
        harness.start_agent()
        if wait_online:
            await asyncio.wait_for(_online(agent), 5)
    return harness


async def _online(agent: Agent) -> None:
    while agent._online_event is None:  # noqa: ASYNC110 - run() creates it on its first step
        await asyncio.sleep(0.01)
    await agent.wait_online()


async def eventually(predicate: Any, within_s: float = 5.0, message: str = "") -> None:
    """Wait until predicate() is true (tests only)."""
    deadline = asyncio.get_running_loop().time() + within_s
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(message or "condition not reached")
        await asyncio.sleep(0.01)
