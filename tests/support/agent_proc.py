"""An agent process with fake EVSEs, for tests that kill and restart it.

    python -m tests.support.agent_proc station.toml

Environment: AGENT_PROC_PLUG=1 plugs a vehicle into every EVSE at start;
AGENT_PROC_VARIABLES='{"SampledDataCtrlr.TxUpdatedInterval": "1"}' sets device-model values.
While energy transfer is allowed, each EVSE's import register grows by 10 Wh every 100 ms.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys

from chargepoint_firmware.settings import load_settings
from chargepoint_firmware.wiring import build_agent
from tests.support.agent_fakes import FakeEvse


async def main(config_path: str) -> None:
    settings = load_settings(config_path)
    evses = {e.id: FakeEvse(e.id) for e in settings.evses}
    agent = build_agent(settings, evses)
    for key, value in json.loads(os.environ.get("AGENT_PROC_VARIABLES", "{}")).items():
        component, variable = key.split(".", 1)
        agent.dm.set_value(component, variable, str(value))
    task = asyncio.create_task(agent.run())
    await asyncio.sleep(0.2)
    if os.environ.get("AGENT_PROC_PLUG") == "1":
        for evse in evses.values():
            evse.plug_in()
    while not task.done():
        await asyncio.sleep(0.1)
        for evse in evses.values():
            if evse.allowed:
                evse.add_energy(import_wh=10.0)
    await task


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main(sys.argv[1]))
