"""Building the profile a plan is sent as: OCPP 2.0.1 (negative limits) against OCPP 2.1 (native
operation modes, with the Q rules checked), for a plan of 288 five-minute intervals and one of
1,024 (the most periods a 2.1 schedule holds). Median wall time of `--runs` runs.

    .venv/bin/python benchmarks/bench_v2x_profiles.py [--runs 200]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from csms.v2g.optimizer import VehiclePlan, to_tx_profile
from csms.v2g.v2x import PowerBounds, plan_to_v21_profile

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _plan(intervals: int) -> VehiclePlan:
    power = [((k % 24) - 12) / 2.0 for k in range(intervals)]  # charge, rest and discharge
    starts = tuple(T0 + timedelta(minutes=5 * k) for k in range(intervals))
    return VehiclePlan(
        vehicle_id="bench",
        start=T0,
        departure=T0 + timedelta(minutes=5 * intervals),
        interval_starts=starts,
        hours=tuple(5 / 60 for _ in power),
        power_kw=tuple(power),
        soc_start=0.5,
        soc_after=tuple(0.5 for _ in power),
        target_soc=0.5,
        target_met=True,
    )


def _median_ms(work: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    bounds = PowerBounds(7000.0, 7000.0)
    for intervals in (288, 1024):
        plan = _plan(intervals)
        old = _median_ms(lambda plan=plan: to_tx_profile(plan, 1, "tx", 1), args.runs)
        new = _median_ms(lambda plan=plan: plan_to_v21_profile(plan, 1, "tx", 1, bounds), args.runs)
        size_old = len(json.dumps(to_tx_profile(plan, 1, "tx", 1)))
        size_new = len(json.dumps(plan_to_v21_profile(plan, 1, "tx", 1, bounds)))
        print(
            f"{intervals:5d} intervals: 2.0.1 {old:6.2f} ms ({size_old} B JSON), "
            f"2.1 {new:6.2f} ms ({size_new} B JSON)"
        )


if __name__ == "__main__":
    main()
