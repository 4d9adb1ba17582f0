"""Cost of the issue-11 input bounds on the hot path, per TransactionEvent (CPU, one core):
parse (orjson) with and without the nesting check, and the schema check with and without the
bounds walk (integer ranges, integral floats, free-form data); and the same check against the
OCPP 2.1 schemas (a 2.1 station's TransactionEvent, a native V2X SetChargingProfile).

    .venv/bin/python benchmarks/bench_validation.py [--n 20000]
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

from csms import oca_schemas  # noqa: E402
from csms.ocpp_server import protocol  # noqa: E402
from tests.support.csms_payloads import VALID  # noqa: E402
from tests.support.ocpp21_payloads import V2X_PROFILE  # noqa: E402
from v2g_shared.ocpp_versions import OcppVersion  # noqa: E402


def transaction_event() -> dict[str, Any]:
    """An Updated TransactionEvent as the load generator sends it: 4 sampled values."""
    payload = copy.deepcopy(VALID["TransactionEvent"])
    payload["eventType"] = "Updated"
    payload["triggerReason"] = "MeterValuePeriodic"
    payload["meterValue"] = [
        {
            "timestamp": "2026-01-02T03:04:05.000Z",
            "sampledValue": [
                {"value": 1234.5, "measurand": "Energy.Active.Import.Register"},
                {"value": 7.2, "measurand": "Power.Active.Import", "unitOfMeasure": {"unit": "kW"}},
                {"value": 55, "measurand": "SoC"},
                {"value": 16.0, "measurand": "Current.Import", "phase": "L1"},
            ],
        }
    ]
    return payload


def per_call_us(fn: Callable[[], object], n: int) -> float:
    """Best of 5 runs of n calls (the machine is shared), microseconds per call."""
    runs = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(n):
            fn()
        runs.append((time.perf_counter() - started) / n * 1e6)
    return min(runs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20000)
    args = parser.parse_args()
    n = max(100, min(args.n, 1_000_000))
    payload = transaction_event()
    oca_schemas.check("TransactionEvent", "Request", payload)
    raw = orjson.dumps([2, "m-1", "TransactionEvent", payload]).decode()
    fast = oca_schemas.fast_validator("TransactionEvent", "Request")
    plan = oca_schemas.bounds_checker("TransactionEvent", "Request")
    assert fast is not None and plan is not None
    rows = [
        ("parse: orjson.loads only (before)", lambda: orjson.loads(raw)),
        ("parse: protocol.parse with nesting check (after)", lambda: protocol.parse(raw)),
        ("schema: fastjsonschema only (before)", lambda: fast(payload)),
        ("bounds walk alone", lambda: oca_schemas.check_bounds(plan, payload)),
        (
            "schema: oca_schemas.check = schema + bounds (after)",
            lambda: oca_schemas.check("TransactionEvent", "Request", payload),
        ),
        (
            "OCPP 2.1: oca_schemas.check TransactionEvent (2.1 schema + bounds)",
            lambda: oca_schemas.check("TransactionEvent", "Request", payload, OcppVersion.V21),
        ),
        (
            "OCPP 2.1: oca_schemas.check V2X SetChargingProfile (2 periods, freq-watt curve)",
            lambda: oca_schemas.check(
                "SetChargingProfile", "Request", V2X_PROFILE, OcppVersion.V21
            ),
        ),
    ]
    print(f"TransactionEvent of {len(raw)} bytes, {n} calls, best of 5 runs")
    print("| step | us per message |")
    print("|---|---|")
    for name, fn in rows:
        print(f"| {name} | {per_call_us(fn, n):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
