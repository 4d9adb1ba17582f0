"""V2G optimizer and dispatch timings (wall time, median of a few runs).

    .venv/bin/python benchmarks/bench_v2g.py [--runs 5] [--backend highspy|scipy|both]

1. one vehicle x 288 five-minute intervals (a real NEM day, 2024-08-05 VIC1);
2. 1,000 vehicles x 96 fifteen-minute intervals sharing a site import/export limit;
3. dispatch of a fleet target to 10,000 vehicles (proportional, the default, and water-filling;
   plus the proportional split with weights that force several capping rounds).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from csms.v2g.fleet import DISPATCH_METHODS, Flexibility, dispatch, proportional_split
from csms.v2g.optimizer import Backend, PlanInputs, SiteLimits, optimize
from csms.v2g.prices import AEST, NemTariff, PriceSeries, parse_nem_price_and_demand
from csms.v2g.vehicle import Vehicle, VehicleSession

ROOT = Path(__file__).resolve().parents[1]
NEM_DAY = ROOT / "tests" / "data" / "v2g" / "PRICE_AND_DEMAND_20240805-06_VIC1.csv"


def median_seconds(work: Callable[[], object], runs: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        work()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def one_vehicle(prices: PriceSeries) -> PlanInputs:
    now = datetime(2024, 8, 5, 0, 0, tzinfo=AEST)
    session = VehicleSession(Vehicle("leaf", 40, 7, 7), 0.5, now + timedelta(hours=24), 0.8)
    return PlanInputs(now, prices, (session,))


def fleet_site(prices: PriceSeries, n: int = 1000) -> PlanInputs:
    """15-minute prices (mean of the 5-minute ones), 1,000 vehicles, one shared limit."""
    now = datetime(2024, 8, 5, 0, 0, tzinfo=AEST)
    day = prices.window(now, now + timedelta(hours=24))
    quarter = PriceSeries(
        day.start,
        timedelta(minutes=15),
        tuple(np.asarray(day.import_c_kwh).reshape(96, 3).mean(axis=1)),
        tuple(np.asarray(day.export_c_kwh).reshape(96, 3).mean(axis=1)),
    )
    rng = np.random.default_rng(42)
    sessions = tuple(
        VehicleSession(
            Vehicle(f"ev{i}", float(rng.choice([40, 62, 75, 82])), 7.0, 7.0),
            soc=float(rng.uniform(0.3, 0.9)),
            departure=now + timedelta(hours=float(rng.uniform(12, 24))),
            target_soc=float(rng.uniform(0.6, 0.9)),
            arrival=now + timedelta(hours=float(rng.uniform(0, 6))),
        )
        for i in range(n)
    )
    limits = SiteLimits(import_limit_kw=0.6 * 7 * n, export_limit_kw=0.4 * 7 * n)
    return PlanInputs(now, quarter, sessions, limits)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--backend", choices=["highspy", "scipy", "both"], default="both")
    args = parser.parse_args()
    backends: list[Backend] = ["highspy", "scipy"] if args.backend == "both" else [args.backend]
    prices = parse_nem_price_and_demand(NEM_DAY.read_text(), NemTariff(retail_margin_c_kwh=15))
    single = one_vehicle(prices)
    site = fleet_site(prices)
    optimize(single)  # warm-up: imports, HiGHS banner
    for backend in backends:
        med, all_t = median_seconds(lambda b=backend: optimize(single, b), args.runs)
        print(
            f"optimizer 1 vehicle x 288 x 5 min [{backend}]: median {med * 1000:.1f} ms "
            f"(runs: {', '.join(f'{t * 1000:.1f}' for t in all_t)})"
        )
    for backend in backends:
        runs = max(3, args.runs // 2)
        med, all_t = median_seconds(lambda b=backend: optimize(site, b), runs)
        plan = optimize(site, backend)
        met = sum(v.target_met for v in plan.vehicles.values())
        print(
            f"optimizer 1000 vehicles x 96 x 15 min, site limit [{backend}]: median "
            f"{med:.2f} s (runs: {', '.join(f'{t:.2f}' for t in all_t)}); "
            f"targets met {met}/1000, peak import {max(plan.site_net_kw):.0f} kW "
            f"(limit {site.site_limits.import_limit_kw:.0f})"
        )
    rng = np.random.default_rng(7)
    fleet = [
        Flexibility(
            f"v{i}",
            float(u),
            float(d),
            0.0,
            0.0,
            timedelta(hours=1),
            datetime(2024, 8, 5, tzinfo=AEST),
        )
        for i, (u, d) in enumerate(rng.uniform(0, 7, size=(10_000, 2)))
    ]
    target = -0.7 * sum(f.down_kw for f in fleet)
    for method in DISPATCH_METHODS:
        med, all_t = median_seconds(
            lambda m=method: dispatch(target, fleet, method=m), max(5, args.runs)
        )
        allocation = dispatch(target, fleet, method=method)
        print(
            f"dispatch {target:.0f} kW to 10,000 vehicles ({method}): median "
            f"{med * 1000:.1f} ms (delivered {allocation.delivered_kw:.0f} kW)"
        )
    # the capped proportional split with weights steeper than caps, so it needs several
    # capping rounds (at most n, O(n) each; the API's weights = caps need one).
    n = 2_000
    caps = np.linspace(1.0, 7.0, n)
    weights = caps**4
    med, _ = median_seconds(
        lambda: proportional_split(0.9 * float(caps.sum()), caps, weights), max(3, args.runs)
    )
    print(f"proportional split, {n:,} vehicles, weights ~ cap^4: median {med * 1000:.1f} ms")


if __name__ == "__main__":
    main()
