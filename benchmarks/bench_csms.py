"""Benchmark the real CSMS (`csms serve`) against the baselines, in one command and session.

    .venv/bin/python benchmarks/bench_csms.py --stations 500 --processes 2 --duration 30 \
        --database sqlite --baselines bare,ocpp-inline,ocpp

For each server in turn (baselines first, then ours) it starts the server on free loopback
ports, runs `benchmarks/loadgen.py` against it with `--server-pid`, stops it, and prints one
table with calls/s, server CPU per message (us) and peak RSS, plus the ratio of ours to each
baseline measured in the same run (the machine is shared: ratios are the honest figure).

Our CSMS runs exactly as deployed: schema validation on, every station message committed
before it is answered (SQLite WAL synchronous=FULL, or PostgreSQL), Basic auth (security
profile 1) with an argon2id hash per station. Stations are registered with the same password
(one argon2 hash computed once and stored for all of them, to save minutes of set-up).

Each station is stored with the fast keyed password check (HMAC beside the argon2 hash, as
`csms station add` stores it), so a fresh CSMS admits it in microseconds; `--no-password-check`
stores the hash alone (stations from before migration 0003: one argon2 verification per
station per CSMS process, then cached in memory and the check written).

Warm-up (on by default, `--no-warmup` to skip): before the measured run every station connects
and boots once, so that connection set-up is not counted per message; a real station stays
connected for days. The warm-up figures are printed on their own line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.loadgen import cpu_at  # noqa: E402  (run by path: the repository root first)

PASSWORD = "bench-password-0123456789"
LOADGEN = str(ROOT / "benchmarks" / "loadgen.py")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
    )
    return env


# ---- database set-up -----------------------------------------------------------------------


async def _create_pg_database(admin_url: str, name: str) -> str:
    import asyncpg

    dsn = admin_url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{name}"


async def _drop_pg_database(admin_url: str, name: str) -> None:
    import asyncpg

    dsn = admin_url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def _password_key_file(database_url: str) -> Path:
    """The CSMS's password-check key for this database: beside the SQLite file, or a
    per-database file in the temp dir for PostgreSQL (the server gets it in its env)."""
    from csms.services.password_check import default_key_path

    if database_url.startswith("sqlite"):
        return default_key_path(database_url)
    name = database_url.rsplit("/", 1)[-1]
    return Path(tempfile.gettempdir()) / f"bench-csms-{name}.password-key"


async def _register_stations(
    database_url: str,
    prefix: str,
    count: int,
    *,
    cheap_hash: bool = False,
    password_check: bool = True,
) -> None:
    """Migrate a fresh database and add `count` profile-1 stations sharing PASSWORD.
    cheap_hash: argon2id with t=1, m=1 MiB, p=1 instead of the CSMS default (t=3, m=64 MiB,
    p=4, ~150 ms of CPU per verification): for quick runs only, and labelled as such.
    password_check=False: no fast check stored, as stations registered before migration 0003
    (each one's first connection to a CSMS process then costs an argon2 verification)."""
    from argon2 import PasswordHasher

    from csms.domain.models import BootPolicy, SecurityProfile, StoredPassword
    from csms.persistence import migrate
    from csms.persistence import repositories as repo
    from csms.persistence.database import Database
    from csms.services.common import utcnow
    from csms.services.password_check import PasswordCheck, load_or_create_key

    await migrate.upgrade_async(database_url)
    hasher = (
        PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
        if cheap_hash
        else PasswordHasher()
    )
    password_hash = hasher.hash(PASSWORD)
    # What `csms station create` stores: the hash and the fast keyed check (same key as the
    # server's), so that a cold CSMS admits every station without an argon2 verification.
    check = PasswordCheck(load_or_create_key(_password_key_file(database_url)))
    db = Database(database_url)
    await db.start()
    try:
        now = utcnow()
        width = len(str(count))  # the ids loadgen.py builds: prefix + zero-padded index
        for start in range(0, count, 1000):
            ids = [f"{prefix}{i:0{width}d}" for i in range(start, min(count, start + 1000))]

            async def op(conn: Any, ids: list[str] = ids) -> None:
                for station_id in ids:
                    await repo.insert_station(
                        conn,
                        station_id,
                        StoredPassword(
                            password_hash,
                            check.make(station_id, PASSWORD, password_hash)
                            if password_check
                            else None,
                        ),
                        SecurityProfile.BASIC_AUTH,
                        BootPolicy.ACCEPTED,
                        now,
                    )

            await db.write(op)
    finally:
        await db.close()


async def _pg_backend_pids(admin_url: str, database: str) -> list[int]:
    """The PostgreSQL server processes serving `database` (pg_stat_activity)."""
    import asyncpg

    conn = await asyncpg.connect(admin_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            database,
        )
    finally:
        await conn.close()
    return [int(r["pid"]) for r in rows]


def _proc_cpu_s(pid: int) -> float | None:
    """utime + stime of `pid` from /proc (None if it is gone or not readable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class DatabaseCpu:
    """CPU seconds of the PostgreSQL backends serving the bench database during a run: the
    backends are found by pid (pg_stat_activity) at the start, every second and at the end;
    one that appeared during the run counts from zero. The server's shared background
    processes (WAL writer, checkpointer) are not counted: other databases share them."""

    def __init__(self, admin_url: str, database: str) -> None:
        self.admin_url = admin_url
        self.database = database
        self.start: dict[int, float] = {}
        self.last: dict[int, float] = {}
        # (wall time, CPU seconds so far): one per sample, to cut a window out (the steady
        # state of the load generator's run).
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self, first: bool = False) -> None:
        for pid in asyncio.run(_pg_backend_pids(self.admin_url, self.database)):
            cpu = _proc_cpu_s(pid)
            if cpu is None:
                continue
            if first:
                self.start[pid] = cpu
            else:
                self.start.setdefault(pid, 0.0)
            self.last[pid] = cpu
        self.samples.append((time.time(), self.cpu_s))

    def cpu_between(self, from_wall: float, to_wall: float) -> float | None:
        """CPU seconds between two wall times, interpolated between the samples around them
        (one a second); None for an empty window or one outside the samples."""
        if to_wall <= from_wall:
            return None
        try:
            return cpu_at(self.samples, to_wall) - cpu_at(self.samples, from_wall)
        except ValueError:
            return None

    def __enter__(self) -> DatabaseCpu:
        self._sample(first=True)

        def loop() -> None:
            while not self._stop.wait(1.0):
                with contextlib.suppress(Exception):
                    self._sample()

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()

    @property
    def cpu_s(self) -> float:
        return sum(self.last[pid] - self.start[pid] for pid in self.last)


# ---- servers -------------------------------------------------------------------------------


class Server:
    def __init__(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0
        self.pid = 0
        self.stderr_tail: list[str] = []
        self.pg_database: str | None = None  # PostgreSQL: its backends' CPU is measured

    def start(self, timeout_s: float = 60.0) -> None:
        self.proc = subprocess.Popen(
            self.argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
            cwd=ROOT,
        )
        found = threading.Event()
        port_re = re.compile(r"OCPP server listening on wss?://[^:]+:(\d+)")

        def read(stream: Any) -> None:
            for line in stream:
                if not found.is_set():
                    match = port_re.search(line)
                    if match:
                        self.port = int(match.group(1))
                        self.pid = self.proc.pid if self.proc else 0
                        found.set()
                    elif line.startswith("{") and '"port"' in line:
                        data = json.loads(line)
                        self.port, self.pid = int(data["port"]), int(data["pid"])
                        found.set()
                self.stderr_tail = [*self.stderr_tail, line.rstrip()][-20:]

        for stream in (self.proc.stdout, self.proc.stderr):
            threading.Thread(target=read, args=(stream,), daemon=True).start()
        if not found.wait(timeout_s):
            self.stop()
            raise RuntimeError(f"{self.name} did not start:\n" + "\n".join(self.stderr_tail))

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


def run_loadgen(
    server: Server,
    args: argparse.Namespace,
    *,
    scenario: str,
    duration: float,
    password: str | None,
    prefix: str,
    out: Path,
    connect_rate: float | None = None,
    extra: list[str] | None = None,
) -> dict[str, Any]:
    argv = [
        sys.executable,
        LOADGEN,
        "--url",
        f"ws://127.0.0.1:{server.port}/ocpp",
        "--stations",
        str(args.stations),
        "--processes",
        str(args.processes),
        "--scenario",
        scenario,
        "--duration",
        str(duration),
        "--server-pid",
        str(server.pid),
        "--id-prefix",
        prefix,
        "--json",
        str(out),
        "--progress-interval",
        "1000",
    ]
    connect_rate = connect_rate if connect_rate is not None else args.connect_rate
    if connect_rate is not None:
        argv += ["--connect-rate", str(connect_rate)]
    if extra:
        argv += extra
    elif scenario == "mix":
        argv += ["--heartbeat-interval", str(args.heartbeat_interval)]
    if password:
        argv += ["--password", password]
    subprocess.run(argv, check=True, env=_env(), cwd=ROOT, stdout=subprocess.DEVNULL)
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def _steady_db_cpu_us(db_cpu: DatabaseCpu, result: dict[str, Any]) -> float | None:
    """The database server's CPU per message in the load generator's steady window (the
    messages sent in it, as the CSMS's steady figure), or None without a window."""
    window, started = result.get("steady_window_s"), result.get("started_wall")
    rate = result.get("steady_calls_per_s")
    if not window or started is None or not rate:
        return None
    cpu = db_cpu.cpu_between(started + window[0], started + window[1])
    if cpu is None:
        return None
    return cpu / (rate * (window[1] - window[0])) * 1e6


def summary(name: str, result: dict[str, Any]) -> dict[str, Any]:
    server = result.get("server") or {}
    per_1000 = server.get("cpu_s_per_1000_messages")
    latencies = result.get("latency", {})
    steady = result.get("steady_latency") or {}
    p99 = max((row["p99_ms"] for row in latencies.values() if row["count"]), default=None)
    return {
        "server": name,
        "messages": result["messages_handled"],
        "calls_per_s": result["calls_per_s"],
        "steady_calls_per_s": result["steady_calls_per_s"],
        "cpu_us_per_message": per_1000 * 1000 if per_1000 is not None else None,
        "steady_cpu_us_per_message": (
            server["steady_cpu_s_per_1000_messages"] * 1000
            if server.get("steady_cpu_s_per_1000_messages") is not None
            else None
        ),
        "cpu_s": server.get("cpu_s"),
        "peak_rss_mb": server.get("peak_rss_mb"),
        "worst_p99_ms": p99,
        "p99_ms_by_type": {
            kind: round(row["p99_ms"], 1) for kind, row in latencies.items() if row["count"]
        },
        # The steady state (after the last boot, without the final drain): see loadgen.py.
        "steady_window_s": result.get("steady_window_s"),
        "steady_worst_p99_ms": max(
            (row["p99_ms"] for row in steady.values() if row["count"]), default=None
        ),
        "steady_ms_by_type": {
            kind: {
                "count": row["count"],
                "p50": round(row["p50_ms"], 1),
                "p95": round(row["p95_ms"], 1),
                "p99": round(row["p99_ms"], 1),
            }
            for kind, row in steady.items()
            if row["count"] and kind != "connect"
        },
        "errors": sum(result["call_errors"].values()),
        "timeouts": sum(result["call_timeouts"].values()),
        "booted": result["boots_accepted"],
        "time_to_all_booted_s": result["time_to_all_booted_s"],
        "connect_failures": result["connect_failures"],
        "generator_gc": result.get("generator_gc"),
    }


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_table(rows: list[dict[str, Any]]) -> None:
    head = (
        f"{'server':<34}{'msgs':>9}{'calls/s':>9}{'steady':>9}{'CPU us/msg':>12}"
        f"{'RSS MB':>8}{'p99 ms':>9}{'err':>5}{'t/o':>5}{'booted':>8}{'all in s':>9}"
    )
    print(head)
    for r in rows:
        print(
            f"{r['server']:<34}{r['messages']:>9}{_fmt(r['calls_per_s'], '.0f'):>9}"
            f"{_fmt(r['steady_calls_per_s'], '.0f'):>9}{_fmt(r['cpu_us_per_message'], '.0f'):>12}"
            f"{_fmt(r['peak_rss_mb'], '.0f'):>8}{_fmt(r['worst_p99_ms'], '.1f'):>9}"
            f"{r['errors']:>5}{r['timeouts']:>5}{r['booted']:>8}"
            f"{_fmt(r['time_to_all_booted_s'], '.1f'):>9}"
        )
    for r in rows:
        print(f"  {r['server']} p99 ms by type: {r['p99_ms_by_type']}")
        if r.get("steady_ms_by_type"):
            window = r["steady_window_s"]
            by_type = ", ".join(
                f"{kind} {v['p50']}/{v['p95']}/{v['p99']}"
                for kind, v in r["steady_ms_by_type"].items()
            )
            cpu = _fmt(r.get("steady_cpu_us_per_message"), ".0f")
            print(
                f"    steady s {window[0]}-{window[1]}: CPU us/msg {cpu}, p50/p95/p99 ms: {by_type}"
            )
        if r.get("generator_gc"):
            gc_seen = r["generator_gc"]
            print(
                f"    load generator GC: {gc_seen['full_collections']} full collections, "
                f"longest pause {gc_seen['longest_pause_ms']} ms"
            )
    for r in rows:
        if r.get("db_cpu_us_per_message") is not None and r["cpu_us_per_message"] is not None:
            db = r["db_cpu_us_per_message"]
            print(
                f"  {r['server']} CPU us/msg whole run: CSMS {r['cpu_us_per_message']:.0f}"
                f" + database server {db:.0f} = {r['cpu_us_per_message'] + db:.0f}"
                + ("" if r.get("db_cpu_s") is not None else " (SQLite: in the CSMS)")
            )
        steady_csms = r.get("steady_cpu_us_per_message")
        if steady_csms is not None and r["server"].startswith("csms"):
            # SQLite runs in the CSMS: its steady total is the CSMS's figure.
            steady_db = r.get("steady_db_cpu_us_per_message")
            if r.get("db_cpu_s") is None:
                steady_db = 0.0
            if steady_db is not None:
                print(
                    f"  {r['server']} CPU us/msg steady state: CSMS {steady_csms:.0f}"
                    f" + database server {steady_db:.0f} = {steady_csms + steady_db:.0f}"
                )
    ours = [r for r in rows if r["server"].startswith("csms")]
    bases = [r for r in rows if not r["server"].startswith("csms")]
    for o in ours:
        for b in bases:
            if o["cpu_us_per_message"] and b["cpu_us_per_message"] and b["calls_per_s"]:
                steady = ""
                if o.get("steady_cpu_us_per_message") and b.get("steady_cpu_us_per_message"):
                    steady = (
                        f" (steady x"
                        f"{o['steady_cpu_us_per_message'] / b['steady_cpu_us_per_message']:.2f})"
                    )
                print(
                    f"{o['server']} vs {b['server']}: CPU per message x"
                    f"{o['cpu_us_per_message'] / b['cpu_us_per_message']:.2f}{steady}, "
                    f"calls/s x{o['calls_per_s'] / b['calls_per_s']:.2f}"
                )


def baseline_server(name: str) -> Server:
    bench = ROOT / "benchmarks"
    argv = {
        "bare": [str(bench / "bare_responder.py"), "--backlog", "4096", "--password", PASSWORD],
        "ocpp": [str(bench / "ocpp_lib_server.py")],
        "ocpp-inline": [str(bench / "ocpp_lib_server.py"), "--inline-validation"],
    }[name]
    return Server(name, [sys.executable, *argv, "--port", "0"], _env())


def csms_server(name: str, database_url: str, args: argparse.Namespace) -> Server:
    env = _env()
    env.update(
        {
            "CSMS_DATABASE_URL": database_url,
            "CSMS_PASSWORD_KEY_FILE": str(_password_key_file(database_url)),
            "CSMS_OCPP_HOST": "127.0.0.1",
            "CSMS_OCPP_PORT": "0",
            "CSMS_API_HOST": "127.0.0.1",
            "CSMS_API_PORT": "0",
            "CSMS_HEARTBEAT_INTERVAL_S": str(args.heartbeat_interval),
            "CSMS_LOG_LEVEL": "INFO",
            # The throughput scenarios drive each station at ~20 messages/s, the default
            # per-station pacing rate: measure the write path, not the pacing (override by env).
            "CSMS_OCPP_RATE_PER_S": os.environ.get("CSMS_OCPP_RATE_PER_S", "0"),
        }
    )
    return Server(name, [sys.executable, "-m", "csms.cli", "serve"], env)


def run_one(
    server: Server, args: argparse.Namespace, prefix: str, password: str | None, work: Path
) -> dict[str, Any]:
    server.start()
    try:
        if args.warmup and password:
            # Rounds until every station got in once: a handshake that waited too long for
            # its argon2 verification fails, the next round finds it cached.
            for round_no in range(1, 7):
                # mix without transactions, heartbeats far apart: just connect and boot, at
                # a rate the argon2 verifications can follow (boot-storm has no ramp).
                warm = run_loadgen(
                    server,
                    args,
                    scenario="mix",
                    duration=args.stations / args.warmup_connect_rate + 15,
                    connect_rate=args.warmup_connect_rate,
                    password=password,
                    prefix=prefix,
                    out=work / f"{server.name}-warmup.json",
                    extra=["--heartbeat-interval", "3600", "--idle-mean", "1000000"],
                )
                w = summary(server.name + " warm-up", warm)
                print(
                    f"# {server.name} warm-up round {round_no}: {w['booted']} "
                    f"booted, all in {w['time_to_all_booted_s']} s, server CPU {w['cpu_s']} s, "
                    f"peak RSS {w['peak_rss_mb']} MB, "
                    f"connect failures {w['connect_failures']}",
                    file=sys.stderr,
                    flush=True,
                )
                if w["booted"] == args.stations:
                    break
        profiler = None
        if args.profile_dir and server.name.startswith("csms"):
            # Sampling profile of our server during the measured run (py-spy, installed by
            # hand; it costs CPU on the same box: don't compare figures of a profiled run).
            out_dir = Path(args.profile_dir)
            out_dir.mkdir(parents=True, exist_ok=True)
            spy = Path(sys.executable).with_name("py-spy")
            profiler = subprocess.Popen(
                [
                    str(spy) if spy.exists() else "py-spy",
                    "record", "--pid", str(server.pid), "--rate", "200", "--nonblocking",
                    "--format", "raw", "--duration", str(int(args.duration) + 1),
                    "--output", str(out_dir / f"{server.name}.txt"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
        db_cpu = (
            DatabaseCpu(args.postgres_url, server.pg_database)
            if server.pg_database
            else contextlib.nullcontext()
        )
        try:
            with db_cpu:
                result = run_loadgen(
                    server,
                    args,
                    scenario=args.scenario,
                    duration=args.duration,
                    password=password,
                    prefix=prefix,
                    out=work / f"{server.name}.json",
                )
        finally:
            if profiler is not None:
                try:
                    profiler.wait(30)
                except subprocess.TimeoutExpired:
                    profiler.terminate()
                    profiler.wait()
        row = summary(server.name, result)
        if isinstance(db_cpu, DatabaseCpu):
            row["db_cpu_s"] = round(db_cpu.cpu_s, 2)
            if row["messages"]:
                row["db_cpu_us_per_message"] = db_cpu.cpu_s / row["messages"] * 1e6
            row["steady_db_cpu_us_per_message"] = _steady_db_cpu_us(db_cpu, result)
        elif server.name.startswith("csms"):
            row["db_cpu_us_per_message"] = 0.0  # SQLite: in the CSMS process, counted there
        return row
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--stations", type=int, default=500)
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--duration", type=float, default=30.0)
    p.add_argument(
        "--scenario",
        default="boot-heartbeat",
        choices=("boot-heartbeat", "mix", "boot-storm", "tx-meter"),
    )
    p.add_argument("--heartbeat-interval", type=int, default=30, help="mix scenario")
    p.add_argument("--connect-rate", type=float, default=None)
    p.add_argument(
        "--database",
        default="sqlite",
        help="comma list of: sqlite, postgres (fresh database each run), or none",
    )
    p.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "CSMS_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
        ),
        help="an existing database to connect to for CREATE/DROP DATABASE",
    )
    p.add_argument("--baselines", default="bare,ocpp-inline,ocpp", help="comma list, or none")
    p.add_argument("--no-warmup", dest="warmup", action="store_false")
    p.add_argument(
        "--warmup-connect-rate",
        type=float,
        default=8.0,
        help="stations/s in the warm-up (argon2 verification ~150 ms CPU each; > 0)",
    )
    p.add_argument(
        "--cheap-hash",
        action="store_true",
        help="register stations with a cheap argon2id hash (quick runs only; labelled)",
    )
    p.add_argument(
        "--no-password-check",
        dest="password_check",
        action="store_false",
        help="register stations without the fast password check (as before migration 0003): "
        "every first connection costs an argon2 verification (rows labelled -argon2only)",
    )
    p.add_argument(
        "--profile-dir",
        default=None,
        help="record a py-spy profile (raw collapsed stacks) of our CSMS during the measured "
        "run into DIR/<server>.txt (pip install py-spy; the profiler costs CPU too)",
    )
    p.add_argument("--json", dest="json_path", default=None)
    args = p.parse_args(argv)

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-csms-") as tmp:
        work = Path(tmp)
        for name in [b for b in args.baselines.split(",") if b and b != "none"]:
            password = PASSWORD if name == "bare" else None
            rows.append(run_one(baseline_server(name), args, "CS", password, work))
            print_table(rows[-1:])
        for database in [d for d in args.database.split(",") if d and d != "none"]:
            prefix = "BENCH"
            pg_name = None
            if database == "sqlite":
                url = f"sqlite+aiosqlite:///{work / 'csms.db'}"
            elif database == "postgres":
                pg_name = f"bench_{uuid.uuid4().hex[:10]}"
                url = asyncio.run(_create_pg_database(args.postgres_url, pg_name))
            else:
                p.error(f"unknown database {database!r}")
            try:
                asyncio.run(
                    _register_stations(
                        url,
                        prefix,
                        args.stations,
                        cheap_hash=args.cheap_hash,
                        password_check=args.password_check,
                    )
                )
                name = (
                    f"csms-{database}"
                    + ("-cheaphash" if args.cheap_hash else "")
                    + ("" if args.password_check else "-argon2only")
                )
                server = csms_server(name, url, args)
                server.pg_database = pg_name
                rows.append(run_one(server, args, prefix, PASSWORD, work))
                print_table(rows[-1:])
            finally:
                if pg_name is not None:
                    with contextlib.suppress(Exception):
                        asyncio.run(_drop_pg_database(args.postgres_url, pg_name))
    print(
        f"\n== {args.scenario}, {args.stations} stations, {args.processes} load processes, "
        f"{args.duration:.0f} s, {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}"
    )
    print_table(rows)
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
