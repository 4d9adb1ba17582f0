"""Control-path latencies on one machine (loopback, python-can `virtual` bus).

    .venv/bin/python benchmarks/bench_latency.py [--changes 100] [--faults 20]

1. API -> CAN: from the REST call (POST /stations/{id}/charging-profiles, a TxProfile with a new
   charge current in A) to the first 0x108 frame whose available output current carries the new
   value. Path: REST API -> CSMS command service (K01 checks, persistence) -> OCPP websocket ->
   agent (K01 checks, storage, composite schedule) -> safety supervisor -> CHAdeMO controller
   (100 ms cycle) -> CAN. Steps alternate between two currents 2 A apart (within the 20 A/s
   ramp of one cycle), so the figure is the control path, not the ramp.
2. Vehicle fault -> safe: from the first 0x102 frame carrying a fault flag (seen by a listener on
   the bus) to (a) the charger's commanded current <= 5 A (its tick trace) and (b) the first
   0x208 frame reporting <= 5 A of discharge current. One fresh discharge session per fault.

Times are time.monotonic() in one process: the bus listener timestamps frames on arrival.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from chargepoint_firmware.chademo.frames import ChargerCapabilities  # noqa: E402
from chargepoint_firmware.hardware.chademo_evse import ChademoEvseConfig  # noqa: E402
from chargepoint_firmware.hardware.sim_vehicle import Battery, SimVehicleConfig  # noqa: E402
from chargepoint_firmware.interfaces import EvseSetpoint  # noqa: E402
from chargepoint_firmware.simulate import Car  # noqa: E402
from tests.support.chademo_sim import BusRecorder, running_sim, start_session, wait_until  # noqa: E402
from tests.support.e2e_stack import running_stack, until_true  # noqa: E402

SAFE_A = 5.0


def decoded(recorder: BusRecorder, can_id: int, since: float = 0.0) -> list[tuple[float, Any]]:
    return recorder.decoded(can_id, since)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(0, math.ceil(q / 100 * len(ordered)) - 1)
    return ordered[rank]


def report(name: str, seconds: list[float]) -> None:
    ms = [s * 1000 for s in seconds]
    print(
        f"{name}: n={len(ms)} p50={percentile(ms, 50):.1f} ms p99={percentile(ms, 99):.1f} ms "
        f"min={min(ms):.1f} ms max={max(ms):.1f} ms mean={statistics.fmean(ms):.1f} ms"
    )


async def api_to_can(changes: int) -> tuple[list[float], list[float]]:
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as directory:
        async with running_stack(Path(directory)) as stack:
            station = await stack.add_station(
                "BENCH-1", car=Car("Leaf", 62.0, 20.0), meter_interval_s=60
            )
            bus = stack.sniff(station)
            station.plug_in()
            tx = await stack.remote_start(station)
            response = await stack.set_tx_profile("BENCH-1", tx, 12.0, unit="A")
            assert response.json()["status"] == "Accepted", response.text
            await until_true(
                lambda: any(
                    f.available_output_current_a == 12
                    for _, f in decoded(bus, ChargerCapabilities.CAN_ID)
                ),
                within_s=20,
                what="charging at 12 A",
            )
            await asyncio.sleep(1.0)
            to_bus: list[float] = []
            api_round_trip: list[float] = []
            current = 12
            for _ in range(changes):
                target = 10 if current == 12 else 12
                seen = len(bus.frames)
                started = time.monotonic()
                response = await stack.set_tx_profile("BENCH-1", tx, float(target), unit="A")
                api_round_trip.append(time.monotonic() - started)
                assert response.json()["status"] == "Accepted", response.text
                arrived: float | None = None
                deadline = time.monotonic() + 5.0
                while arrived is None:
                    for at, can_id, data in bus.frames[seen:]:
                        if can_id == ChargerCapabilities.CAN_ID and data[3] == target:
                            arrived = at
                            break
                    else:
                        if time.monotonic() > deadline:
                            raise AssertionError(f"0x108 never carried {target} A")
                        await asyncio.sleep(0.002)
                to_bus.append(arrived - started)
                current = target
                await asyncio.sleep(0.05)
            return to_bus, api_round_trip


async def one_fault() -> tuple[float, float]:
    """One discharge session at 15 A, one fault flag: (to command <= 5 A, to 0x208 <= 5 A)."""
    config = ChademoEvseConfig(max_discharge_current_a=15.0)
    vehicle = SimVehicleConfig(permission_delay_s=0.1, contactor_delay_s=0.1)
    async with running_sim(
        config, battery=Battery(soc_pct=85.0), vehicle_config=vehicle, insulation_test_s=0.1
    ) as rig:
        evse = rig.sim.evse
        evse.set_setpoint(EvseSetpoint(evse_id=1, limit=-15.0, unit="A"))
        await start_session(rig)
        await wait_until(lambda: evse.status().current_a <= -10.0, within_s=10)
        rig.sim.vehicle.inject_fault("fault_battery_overvoltage")

        def flagged() -> list[tuple[float, Any]]:
            return [(at, f) for at, f in decoded(rig.sniffer, 0x102) if f.fault_battery_overvoltage]

        await wait_until(lambda: bool(flagged()), within_s=2)
        raised = flagged()[0][0]

        def safe_frames() -> list[tuple[float, Any]]:
            return [
                (at, f)
                for at, f in decoded(rig.sniffer, 0x208, raised)
                if f.discharge_current_a <= SAFE_A
            ]

        await wait_until(lambda: bool(safe_frames()), within_s=2)
        bus_at = safe_frames()[0][0]
        command_at = next(
            t.at for t in evse.trace if t.at >= raised and abs(t.commanded_a) <= SAFE_A
        )
        return command_at - raised, bus_at - raised


async def fault_to_safe(faults: int) -> tuple[list[float], list[float]]:
    commanded: list[float] = []
    on_bus: list[float] = []
    for _ in range(faults):
        to_command, to_bus = await one_fault()
        commanded.append(to_command)
        on_bus.append(to_bus)
    return commanded, on_bus


async def main_async(changes: int, faults: int) -> None:
    to_bus, round_trip = await api_to_can(changes)
    report("API SetChargingProfile -> first 0x108 with the new current", to_bus)
    report("  (REST call round trip, station answer included)", round_trip)
    commanded, on_bus = await fault_to_safe(faults)
    report("vehicle fault flag on 0x102 -> commanded current <= 5 A", commanded)
    report("vehicle fault flag on 0x102 -> 0x208 reports <= 5 A", on_bus)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--changes", type=int, default=100, help="current changes via the API")
    parser.add_argument("--faults", type=int, default=20, help="injected vehicle faults")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the expected safety trips log warnings
    asyncio.run(main_async(args.changes, args.faults))
    return 0


if __name__ == "__main__":
    sys.exit(main())
