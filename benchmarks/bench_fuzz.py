"""Fuzz the real CSMS (`csms serve`) for a while and measure what the attack costs a bystander.

    .venv/bin/python benchmarks/bench_fuzz.py --duration 60 --baseline 15 --seed 1

It starts `csms serve` as a subprocess on loopback (a temp SQLite file, two stations added with
`csms station add`, an API token from `csms token create`), then:

1. baseline: a bystander station alone sends Heartbeat / StatusNotification every
   `--bystander-interval` s (0.1) for `--baseline` s;
2. attack: the same bystander goes on while an attacker station sends the frames of
   tests/support/fuzz_frames.py (malformed, mutated, extreme, TransactionEvent/NotifyReport
   sequences) as fast as they are answered (`--burst N`: N frames back to back, then read
   the answers), for `--duration` s or `--frames` frames;
3. the REST routes that read what the attacker stored are called over HTTP.

It prints a progress line every few seconds and then one table: frames/s, the bystander's
p50/p99 with and without the attacker (and the ratio: the machine is shared, the ratio is the
honest figure), the server's peak RSS (VmHWM, its own process), the server's log volume, the
count of each answer code, every kind of problem found with the first frame that caused it,
and the REST statuses. Exit status 1 when a problem was found (InternalError, no answer,
bystander late or failed, a read route not 200, server crash), 0 otherwise.

The server runs under an address-space cap (`--server-memory-mb`, RLIMIT_AS, default 2 GiB) so
that a frame that makes it build a huge list ends in MemoryError instead of eating the machine.
Loopback only: nothing here connects anywhere else.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from websockets.exceptions import InvalidHandshake  # noqa: E402

from tests.support.fuzz_frames import (  # noqa: E402
    Attacker,
    Bystander,
    FrameFuzzer,
    percentile,
    rss_bytes,
)
from v2g_shared.ocpp_versions import parse_ocpp_version  # noqa: E402

PASSWORD = "fuzz-bench-password-0001"
ATTACKER, BYSTANDER = "FUZZ-ATTACKER", "FUZZ-BYSTANDER"
LOOPBACK = "127.0.0.1"


def _env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
    )
    env["CSMS_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp / 'csms.db'}"
    env["CSMS_PASSWORD_KEY_FILE"] = str(tmp / "csms.password-key")
    env["CSMS_OCPP_HOST"] = LOOPBACK
    env["CSMS_API_HOST"] = LOOPBACK
    env["CSMS_OCPP_PORT"] = "0"
    env["CSMS_API_PORT"] = "0"
    return env


def _csms(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "csms", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"csms {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


class Server:
    """`csms serve` under an address-space cap; its log goes to a file (counted, not shown)."""

    def __init__(
        self, argv: list[str], env: dict[str, str], log_file: Path, memory_mb: int
    ) -> None:
        self.argv, self.env, self.log_file, self.memory_mb = argv, env, log_file, memory_mb
        self.proc: subprocess.Popen[bytes] | None = None
        self.ocpp_url = ""
        self.api_url = ""

    def _limit(self) -> None:  # runs in the child before exec
        import resource

        cap = self.memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    def start(self, timeout_s: float = 60.0) -> None:
        log = self.log_file.open("wb")
        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=self._limit if self.memory_mb > 0 else None,
        )
        log.close()
        ocpp = re.compile(r"OCPP server listening on (ws://[^/]+/\S*?)/<stationId>")
        api = re.compile(r"REST API on (http://\S+)/api/v1")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            text = self.log_file.read_text(errors="replace")
            found_ocpp, found_api = ocpp.search(text), api.search(text)
            if found_ocpp and found_api:
                self.ocpp_url = found_ocpp.group(1)
                self.api_url = found_api.group(1)
                return
            if self.proc.poll() is not None:
                raise SystemExit(f"csms serve exited at start:\n{text[-2000:]}")
            time.sleep(0.1)
        self.stop()
        raise SystemExit("csms serve did not start in time")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


class Report:
    def __init__(self) -> None:
        self.problems: Counter[str] = Counter()
        self.first: dict[str, str] = {}

    def add(self, problem: str, frame_label: str, frame_data: str | bytes) -> None:
        # One row per kind: the text before the frame's label, plus the action.
        kind = problem.split(" [answer to")[0].split(" -- after")[0]
        if kind.startswith("no answer within"):
            kind = kind.split(" to ")[0]
        kind = re.sub(r"\d{3,}", "N", kind)[:160]
        action = frame_label.split(":")[0].split(" ")[0]
        key = f"{kind} <- {action}"
        self.problems[key] += 1
        if key not in self.first:
            data = frame_data if isinstance(frame_data, str) else repr(frame_data)
            self.first[key] = f"{frame_label}\n        frame: {data[:300]}"


async def _sample_rss(server: Server, samples: list[int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        samples.append(rss_bytes(server.pid)[0])
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.5):
                await stop.wait()


async def _api_reads(api_url: str, token: str, station_id: str) -> dict[str, int]:
    station = f"/api/v1/stations/{quote(station_id, safe='')}"
    paths = [
        f"{station}/evses",
        f"{station}/transactions?limit=1000",
        f"{station}/events?limit=1000",
        f"{station}/messages?limit=1000",
        f"{station}/variables?limit=1000",
        "/api/v1/transactions?limit=1000",
    ]
    statuses: dict[str, int] = {}
    headers = {"Authorization": f"Bearer {token}"}
    for path in paths:
        # A client per request: after a 500 the server drops the kept-alive connection.
        async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=30) as client:
            try:
                statuses[path] = (await client.get(path)).status_code
            except httpx.HTTPError as exc:
                statuses[path] = -1
                print(f"  {path}: {exc!r}")
    return statuses


async def _bystander_phase(server: Server, seconds: float, interval: float) -> Bystander:
    bystander = Bystander(server.ocpp_url, BYSTANDER, PASSWORD, interval_s=interval)
    await bystander.start()
    await asyncio.sleep(seconds)
    await bystander.stop()
    return bystander


async def run(args: argparse.Namespace, server: Server, token: str) -> int:
    print(f"baseline: bystander alone for {args.baseline:.0f} s ...", flush=True)
    baseline = await _bystander_phase(server, args.baseline, args.bystander_interval)

    print(
        f"attack: seed {args.seed}, bursts of {args.burst}, {args.duration:.0f} s or "
        f"{args.frames} frames ..."
    )
    report = Report()
    version = parse_ocpp_version(args.ocpp_version)
    subprotocol = version.value
    attacker = Attacker(server.ocpp_url, ATTACKER, PASSWORD, subprotocol=subprotocol)
    bystander = Bystander(
        server.ocpp_url,
        BYSTANDER,
        PASSWORD,
        interval_s=args.bystander_interval,
        subprotocol=subprotocol,
    )
    await bystander.start()
    await attacker.open()
    stop = asyncio.Event()
    rss_samples: list[int] = []
    sampler = asyncio.create_task(_sample_rss(server, rss_samples, stop))
    frames = FrameFuzzer(random.Random(args.seed), version=version).frames()
    loop = asyncio.get_running_loop()
    started = last_progress = loop.time()
    crashed = False
    while loop.time() - started < args.duration and attacker.frames_sent < args.frames:
        if not server.alive():
            crashed = True
            break
        batch = [next(frames) for _ in range(args.burst)]
        try:
            problems = await attacker.burst(batch)
        except (OSError, TimeoutError, AssertionError, InvalidHandshake) as exc:
            problems = [f"attacker could not reconnect: {exc!r}"]  # refused or frozen
            attacker.ws = None
        for problem in problems:
            frame = next((f for f in batch if f.label in problem), batch[-1])
            report.add(problem, frame.label, frame.data)
        now = loop.time()
        if now - last_progress >= args.progress_interval:
            last_progress = now
            elapsed = now - started
            print(
                f"  {elapsed:5.0f} s  {attacker.frames_sent:7d} frames "
                f"{attacker.frames_sent / elapsed:7.0f}/s  problems {sum(report.problems.values())}"
                f"  bystander p99 {percentile(bystander.latencies_s, 0.99) * 1000:6.1f} ms"
                f"  server RSS {rss_bytes(server.pid)[0] / 2**20:5.0f} MiB",
                flush=True,
            )
    elapsed = loop.time() - started
    stop.set()
    await sampler
    await bystander.stop()
    await attacker.close()
    peak = rss_bytes(server.pid)[1] if server.alive() else max(rss_samples, default=0)
    reads: dict[str, dict[str, int]] = {}
    if server.alive():
        for station_id in (ATTACKER, BYSTANDER):
            reads[station_id] = await _api_reads(server.api_url, token, station_id)
    else:
        crashed = True
    log_bytes = server.log_file.stat().st_size
    return _print_summary(
        args,
        report,
        attacker,
        baseline,
        bystander,
        elapsed,
        peak,
        rss_samples,
        reads,
        crashed,
        log_bytes,
    )


def _print_summary(
    args: argparse.Namespace,
    report: Report,
    attacker: Attacker,
    baseline: Bystander,
    bystander: Bystander,
    elapsed: float,
    peak: int,
    rss_samples: list[int],
    reads: dict[str, dict[str, int]],
    crashed: bool,
    log_bytes: int,
) -> int:
    base_p50, base_p99 = (percentile(baseline.latencies_s, q) * 1000 for q in (0.5, 0.99))
    p50, p99 = (percentile(bystander.latencies_s, q) * 1000 for q in (0.5, 0.99))
    frames = attacker.frames_sent
    rows = [
        ("attacker frames", f"{frames} in {elapsed:.1f} s = {frames / elapsed:.0f} frames/s"),
        ("attacker reconnects", str(attacker.reconnects)),
        (
            "bystander answers",
            f"{len(baseline.latencies_s)} alone, {len(bystander.latencies_s)} under attack",
        ),
        ("bystander p50 (ms)", f"{base_p50:.1f} alone, {p50:.1f} under attack"),
        (
            "bystander p99 (ms)",
            f"{base_p99:.1f} alone, {p99:.1f} under attack (ratio {p99 / base_p99:.1f}x)",
        ),
        ("bystander max (ms)", f"{max(bystander.latencies_s, default=0) * 1000:.1f}"),
        (
            "server peak RSS (MiB)",
            f"{peak / 2**20:.0f} (first sample under attack "
            f"{(rss_samples[0] if rss_samples else 0) / 2**20:.0f})",
        ),
        ("server log", f"{log_bytes / 1024:.0f} KiB ({log_bytes / max(frames, 1):.0f} B/frame)"),
        ("server crashed", "yes" if crashed else "no"),
    ]
    width = max(len(name) for name, _ in rows)
    print("\n== bench_fuzz summary " + "=" * 60)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print("\nanswers to the attacker's CALLs:")
    for code, count in attacker.codes.most_common():
        print(f"  {code:<32} {count:7d}")
    print("\nREST reads after the attack:")
    for statuses in reads.values():
        for path, status in statuses.items():
            print(f"  {status:4d}  {path}")
    bad_reads = [s for statuses in reads.values() for s in statuses.values() if s != 200]
    problems = report.problems.total() + len(bystander.problems) + len(bad_reads) + int(crashed)
    print(f"\nproblems: {problems}")
    for key, count in report.problems.most_common():
        print(f"  {count:6d}  {key}\n        first: {report.first[key]}")
    for problem in bystander.problems[:10]:
        print(f"  bystander: {problem}")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "frames": frames,
                    "seconds": elapsed,
                    "frames_per_s": frames / elapsed,
                    "bystander_p50_ms": p50,
                    "bystander_p99_ms": p99,
                    "baseline_p50_ms": base_p50,
                    "baseline_p99_ms": base_p99,
                    "p99_ratio": p99 / base_p99,
                    "server_peak_rss_bytes": peak,
                    "answers": dict(attacker.codes),
                    "problems": dict(report.problems),
                    "bystander_problems": bystander.problems,
                    "reads": reads,
                    "crashed": crashed,
                },
                indent=2,
            )
        )
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="attack seconds (60)")
    parser.add_argument("--frames", type=int, default=10**9, help="stop after N frames")
    parser.add_argument("--baseline", type=float, default=15.0, help="bystander-alone s (15)")
    parser.add_argument("--seed", type=int, default=1, help="fuzzer seed (1)")
    parser.add_argument(
        "--ocpp-version",
        choices=["2.0.1", "2.1"],
        default="2.0.1",
        help="the attacker's and bystander's OCPP version: frames from its schemas (2.0.1)",
    )
    parser.add_argument(
        "--burst", type=int, default=1, help="frames sent back to back before reading (1)"
    )
    parser.add_argument("--bystander-interval", type=float, default=0.1, help="s (0.1)")
    parser.add_argument("--progress-interval", type=float, default=5.0, help="s (5)")
    parser.add_argument(
        "--server-memory-mb", type=int, default=2048, help="server RLIMIT_AS, 0 = none (2048)"
    )
    parser.add_argument(
        "--server-command",
        help="start the server with this command instead of `python -m csms serve` (it gets "
        "the CSMS_* settings in its environment and must log like `csms serve`)",
    )
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--keep-log", help="copy the server's log to this file at the end")
    args = parser.parse_args(argv)
    if min(args.duration, args.baseline, args.frames, args.burst) <= 0:
        parser.error("--duration, --baseline, --frames and --burst must be positive")
    with tempfile.TemporaryDirectory(prefix="bench-fuzz-") as directory:
        tmp = Path(directory)
        env = _env(tmp)
        for station_id in (ATTACKER, BYSTANDER):
            _csms(env, "station", "add", station_id, "--password", PASSWORD)
        token = _csms(env, "token", "create", "bench-fuzz").strip().splitlines()[-1]
        argv = shlex.split(args.server_command) if args.server_command else []
        argv = argv or [sys.executable, "-m", "csms", "serve"]
        server = Server(argv, env, tmp / "server.log", args.server_memory_mb)
        server.start()
        print(f"csms serve pid {server.pid}: {server.ocpp_url}, {server.api_url}")
        try:
            status = asyncio.run(run(args, server, token))
        finally:
            code = server.stop()
            if args.keep_log:
                shutil.copyfile(server.log_file, args.keep_log)
            if code not in (0, None, -signal.SIGTERM):
                print(f"csms serve exited with {code}; log tail:")
                print(server.log_file.read_text(errors="replace")[-3000:])
    return status


if __name__ == "__main__":
    sys.exit(main())
