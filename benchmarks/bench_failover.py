#!/usr/bin/env python3
"""Failover under load, measured (issue 17): two CSMS nodes behind the project's TCP balancer,
stations writing transaction events and meter values through it, node and broker SIGKILLs
during the run; then what the stations had acknowledged is compared with what is stored.

    CSMS_TEST_POSTGRES_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/test \\
    .venv/bin/python benchmarks/bench_failover.py --broker nats --stations 300 --duration 90 \\
        --node-kills 5 --broker-kills 2

What runs: a fresh PostgreSQL database; nodes n1 and n2 (`csms serve`) behind
`benchmarks/tcp_balancer.py`, and n0, a third node that only serves the REST API (so every
command it sends crosses the broker to n1 or n2); `benchmarks/loadgen.py --reconnect --acks`
with the tx-meter scenario (TransactionEvent Updated and MeterValues back to back, 3 samples
each), sending commands through n0's API. Node kills alternate n1/n2 at even intervals; each
killed node is started again 2 s later (the balancer learns its new port). Broker kills SIGKILL
the machine's NATS or Redis server and start it again at once with the command this machine
kind uses (this disturbs anything else using that broker on the machine: run it alone).

Printed: acknowledged vs stored per message (lost = acknowledged, not stored; duplicated =
stored more than once), the stations' reconnect times (drop -> booted again, p50/p99/max),
cross-node command latency (p50/p99) and outcomes, reconnects refused or closed without an
HTTP response (by reason), and the load generator's own table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.tcp_balancer import TcpBalancer  # noqa: E402
from tests.support.multinode import (  # noqa: E402
    PASSWORD,
    NodeProcess,
    fresh_database,
    prepare_database,
    start_node,
)

BROKERS = {"nats": "nats://127.0.0.1:4222", "redis": "redis://127.0.0.1:6379/0"}
# How this machine kind starts each broker (/work/.library/env: the services it starts).
BROKER_START = {
    "nats": [
        "start-stop-daemon", "--start", "--oknodo", "--background", "--exec",
        "/usr/sbin/nats-server", "--", "-a", "127.0.0.1", "-p", "4222", "-js",
        "-sd", "/var/lib/nats-server", "-l", "/var/log/nats-server.log",
    ],
    "redis": [
        "redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port", "6379",
        "--save", "", "--appendonly", "no", "--dir", "/var/lib/redis",
        "--logfile", "/var/log/redis/ci.log",
    ],
}  # fmt: skip
BROKER_PROCESS = {"nats": "nats-server", "redis": "redis-server"}


def station_ids(count: int, prefix: str) -> list[str]:
    width = len(str(count))  # the load generator's naming
    return [f"{prefix}{i:0{width}d}" for i in range(count)]


async def kill_broker(kind: str) -> float:
    """SIGKILL the broker and start it again; seconds until it listens again."""
    started = time.monotonic()
    await asyncio.to_thread(
        subprocess.run, ["pkill", "-9", "-x", BROKER_PROCESS[kind]], check=False
    )
    await asyncio.sleep(0.5)
    await asyncio.to_thread(subprocess.run, BROKER_START[kind], check=True, capture_output=True)
    port = 4222 if kind == "nats" else 6379
    while time.monotonic() - started < 30:
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return time.monotonic() - started
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{kind} did not come back")


async def stored_counts(database_url: str) -> tuple[Counter[tuple[str, str, int]], Counter[Any]]:
    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    conn = await asyncpg.connect(dsn)
    try:
        events = Counter(
            (r["station_id"], r["transaction_id"], int(r["seq_no"]))
            for r in await conn.fetch(
                "SELECT station_id, transaction_id, seq_no FROM transaction_events"
            )
        )
        # Every sample row, keyed as the dedupe index keys it (station, transaction, time,
        # measurand): a count above 1 is a duplicate.
        # (one row per MeterValue since 0017: its sampled values unpacked)
        samples = Counter(
            (r["station_id"], r["tx"], r["ts"], sample[0])
            for r in await conn.fetch(
                "SELECT station_id, coalesce(transaction_id, '') AS tx, timestamp AS ts, "
                "sampled_values FROM meter_values"
            )
            for sample in orjson.loads(r["sampled_values"])
        )
    finally:
        await conn.close()
    return events, samples


def read_acks(prefix: Path) -> list[list[str]]:
    rows = []
    for path in sorted(prefix.parent.glob(prefix.name + ".w*")):
        rows += [line.split("\t") for line in path.read_text().splitlines()]
    return rows


def compare(
    acks: list[list[str]], events: Counter[tuple[str, str, int]], samples: Counter[Any]
) -> dict[str, Any]:
    from datetime import datetime

    acked_events = [
        (s, tx, int(seq)) for s, action, tx, seq, _ in acks if action == "TransactionEvent"
    ]
    acked_meter = [
        (s, datetime.fromisoformat(stamp.replace("Z", "+00:00")))
        for s, action, _tx, _seq, stamp in acks
        if action == "MeterValues"
    ]
    # A MeterValues message is stored when its SoC sample is (any transaction it was put in).
    meter_keys = Counter(
        (s, ts.replace(tzinfo=None)) for (s, _tx, ts, measurand) in samples if measurand == "SoC"
    )
    return {
        "transaction_events_acknowledged": len(acked_events),
        "transaction_events_lost": sum(1 for key in acked_events if events[key] == 0),
        "transaction_events_duplicated": sum(1 for n in events.values() if n > 1),
        "meter_values_acknowledged": len(acked_meter),
        "meter_values_lost": sum(
            1 for s, ts in acked_meter if meter_keys[(s, ts.replace(tzinfo=None))] == 0
        ),
        "meter_values_duplicated": sum(1 for n in samples.values() if n > 1),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    base_url = args.database_url or os.environ.get(
        "CSMS_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
    )
    broker_url = BROKERS[args.broker]
    ids = station_ids(args.stations, args.id_prefix)
    work = Path(tempfile.mkdtemp(prefix="failover-"))
    async with fresh_database(base_url) as database_url:
        token = await prepare_database(database_url, ids)
        nodes: dict[str, NodeProcess] = {}
        for node_id in ("n0", "n1", "n2"):
            nodes[node_id] = await start_node(node_id, database_url, broker_url)
        balancer = TcpBalancer(
            [("127.0.0.1", nodes["n1"].ocpp_port), ("127.0.0.1", nodes["n2"].ocpp_port)]
        )
        await balancer.start()
        acks = work / "acks"
        result_json = work / "loadgen.json"
        loadgen = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "benchmarks" / "loadgen.py"),
            "--url", f"ws://127.0.0.1:{balancer.port}/ocpp",
            "--stations", str(args.stations),
            "--processes", str(args.processes),
            "--id-prefix", args.id_prefix,
            "--password", PASSWORD,
            "--scenario", "tx-meter",
            "--duration", str(args.duration),
            "--call-timeout", "10",
            "--reconnect",
            "--acks", str(acks),
            "--api-url", nodes["n0"].api_url.removesuffix("/api/v1"),
            "--api-token", token,
            "--commands-per-s", str(args.commands_per_s),
            "--command-path", "/api/v1/stations/{station_id}/ocpp/{action}",
            "--json", str(result_json),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        events_log: list[str] = []
        try:
            kills = args.node_kills + args.broker_kills
            # The first kill after the stations have connected and booted; the last before the end.
            start_s, end_s = min(15.0, args.duration / 4), args.duration - 10.0
            step = (end_s - start_s) / max(1, kills - 1)
            plan = ["node"] * args.node_kills + ["broker"] * args.broker_kills
            # Spread the broker kills between node kills.
            plan.sort(key=lambda kind: 0 if kind == "node" else 1)
            order = []
            while plan:
                order.append(plan.pop(0))
                if plan and plan[-1] == "broker":
                    order.append(plan.pop())
            t0 = time.monotonic()
            node_kills = 0
            for k, kind in enumerate(order):
                await asyncio.sleep(max(0.0, t0 + start_s + k * step - time.monotonic()))
                if kind == "node":
                    victim = "n1" if node_kills % 2 == 0 else "n2"
                    node_kills += 1
                    slot = 0 if victim == "n1" else 1
                    await nodes[victim].kill()
                    events_log.append(f"{time.monotonic() - t0:6.1f} s  SIGKILL {victim}")
                    await asyncio.sleep(2.0)
                    nodes[victim] = await start_node(victim, database_url, broker_url)
                    balancer.backends[slot] = ("127.0.0.1", nodes[victim].ocpp_port)
                    events_log.append(f"{time.monotonic() - t0:6.1f} s  {victim} started again")
                else:
                    back_s = await kill_broker(args.broker)
                    events_log.append(
                        f"{time.monotonic() - t0:6.1f} s  SIGKILL {args.broker} "
                        f"(listening again after {back_s:.1f} s)"
                    )
            output, _ = await loadgen.communicate()
        finally:
            if loadgen.returncode is None:
                loadgen.kill()
                await loadgen.wait()
            await balancer.close()
            for node in nodes.values():
                await node.stop()
        events, samples = await stored_counts(database_url)
    result = json.loads(result_json.read_text())
    summary = compare(read_acks(acks), events, samples)
    latency = result["latency"]
    summary.update(
        {
            "broker": args.broker,
            "stations": args.stations,
            "node_kills": args.node_kills,
            "broker_kills": args.broker_kills,
            "reconnects": result.get("reconnects"),
            "reconnect_ms": latency.get("reconnect"),
            "connect_failures": result.get("connect_failures"),
            "commands": {k: v for k, v in latency.items() if k.startswith("api:")},
            "api_ok": result.get("api_ok"),
            "api_failed": result.get("api_failed"),
            "events": events_log,
            "loadgen_output_tail": output.decode(errors="replace").splitlines()[-25:],
        }
    )
    return summary


def print_summary(s: dict[str, Any]) -> None:
    print("\n".join(s["loadgen_output_tail"]))
    print("\n== failover run:", s["broker"], f"{s['stations']} stations")
    for line in s["events"]:
        print("  ", line)
    print(
        f"TransactionEvents acknowledged {s['transaction_events_acknowledged']}: "
        f"lost {s['transaction_events_lost']}, duplicated {s['transaction_events_duplicated']}"
    )
    print(
        f"MeterValues acknowledged {s['meter_values_acknowledged']}: "
        f"lost {s['meter_values_lost']}, duplicated {s['meter_values_duplicated']}"
    )
    r = s["reconnect_ms"] or {}
    print(
        f"reconnects {s['reconnects']}: drop -> booted again p50 {r.get('p50_ms', 0):.0f} ms, "
        f"p99 {r.get('p99_ms', 0):.0f} ms, max {r.get('max_ms', 0):.0f} ms"
    )
    print(f"connect failures (refused / closed without an HTTP response): {s['connect_failures']}")
    for kind, row in s["commands"].items():
        print(
            f"cross-node {kind}: n={row['count']} p50 {row['p50_ms']:.0f} ms "
            f"p99 {row['p99_ms']:.0f} ms"
        )
    print(f"commands ok {s['api_ok']}  failed {s['api_failed']}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--broker", choices=sorted(BROKERS), default="nats")
    p.add_argument("--stations", type=int, default=300)
    p.add_argument("--processes", type=int, default=1, help="load generator processes")
    p.add_argument("--duration", type=float, default=90.0)
    p.add_argument("--node-kills", type=int, default=5)
    p.add_argument("--broker-kills", type=int, default=2)
    p.add_argument("--commands-per-s", type=float, default=5.0)
    p.add_argument("--id-prefix", default="FO")
    p.add_argument("--database-url", default=None, help="default: $CSMS_TEST_POSTGRES_URL")
    p.add_argument("--json", default=None, help="write the summary here")
    args = p.parse_args(argv)
    if args.duration < 30:
        p.error("--duration must be at least 30 s (kills start after the stations booted)")
    summary = asyncio.run(run(args))
    print_summary(summary)
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2, default=str))
    lost = summary["transaction_events_lost"] + summary["meter_values_lost"]
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
