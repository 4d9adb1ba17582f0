"""Latency of a command to a station held by another node, with and without the holder cache.

    flock /tmp/bench.lock .venv/bin/python benchmarks/bench_routing.py \
        [--brokers nats,redis] [--rounds 10] [--per-round 200] [--json out.json] [--api]

Two broker routers in one process (nodes n0 and n1 on a fresh namespace of the real broker:
`CSMS_TEST_NATS_URL` / `CSMS_TEST_REDIS_URL`, default the loopback ones); the station is a fake
link on n1 that answers at once, so the figure is the routing cost alone. One command is what
the API does on n0: `is_connected(station)` then `call(station, "Reset", ...)`.

Modes, run in alternating rounds so that drift on a shared box hits both alike:
- `uncached` (cache_holders=False): the behaviour before the cache, a presence read and a
  liveness read for is_connected, another presence read for call, then the request;
- `cached` (default): the holder comes from the cache (filled by n1's claim notice), so one
  request and no read.

Prints per broker and mode: p50 / p95 / mean in ms, broker reads per command (RouterStats), and
the ratio uncached/cached of each figure.

`--api` (needs `CSMS_TEST_POSTGRES_URL`): instead, two real `csms serve` nodes on a fresh
PostgreSQL database and the broker, one station (the tests' ApiTestStation) connected to node 0,
and `POST /stations/{id}/commands/reset` alternately through node 0 (local) and node 1 (remote,
via the broker); prints p50 / p95 / mean of each and the ratio remote/local.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from csms.routing.broker import BrokerRouter  # noqa: E402
from tests.support.multinode_routing import FakeLink, make_router, remove_namespace  # noqa: E402

DEFAULT_URLS = {
    "nats": os.environ.get("CSMS_TEST_NATS_URL", "nats://127.0.0.1:4222"),
    "redis": os.environ.get("CSMS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
}
MODES = ("uncached", "cached")


async def _pair(kind: str, url: str, namespace: str, cached: bool) -> list[BrokerRouter]:
    routers = [
        make_router(kind, url, namespace, f"{name}", cache_holders=cached) for name in ("n0", "n1")
    ]
    for router in routers:
        await router.start()
    return routers


async def _one_command(via: BrokerRouter, station_id: str, i: int) -> float:
    started = time.perf_counter()
    if not await via.is_connected(station_id):
        raise RuntimeError(f"{station_id} reads as offline")
    answer = await via.call(station_id, "Reset", {"type": "Immediate", "i": i}, 5.0)
    elapsed = time.perf_counter() - started
    if answer["echo"]["i"] != i:
        raise RuntimeError(f"wrong answer {answer}")
    return elapsed


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * len(ordered)) - 1))]


async def bench_broker(kind: str, url: str, rounds: int, per_round: int) -> dict[str, Any]:
    namespace = f"bench{uuid.uuid4().hex[:10]}"
    pairs: dict[str, list[BrokerRouter]] = {}
    try:
        for mode in MODES:
            # One namespace per mode: the uncached pair must not see the cached pair's notices.
            pairs[mode] = await _pair(kind, url, f"{namespace}{mode[0]}", mode == "cached")
            holder = pairs[mode][1]
            holder.register(FakeLink("CP-BENCH"))
            await holder.settle()
        await asyncio.sleep(0.2)  # the claim notice reaches the cached n0
        samples: dict[str, list[float]] = {mode: [] for mode in MODES}
        for mode in MODES:  # warm-up (connections, scripts, JIT-free but caches everywhere)
            for i in range(50):
                await _one_command(pairs[mode][0], "CP-BENCH", i)
        before = {
            mode: (
                pairs[mode][0].stats.holder_reads + pairs[mode][0].stats.liveness_reads,
                pairs[mode][0].stats.requests,
            )
            for mode in MODES
        }
        for r in range(rounds):
            order = MODES if r % 2 == 0 else tuple(reversed(MODES))
            for mode in order:
                via = pairs[mode][0]
                for i in range(per_round):
                    samples[mode].append(await _one_command(via, "CP-BENCH", i))
        result: dict[str, Any] = {"broker": kind, "commands_per_mode": rounds * per_round}
        for mode in MODES:
            via = pairs[mode][0]
            reads = via.stats.holder_reads + via.stats.liveness_reads - before[mode][0]
            requests = via.stats.requests - before[mode][1]
            ms = [s * 1000 for s in samples[mode]]
            result[mode] = {
                "p50_ms": statistics.median(ms),
                "p95_ms": _percentile(ms, 95),
                "mean_ms": statistics.fmean(ms),
                "reads_per_command": reads / len(ms),
                "requests_per_command": requests / len(ms),
            }
        result["ratio_uncached_over_cached"] = {
            key: result["uncached"][key] / result["cached"][key]
            for key in ("p50_ms", "p95_ms", "mean_ms")
        }
        return result
    finally:
        for routers in pairs.values():
            for router in routers:
                await router.close()
        for mode in MODES:
            await remove_namespace(kind, url, f"{namespace}{mode[0]}")


def _print(result: dict[str, Any]) -> None:
    print(f"\n{result['broker']}: {result['commands_per_mode']} commands per mode")
    print(
        f"{'mode':<10} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8} {'reads/cmd':>10} {'req/cmd':>8}"
    )
    for mode in MODES:
        row = result[mode]
        print(
            f"{mode:<10} {row['p50_ms']:8.3f} {row['p95_ms']:8.3f} {row['mean_ms']:8.3f}"
            f" {row['reads_per_command']:10.2f} {row['requests_per_command']:8.2f}"
        )
    ratio = result["ratio_uncached_over_cached"]
    print(
        f"{'ratio':<10} {ratio['p50_ms']:8.2f} {ratio['p95_ms']:8.2f} {ratio['mean_ms']:8.2f}"
        "   (uncached / cached)"
    )


async def bench_api(kind: str, url: str, rounds: int, per_round: int) -> dict[str, Any]:
    import httpx

    from tests.support.api_station import connected_station
    from tests.support.multinode import (
        PASSWORD,
        fresh_database,
        prepare_database,
        start_node,
    )

    postgres = os.environ.get("CSMS_TEST_POSTGRES_URL")
    if not postgres:
        raise SystemExit("--api needs CSMS_TEST_POSTGRES_URL")
    station_id = "BENCH-ROUTING"
    run = uuid.uuid4().hex[:6]
    async with fresh_database(postgres) as database_url:
        token = await prepare_database(database_url, [station_id])
        nodes = [await start_node(f"bench-{run}-{i}", database_url, url) for i in range(2)]
        try:
            ocpp = f"ws://127.0.0.1:{nodes[0].ocpp_port}/ocpp"
            async with (
                connected_station(ocpp, station_id, PASSWORD),
                httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as client,
            ):
                samples: dict[str, list[float]] = {"local": [], "remote": []}

                async def reset(node_index: int, marker: int) -> float:
                    started = time.perf_counter()
                    response = await client.post(
                        f"{nodes[node_index].api_url}/stations/{station_id}/commands/reset",
                        json={"type": "OnIdle", "evse_id": marker},
                    )
                    elapsed = time.perf_counter() - started
                    if response.status_code != 200:
                        raise RuntimeError(response.text)
                    return elapsed

                for i in range(30):  # warm-up
                    await reset(i % 2, i)
                for r in range(rounds):
                    order = ("local", "remote") if r % 2 == 0 else ("remote", "local")
                    for where in order:
                        for i in range(per_round):
                            samples[where].append(await reset(where == "remote", i))
        finally:
            for node in nodes:
                await node.stop()
    result: dict[str, Any] = {"broker": kind, "api_commands_per_mode": rounds * per_round}
    for where, values in samples.items():
        ms = [v * 1000 for v in values]
        result[where] = {
            "p50_ms": statistics.median(ms),
            "p95_ms": _percentile(ms, 95),
            "mean_ms": statistics.fmean(ms),
        }
    result["ratio_remote_over_local"] = {
        key: result["remote"][key] / result["local"][key] for key in ("p50_ms", "p95_ms", "mean_ms")
    }
    return result


def _print_api(result: dict[str, Any]) -> None:
    print(f"\n{result['broker']} via the REST API: {result['api_commands_per_mode']} Resets each")
    print(f"{'node':<10} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8}")
    for where in ("local", "remote"):
        row = result[where]
        print(f"{where:<10} {row['p50_ms']:8.3f} {row['p95_ms']:8.3f} {row['mean_ms']:8.3f}")
    ratio = result["ratio_remote_over_local"]
    print(
        f"{'ratio':<10} {ratio['p50_ms']:8.2f} {ratio['p95_ms']:8.2f} {ratio['mean_ms']:8.2f}"
        "   (remote / local)"
    )


async def main() -> int:
    logging.basicConfig(level=logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--brokers", default="nats,redis")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--per-round", type=int, default=200)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--api", action="store_true", help="through real nodes' REST APIs")
    args = parser.parse_args()
    results = []
    for kind in args.brokers.split(","):
        if args.api:
            result = await bench_api(kind, DEFAULT_URLS[kind], args.rounds, args.per_round)
            _print_api(result)
        else:
            result = await bench_broker(kind, DEFAULT_URLS[kind], args.rounds, args.per_round)
            _print(result)
        results.append(result)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
