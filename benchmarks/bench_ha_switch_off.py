"""Home Assistant's "V2G enabled" switch turned off while the car exports: seconds until the
export stops, over --runs fresh rigs (the CSMS, the charge-point agent and a simulated CHAdeMO
car on a virtual CAN bus, real time; the same rig as tests/integration/test_v2g_ha_switch_live.py).

    flock /tmp/bench.lock .venv/bin/python benchmarks/bench_ha_switch_off.py [--runs 5]

Columns: `applied`, the bridge's command returning (vehicle stored, new plan sent and accepted
by the agent); `stopped`, the simulated charger's current no longer negative (export ended),
both from the command's arrival at the bridge. Before issue 15 the switch only stored
max_discharge_kw = 0 and the running plan kept exporting until the next re-plan (off by
default: never).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from csms.integrations.home_assistant import HomeAssistantBridge  # noqa: E402
from tests.support.v2g_live_rig import exporting_rig, wait_for  # noqa: E402


async def one_run(folder: Path) -> tuple[float, float]:
    async with exporting_rig(folder) as live:
        bridge = HomeAssistantBridge(live.v2g)
        started = time.monotonic()
        assert await bridge.handle_command("openv2g/sim-leaf/set/v2g_enabled", b"OFF")
        applied = time.monotonic() - started
        await wait_for(lambda: live.current_a() > -0.1, within_s=30)
        return applied, time.monotonic() - started


async def main(runs: int) -> None:
    results = []
    for k in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            results.append(await one_run(Path(tmp)))
        print(f"run {k + 1}: applied {results[-1][0]:.3f} s, stopped {results[-1][1]:.3f} s")
    for name, values in (
        ("applied", [r[0] for r in results]),
        ("stopped", [r[1] for r in results]),
    ):
        print(
            f"{name:8s} median {statistics.median(values):.3f} s  max {max(values):.3f} s  "
            f"(n={len(values)})"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    asyncio.run(main(max(1, min(parser.parse_args().runs, 50))))
