"""Benchmark the operator dashboard with 1,000 and 10,000 stations: page load and live updates.

    .venv/bin/python benchmarks/bench_dashboard.py --stations 1000,10000 --viewers 0,1,10,50 \
        --duration 10 [--browser]

For each station count it starts the real CSMS (`csms.app.start`, SQLite file, uvicorn on a
loopback port) with that many registered stations (rows inserted directly, one argon2 hash
shared: no station connects) and measures over real HTTP on loopback:

* page load, API: the files of the page (HTML, JS, CSS, vendored uPlot) and the reads a view
  makes on load: overview, first and middle stations page (50 rows), a search; median and p95
  of `--repeat` rounds each (httpx client in this process).
* page load, browser (`--browser`, needs Debian's chromium + chromedriver): headless Chromium
  opens `/#/stations` signed in; time from navigation to the rendered table (median of 5).
* live updates: every station publishes one meter value per `--meter-interval` s into the
  services' live feed (the call the OCPP transaction handler makes after storing; the OCPP
  server itself is measured by bench_csms.py), while V viewers, in a separate process, hold
  the server-sent-event stream open and time each batch's arrival. Reported per V: server CPU
  per second of run (this process), its increase per viewer over V = 0, bytes per viewer per
  second, and delivery latency of each batch's oldest event (published -> parsed by the
  viewer; includes the wait for the feed's 0.5 s tick, so about 500 ms is the floor for it).

The machine is shared: figures are indicative; compare within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from argon2 import PasswordHasher

from csms.app import RunningCsms, start
from csms.domain.models import (
    ApiScope,
    BootPolicy,
    MeterSample,
    SecurityProfile,
    StoredPassword,
)
from csms.persistence import repositories as repo
from csms.persistence.database import Database
from csms.services.common import utcnow
from csms.settings import Settings

PAGE_FILES = (
    "/",
    "/static/app.js",
    "/static/api.js",
    "/static/charts.js",
    "/static/forms.js",
    "/static/view_overview.js",
    "/static/view_stations.js",
    "/static/view_station.js",
    "/static/view_v2g.js",
    "/static/style.css",
    "/static/vendor/uPlot.iife.min.js",
    "/static/vendor/uPlot.min.css",
)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def insert_stations(database_url: str, count: int) -> list[str]:
    stored = StoredPassword(PasswordHasher().hash("bench-dashboard-password"), None)
    db = Database(database_url)
    await db.start()
    ids = [f"CP{i:05d}" for i in range(count)]
    try:
        now = utcnow()
        for first in range(0, count, 1000):
            chunk = ids[first : first + 1000]

            async def op(conn: Any, chunk: list[str] = chunk) -> None:
                for station_id in chunk:
                    await repo.insert_station(
                        conn,
                        station_id,
                        stored,
                        SecurityProfile.BASIC_AUTH,
                        BootPolicy.ACCEPTED,
                        now,
                    )
                    await repo.upsert_connector_status(conn, station_id, 1, 1, "Available", now)

            await db.write(op)
    finally:
        await db.close()
    return ids


async def timed(client: httpx.AsyncClient, path: str, repeat: int, **params: Any) -> list[float]:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        response = await client.get(path, params=params or None)
        response.raise_for_status()
        times.append((time.perf_counter() - began) * 1000)
    return times


async def page_load(running: RunningCsms, token: str, count: int, repeat: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=running.api_url, headers=headers, timeout=30) as client:
        files_ms, size = [], 0
        for _ in range(repeat):
            began = time.perf_counter()
            size = 0
            for path in PAGE_FILES:
                response = await client.get(path)
                response.raise_for_status()
                size += len(response.content)
            files_ms.append((time.perf_counter() - began) * 1000)
        out["page files"] = (files_ms, f"{len(PAGE_FILES)} files, {size / 1024:.0f} KiB")
        api = "/api/v1/dashboard"
        out["overview"] = (await timed(client, f"{api}/overview", repeat), "")
        out["stations page 1"] = (await timed(client, f"{api}/stations", repeat, limit=50), "")
        out["stations middle page"] = (
            await timed(client, f"{api}/stations", repeat, limit=50, offset=count // 2),
            "",
        )
        out["stations search"] = (
            await timed(client, f"{api}/stations", repeat, limit=50, q="77"),
            "",
        )
    return out


def browser_load(url: str, token: str, rounds: int = 5) -> list[float] | None:
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        return None
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    try:
        driver.get(url + "/")
        driver.execute_script("sessionStorage.setItem('csms.token', arguments[0])", token)
        times = []
        for _ in range(rounds):
            driver.get("about:blank")
            began = time.perf_counter()
            driver.get(url + "/#/stations")
            while not driver.execute_script(
                "const v = document.getElementById('view-stations');"
                "return v && v.dataset.ready && document.querySelectorAll("
                "'#stations-table tbody tr').length > 0"
            ):
                time.sleep(0.005)
            times.append((time.perf_counter() - began) * 1000)
        return times
    finally:
        driver.quit()


# ---- viewers (a separate process) ------------------------------------------------------------


def viewer_process(url: str, token: str, count: int, seconds: float, out: Any) -> None:
    async def one(client: httpx.AsyncClient, results: list[Any]) -> None:
        latencies: list[float] = []
        size = 0
        headers = {"Authorization": f"Bearer {token}"}
        with_deadline = time.time() + seconds
        try:
            async with client.stream("GET", url, headers=headers) as stream:
                buffer = ""
                async for text in stream.aiter_text():
                    size += len(text.encode())
                    buffer += text
                    while "\n\n" in buffer:
                        block, buffer = buffer.split("\n\n", 1)
                        # The batch's first event is its oldest (events are appended as
                        # published): what waited longest, tick included. Only its time is
                        # parsed, so that 100 viewers in one process can keep up with 10,000
                        # stations (a browser parses one stream).
                        at = block.find('"t": ')
                        if at >= 0:
                            number = block[at + 5 : block.find(",", at)]
                            latencies.append((time.time() - float(number)) * 1000)
                    if time.time() > with_deadline:
                        break
        finally:
            results.append((latencies, size))

    async def main() -> None:
        results: list[Any] = []
        limits = httpx.Limits(max_connections=count + 5)
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:
            await asyncio.gather(*(one(client, results) for _ in range(count)))
        out.put(results)

    asyncio.run(main())


async def live_run(
    running: RunningCsms, token: str, ids: list[str], viewers: int, args: argparse.Namespace
) -> dict[str, float]:
    feed = running.services.live
    url = running.api_url + "/api/v1/dashboard/live"
    queue: Any = multiprocessing.get_context("spawn").Queue()
    process = None
    if viewers:
        process = multiprocessing.get_context("spawn").Process(
            target=viewer_process, args=(url, token, viewers, args.duration + 1.0, queue)
        )
        process.start()
        deadline = time.time() + 30
        while feed.viewer_count < viewers and time.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)  # the feed has no event for "viewer joined"
    # Every station one meter value per meter interval, spread evenly over it (10 ms steps).
    step_s = 0.01
    per_step = max(1, round(len(ids) * step_s / args.meter_interval))
    cursor = 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    end = wall0 + args.duration
    published = 0
    while time.perf_counter() < end:
        now = utcnow()
        samples = []
        for _ in range(per_step):
            station_id = ids[cursor % len(ids)]
            cursor += 1
            samples.append(MeterSample(station_id, now, 7.0, "Power.Active.Import", unit="kW"))
            samples.append(MeterSample(station_id, now, 55.0, "SoC", unit="Percent"))
        feed.meter_samples(samples)
        published += per_step
        await asyncio.sleep(step_s)
    cpu = time.process_time() - cpu0
    wall = time.perf_counter() - wall0
    result = {
        "events_per_s": published / wall,
        "server_cpu_pct": 100 * cpu / wall,
        "overflowed": float(feed.overflowed),
    }
    if process is not None:
        results = await asyncio.to_thread(queue.get, True, 60)
        await asyncio.to_thread(process.join, 30)
        latencies = [x for lat, _ in results for x in lat]
        result["bytes_per_viewer_s"] = statistics.mean(size for _, size in results) / wall
        result["latency_p50_ms"] = pct(latencies, 0.5) if latencies else float("nan")
        result["latency_p95_ms"] = pct(latencies, 0.95) if latencies else float("nan")
        result["viewers_seen"] = float(len(results))
    return result


async def bench(count: int, args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as directory:
        url = f"sqlite+aiosqlite:///{Path(directory) / 'csms.db'}"
        settings = Settings(
            database_url=url,
            ocpp_host="127.0.0.1",
            ocpp_port=0,
            api_host="127.0.0.1",
            api_port=0,
            log_level="WARNING",
            password_key_file=Path(directory) / "key",
        )
        # Schema first (start() migrates), then the rows, then the server that serves them.
        running = await start(settings)
        await running.stop()
        began = time.perf_counter()
        ids = await insert_stations(url, count)
        print(f"\n== {count} stations (inserted in {time.perf_counter() - began:.1f} s)")
        running = await start(settings)
        try:
            token = (await running.services.api_tokens.create("bench", ApiScope.READ)).plaintext
            print(f"{'page load (API, ms)':<28}{'median':>8}{'p95':>8}")
            loads = await page_load(running, token, count, args.repeat)
            for name, (times, note) in loads.items():
                print(f"  {name:<26}{statistics.median(times):8.1f}{pct(times, 0.95):8.1f}  {note}")
            if args.browser:
                times = await asyncio.to_thread(browser_load, running.api_url, token)
                if times is None:
                    print("  browser: chromium/chromedriver not found")
                else:
                    print(
                        f"  {'browser: stations view':<26}{statistics.median(times):8.1f}"
                        f"{max(times):8.1f}  (navigation -> table rendered; max of 5)"
                    )
            print(
                f"live updates: every station 1 meter value per {args.meter_interval:g} s, "
                f"{args.duration:g} s per row"
            )
            print(
                f"  {'viewers':>8}{'events/s':>10}{'srv CPU %':>10}{'+CPU%/viewer':>13}"
                f"{'KB/s/viewer':>12}{'p50 ms':>8}{'p95 ms':>8}"
            )
            base_cpu = None
            for viewers in args.viewers:
                r = await live_run(running, token, ids, viewers, args)
                if viewers == 0:
                    base_cpu = r["server_cpu_pct"]
                extra = (
                    (r["server_cpu_pct"] - base_cpu) / viewers
                    if viewers and base_cpu is not None
                    else float("nan")
                )
                print(
                    f"  {viewers:>8}{r['events_per_s']:>10.0f}{r['server_cpu_pct']:>10.1f}"
                    f"{extra:>13.2f}{r.get('bytes_per_viewer_s', 0) / 1000:>12.1f}"
                    f"{r.get('latency_p50_ms', float('nan')):>8.0f}"
                    f"{r.get('latency_p95_ms', float('nan')):>8.0f}"
                )
        finally:
            await running.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stations", default="1000,10000")
    parser.add_argument("--viewers", default="0,1,10,50")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per live row")
    parser.add_argument("--meter-interval", type=float, default=10.0, help="s per station")
    parser.add_argument("--repeat", type=int, default=20, help="rounds per page-load figure")
    parser.add_argument("--browser", action="store_true", help="also time headless Chromium")
    args = parser.parse_args()
    args.viewers = [int(v) for v in args.viewers.split(",")]
    if args.viewers and args.viewers[0] != 0:
        args.viewers.insert(0, 0)  # the per-viewer figure is against no viewer
    for count in (int(c) for c in args.stations.split(",")):
        if not 1 <= count <= 100_000:
            parser.error("--stations: 1 to 100000 each")
        asyncio.run(bench(count, args))


if __name__ == "__main__":
    main()
