"""Print the writer probe's summary (see sitecustomize.py beside this file)."""

from __future__ import annotations

import json
import os
import statistics
import sys


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    path = (
        sys.argv[1]
        if len(sys.argv) > 1
        else os.environ.get("WRITER_PROBE_OUT", "/tmp/writer_probe.json")
    )
    with open(path) as f:
        data = json.load(f)
    batches, window = data["batches"], data["window_s"]
    wall_ms = [b[2] * 1000 for b in batches]
    print(f"{len(batches)} group commits in the last {window:.0f} s")
    print(f"writer busy {sum(wall_ms) / 1000 / window:.0%} of the time")
    for name, values in (
        ("writes per commit", [float(b[1]) for b in batches]),
        ("statements per commit", [float(b[3]) for b in batches]),
        ("commit wall ms", wall_ms),
        ("of which in statements ms", [b[4] * 1000 for b in batches]),
    ):
        print(
            f"{name}: p50 {_pct(values, 0.5):.1f}, p90 {_pct(values, 0.9):.1f}, "
            f"p99 {_pct(values, 0.99):.1f}, mean {statistics.mean(values):.1f}"
        )
    print("statements, by wall time in the writer:")
    rows = sorted(data["statements"].items(), key=lambda kv: -kv[1][1])
    for head, (count, seconds) in rows[:12]:
        print(f"  {seconds:7.2f} s {count:7d} calls {1000 * seconds / count:6.2f} ms/call  {head}")


if __name__ == "__main__":
    main()
