"""NotifyEVChargingNeeds -> SetChargingProfile latency of the CSMS (ISO 15118, K15/K16).

    .venv/bin/python benchmarks/bench_iso15118.py [--sessions 200] [--stations 10] [--prices]

The real CSMS (SQLite file in a temporary folder, the OCPP endpoint on 127.0.0.1) and
`--stations` simulated stations over loopback websockets (the `ocpp` library's v201
ChargePoint). Each station runs its share of `--sessions` one after another: TransactionEvent
Started, NotifyEVChargingNeeds (DC: random energy 5-60 kWh, max power 7-150 kW, SoC 10-80 %,
departure 1-12 h ahead), wait for the SetChargingProfile, answer Accepted, TransactionEvent
Ended. Stations run in parallel, so up to `--stations` plans are made at once.

Figures (time.perf_counter() in one process, on the station side):
- answer: NotifyEVChargingNeeds sent -> its CALLRESULT received (status counted);
- schedule: NotifyEVChargingNeeds sent -> SetChargingProfile received (the plan: transaction
  lookup, optimizer (HiGHS LP), K01 checks, routing, send).
`--prices` stores 5-minute prices for the next 24 h first (the optimizer plans against them:
up to 144 intervals per plan); without it the default policy plans 15-minute intervals.
The per-station message rate limit is off here (`ocpp_rate_per_s=0`): it would pace the
stations, not measure the CSMS.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import random
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ocpp.routing import on  # noqa: E402
from ocpp.v201 import call_result  # noqa: E402

from csms.domain.v2g_records import PriceRow  # noqa: E402
from csms.services.common import ocpp_datetime  # noqa: E402
from csms.services.v2g import v2g_service_for  # noqa: E402
from tests.support.csms_harness import TestStation, connect_station, running_csms  # noqa: E402
from tests.support.csms_payloads import tx_event  # noqa: E402
from tests.support.iso15118_station import send, start_charging  # noqa: E402


class TimedStation(TestStation):
    """Notes when each SetChargingProfile arrives."""

    def __init__(self, station_id: str, connection: Any) -> None:
        super().__init__(station_id, connection)
        self.profile_arrived = asyncio.Event()
        self.arrived_at = 0.0

    @on("SetChargingProfile")
    async def on_set_charging_profile(self, **kwargs: Any) -> Any:
        self.arrived_at = time.perf_counter()
        self.profile_arrived.set()
        return call_result.SetChargingProfile(status="Accepted")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def needs_payload(rng: random.Random) -> dict[str, Any]:
    departure = datetime.now(UTC) + timedelta(hours=rng.uniform(1, 12))
    return {
        "evseId": 1,
        "chargingNeeds": {
            "requestedEnergyTransfer": "DC",
            "departureTime": ocpp_datetime(departure),
            "dcChargingParameters": {
                "evMaxCurrent": 350,
                "evMaxVoltage": 450,
                "evMaxPower": rng.randint(7_000, 150_000),
                "energyAmount": rng.randint(5_000, 60_000),
                "stateOfCharge": rng.randint(10, 80),
                "evEnergyCapacity": 80_000,
            },
        },
    }


async def run_station(
    csms: Any,
    index: int,
    sessions: int,
    rng: random.Random,
    answers: list[float],
    schedules: list[float],
    statuses: Counter[str],
) -> None:
    station_id = f"ISO{index:03d}"
    await csms.add_station(station_id)
    async with connect_station(csms, station_id) as conn:
        # connect_station starts a TestStation; replace it by a timed one on the same socket.
        conn.task.cancel()
        station = TimedStation(station_id, conn.ws)
        task = asyncio.create_task(station.start())
        try:
            for k in range(sessions):
                tx_id = f"{station_id}-TX{k}"
                if k == 0:
                    await start_charging(station, tx_id=tx_id)
                else:
                    started = tx_event("Started", 0, tx_id=tx_id)
                    started["timestamp"] = ocpp_datetime(datetime.now(UTC))
                    await send(station, "TransactionEvent", started)
                station.profile_arrived.clear()
                sent = time.perf_counter()
                answer = await send(station, "NotifyEVChargingNeeds", needs_payload(rng))
                answers.append(time.perf_counter() - sent)
                statuses[answer["status"]] += 1
                await asyncio.wait_for(station.profile_arrived.wait(), 60)
                schedules.append(station.arrived_at - sent)
                ended = tx_event("Ended", 1, tx_id=tx_id)
                ended["timestamp"] = ocpp_datetime(datetime.now(UTC))
                await send(station, "TransactionEvent", ended)
        finally:
            task.cancel()


def report(name: str, seconds: list[float]) -> None:
    ms = [s * 1000 for s in seconds]
    print(
        f"{name:<42} n={len(ms):<5} p50={percentile(ms, 50):8.1f} ms  "
        f"p99={percentile(ms, 99):8.1f} ms  max={max(ms):8.1f} ms"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--stations", type=int, default=10)
    parser.add_argument("--prices", action="store_true", help="plan against stored prices")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if not 1 <= args.stations <= 200 or not 1 <= args.sessions <= 10_000:
        parser.error("--stations 1..200, --sessions 1..10000")
    logging.basicConfig(level=logging.WARNING)
    rng = random.Random(args.seed)
    answers: list[float] = []
    schedules: list[float] = []
    statuses: Counter[str] = Counter()
    with tempfile.TemporaryDirectory() as tmp:
        async with running_csms(Path(tmp), ocpp_rate_per_s=0.0, command_timeout_s=30.0) as csms:
            if args.prices:
                now = datetime.now(UTC).replace(second=0, microsecond=0)
                start = now - timedelta(minutes=now.minute % 5)
                rows = [
                    PriceRow(
                        start + timedelta(minutes=5 * k),
                        300,
                        20.0 + 15.0 * math.sin(k / 20.0) + rng.uniform(-3, 3),
                        5.0,
                    )
                    for k in range(24 * 12 + 1)
                ]
                await v2g_service_for(csms.services).put_prices(rows)
            per_station = [args.sessions // args.stations] * args.stations
            for k in range(args.sessions % args.stations):
                per_station[k] += 1
            began = time.perf_counter()
            await asyncio.gather(
                *(
                    run_station(
                        csms, k, n, random.Random(rng.random()), answers, schedules, statuses
                    )
                    for k, n in enumerate(per_station)
                    if n
                )
            )
            wall = time.perf_counter() - began
    mode = "stored 5-min prices" if args.prices else "default policy, 15-min intervals"
    print(f"{args.sessions} sessions over {args.stations} stations ({mode}), {wall:.1f} s wall")
    print(f"answers: {dict(statuses)}")
    report("NotifyEVChargingNeeds -> its answer", answers)
    report("NotifyEVChargingNeeds -> SetChargingProfile", schedules)


if __name__ == "__main__":
    asyncio.run(main())
