"""The HiGHS solver prints nothing: no banner, no solver log, in the CSMS's log or console.

highspy >= 1.8 prints "Running HiGHS <version> ... Copyright" to stdout while its constructor
enables callbacks (before any option can be set), once per process; older versions printed it
at the first solve. Each case runs in a fresh interpreter: the first plan of a process is the
one that would print it, and it is printed by C code (file descriptor 1), which only a
subprocess's captured output shows.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PLAN = """
import logging
from datetime import UTC, datetime, timedelta
logging.basicConfig(level=logging.DEBUG)
from csms.v2g.optimizer import plan_vehicle
from csms.v2g.prices import PriceSeries
from csms.v2g.vehicle import Vehicle, VehicleSession
now = datetime(2024, 8, 5, 2, 0, tzinfo=UTC)
prices = PriceSeries(now, timedelta(minutes=30), tuple(float(10 + (k % 12) * 5) for k in range(48)),
                     tuple(float(5 + (k % 12) * 5) for k in range(48)))
session = VehicleSession(Vehicle("car", 40.0, 7.0, 7.0), soc=0.5,
                         departure=now + timedelta(hours=20), target_soc=0.8)
for _ in range(2):
    plan = plan_vehicle(session, prices, now, backend=BACKEND)
print("PLANNED", round(plan.soc_at_departure, 2))
"""


def _run(backend: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", PLAN.replace("BACKEND", repr(backend))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return result.stdout + result.stderr


def test_a_highspy_plan_prints_no_solver_banner_or_log() -> None:
    output = _run("highspy")
    assert "PLANNED 0.8" in output, output  # the plan was made
    assert "HiGHS" not in output and "Copyright" not in output, output
    assert "Presolv" not in output and "Objective" not in output, output


def test_a_scipy_plan_prints_no_solver_banner_either() -> None:
    output = _run("scipy")
    assert "PLANNED 0.8" in output, output
    assert "HiGHS" not in output, output
