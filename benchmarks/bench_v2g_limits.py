"""V2G plan cost at the input limits (finding 11): wall time of one plan, median of a few runs.

    .venv/bin/python benchmarks/bench_v2g_limits.py [--runs 3]

1. the default horizon cap (168 h) at NEM's 5-minute intervals: 2,016 intervals;
2. the horizon cap at one-minute intervals (the shortest accepted): 10,080 intervals;
3. the LP size cap (MAX_PLAN_CELLS, 100,000 cells: one vehicle x 100,000 minutes);
4. prices at the edges of the accepted range (+-20,000 c/kWh), 2,016 intervals.
Each prints whether the (reachable) departure target was met.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime, timedelta

import numpy as np

from csms.v2g import bounds as b
from csms.v2g.optimizer import VehiclePlan, plan_vehicle
from csms.v2g.prices import PriceSeries
from csms.v2g.vehicle import Vehicle, VehicleSession

NOW = datetime(2024, 8, 5, tzinfo=UTC)


def case(n: int, minutes: int, extreme: bool) -> tuple[VehicleSession, PriceSeries]:
    rng = np.random.default_rng(11)
    if extreme:
        imports = rng.choice([b.PRICE_C_KWH.low, b.PRICE_C_KWH.high], n)
    else:
        imports = rng.uniform(-100.0, 500.0, n)
    step = timedelta(minutes=minutes)
    prices = PriceSeries(
        NOW, step, tuple(float(p) for p in imports), tuple(float(p) * 0.9 for p in imports)
    )
    session = VehicleSession(Vehicle("ev", 60.0, 11.0, 11.0), 0.3, NOW + n * step, 0.8)
    return session, prices


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    cases = [
        ("168 h x 5 min", 2_016, 5, False),
        ("168 h x 1 min", 10_080, 1, False),
        (f"cell cap ({b.MAX_PLAN_CELLS:,} x 1 min)", b.MAX_PLAN_CELLS, 1, False),
        ("168 h x 5 min, prices +-20,000 c/kWh", 2_016, 5, True),
    ]
    for label, n, minutes, extreme in cases:
        session, prices = case(n, minutes, extreme)
        times: list[float] = []
        plan: VehiclePlan | None = None
        for _ in range(args.runs):
            t0 = time.perf_counter()
            plan = plan_vehicle(session, prices, NOW)
            times.append(time.perf_counter() - t0)
        assert plan is not None
        print(
            f"{label:40s} {statistics.median(times):7.2f} s  target met: {plan.target_met}",
            flush=True,
        )


if __name__ == "__main__":
    main()
