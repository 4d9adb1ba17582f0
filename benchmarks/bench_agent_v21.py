"""Cost of one setpoint evaluation on the agent (SmartCharging.publish_now, one EVSE): a 2.0.1
negative-limit profile against the 2.1 V2X modes (CentralSetpoint, LocalFrequency with a
measured frequency), under a ChargingStationMaxProfile, with N other installed TxDefault
profiles of earlier days (scanned, no longer valid). LocalFrequency re-evaluates every 0.2 s,
so this is what it costs the charger's computer per evaluation.

    flock /tmp/bench.lock .venv/bin/python benchmarks/bench_agent_v21.py [--samples 400]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from chargepoint_firmware.wiring import build_agent  # noqa: E402
from tests.support.agent_fakes import FakeEvse, ManualClock  # noqa: E402
from tests.support.agent_harness import agent_settings  # noqa: E402
from v2g_shared.schedule import format_datetime, profile_from_ocpp  # noqa: E402

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
PERIODS: dict[str, dict[str, Any]] = {
    "2.0.1 limit -4000": {"limit": -4000},
    "2.1 CentralSetpoint": {"operationMode": "CentralSetpoint", "setpoint": -4000},
    "2.1 LocalFrequency": {
        "operationMode": "LocalFrequency",
        "v2xFreqWattCurve": [
            {"frequency": 49.5, "power": -7000},
            {"frequency": 50.0, "power": 0},
            {"frequency": 50.5, "power": 7000},
        ],
    },
}


def profile(id: int, stack: int, purpose: str, period: dict[str, Any], **extra: Any) -> Any:
    return profile_from_ocpp(
        {
            **extra,
            "id": id,
            "stackLevel": stack,
            "chargingProfilePurpose": purpose,
            "chargingProfileKind": "Absolute",
            "chargingSchedule": [
                {
                    "id": 1,
                    "startSchedule": format_datetime(T0),
                    "chargingRateUnit": "W",
                    "chargingSchedulePeriod": [{"startPeriod": 0, **period}],
                }
            ],
        }
    )


def measure(kind: str, others: int, samples: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as directory:
        clock = ManualClock(T0)
        evse = FakeEvse(1, clock)
        evse._update(plugged=True, grid_frequency_hz=49.8)
        settings = agent_settings(Path(directory), "ws://127.0.0.1:9/ocpp", ocpp_versions=["2.1"])
        agent = build_agent(settings, {1: evse}, clock=clock)
        smart = agent.smart
        smart.ocpp_2_1 = True
        assert not smart.set_profile(
            0, profile(1, 0, "ChargingStationMaxProfile", {"limit": 20000, "dischargeLimit": -9000})
        )
        for n in range(others):  # earlier days' profiles, scanned but no longer valid
            window = {
                "validFrom": format_datetime(T0 - timedelta(days=n + 2)),
                "validTo": format_datetime(T0 - timedelta(days=n + 1)),
            }
            old = profile(10 + n, 1, "TxDefaultProfile", {"limit": 1000 + n}, **window)
            violations = smart.set_profile(0, old)
            assert not violations, violations
        assert not smart.set_profile(0, profile(2, 8, "TxDefaultProfile", PERIODS[kind]))
        timings = []
        for _ in range(samples):
            smart._published.clear()  # publish every time, as a changed frequency would
            start = time.perf_counter()
            smart.publish_now()
            timings.append((time.perf_counter() - start) * 1e6)
        assert evse.setpoints, "nothing published"
        agent.close()
    timings.sort()
    return statistics.median(timings), timings[int(len(timings) * 0.9)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=400)
    args = parser.parse_args()
    print(f"{'period':<22} {'other profiles':>14} {'median us':>10} {'p90 us':>8}")
    for kind in PERIODS:
        for others in (0, 8, 24):
            median, p90 = measure(kind, others, args.samples)
            print(f"{kind:<22} {others:>14} {median:>10.0f} {p90:>8.0f}")


if __name__ == "__main__":
    main()
