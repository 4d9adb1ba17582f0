"""The household meter (issue 18): what a reading costs, how fast a material change reaches the
station, and how many envelope profiles a noisy meter causes (the CSMS on SQLite with its REST
app in process, one station over a loopback websocket: the rig of
tests/integration/test_site_meter.py).

    flock /tmp/bench.lock .venv/bin/python benchmarks/bench_site_meter.py [--noisy-s 30]

Columns: `post`, POST /sites/{id}/meter answered (within the hysteresis: stored only; material:
stored and the station's new profile sent and accepted before the answer). Then `--noisy-s`
seconds of a meter at 10 Hz (+-250 W of noise around the house load, a 1.5 kW step every
10 s) with the default hysteresis (300 W) and minimum re-send interval (15 s): readings
taken, profiles sent.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.v2g_harness import iso, v2g_api, v2g_station  # noqa: E402

V1 = "/api/v1"


def profiles(station: Any) -> int:
    return sum(
        1
        for r in station.received
        if r.action == "SetChargingProfile"
        and r.payload["chargingProfile"]["chargingProfilePurpose"] == "ChargingStationMaxProfile"
    )


async def main(noisy_s: float, runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with (
            v2g_api(Path(tmp), site_meter_min_resend_s=0, site_meter_check_s=0) as api,
            v2g_station(api, "CS1") as cs1,
        ):
            await api.client.post(
                f"{V1}/sites", json={"id": "home", "name": "Home", "station_ids": ["CS1"]}
            )
            start = iso(datetime.now(UTC) - timedelta(minutes=1))
            await api.client.put(
                f"{V1}/sites/home/envelopes/operator",
                json={"envelopes": [{"start": start, "import_limit_w": 9000}]},
            )
            await api.client.post(
                f"{V1}/sites/home/meter",
                json={"timestamp": iso(datetime.now(UTC)), "grid_import_w": 0.0},
            )
            quiet: list[float] = []
            material: list[float] = []
            for k in range(runs):
                house = 2000.0 if k % 2 == 0 else 4000.0
                # within the hysteresis of the last one: stored only
                t0 = time.perf_counter()
                await api.client.post(
                    f"{V1}/sites/home/meter",
                    json={"timestamp": iso(datetime.now(UTC)), "grid_import_w": 1.0 + k},
                )
                quiet.append(time.perf_counter() - t0)
                before = profiles(cs1)
                t0 = time.perf_counter()
                answer = await api.client.post(
                    f"{V1}/sites/home/meter",
                    json={"timestamp": iso(datetime.now(UTC)), "grid_import_w": house},
                )
                material.append(time.perf_counter() - t0)
                assert answer.status_code == 200, answer.text
                # the answer comes once the station accepted its new profile
                assert profiles(cs1) == before + 1
                # back to ~0 W for the next round (material again: not timed)
                await api.client.post(
                    f"{V1}/sites/home/meter",
                    json={"timestamp": iso(datetime.now(UTC)), "grid_import_w": 0.0},
                )
            for name, values in (
                ("post (within hysteresis)", quiet),
                ("post (material, re-sent)", material),
            ):
                print(
                    f"{name:26s} median {statistics.median(values) * 1000:.1f} ms  "
                    f"max {max(values) * 1000:.1f} ms  (n={len(values)})"
                )
        # The noisy meter, with the default hysteresis and minimum interval.
    with tempfile.TemporaryDirectory() as tmp:
        async with v2g_api(Path(tmp)) as api, v2g_station(api, "CS1") as cs1:
            await api.client.post(
                f"{V1}/sites", json={"id": "home", "name": "Home", "station_ids": ["CS1"]}
            )
            start = iso(datetime.now(UTC) - timedelta(minutes=1))
            await api.client.put(
                f"{V1}/sites/home/envelopes/operator",
                json={"envelopes": [{"start": start, "import_limit_w": 9000}]},
            )
            before = profiles(cs1)
            rng = random.Random(18)
            began = time.monotonic()
            readings = 0
            while time.monotonic() - began < noisy_s:
                step = 1500.0 * (int((time.monotonic() - began) // 10) % 2)
                watts = 2000.0 + step + rng.uniform(-250.0, 250.0)
                await api.client.post(
                    f"{V1}/sites/home/meter",
                    json={"timestamp": iso(datetime.now(UTC)), "grid_import_w": watts},
                )
                readings += 1
                await asyncio.sleep(0.1)
            await asyncio.sleep(6)  # a check round (5 s) may send a change held back
            print(
                f"noisy meter {noisy_s:.0f} s: {readings} readings, "
                f"{profiles(cs1) - before} envelope profiles sent"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--noisy-s", type=float, default=30.0)
    args = parser.parse_args()
    asyncio.run(main(max(5.0, min(args.noisy_s, 600.0)), max(1, min(args.runs, 200))))
