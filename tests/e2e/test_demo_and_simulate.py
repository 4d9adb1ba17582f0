"""`csms demo` as a user runs it (a subprocess), and `chargepoint simulate` against our CSMS."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from chargepoint_firmware.simulate import SimulateOptions, run_simulation
from tests.support.e2e_stack import DRIVER_TOKEN, STATION_PASSWORD, running_stack
from v2g_demo.run import DemoOptions, demo_prices, nem_day_rrp, plan_power_kw, run_demo

ROOT = Path(__file__).resolve().parents[2]


def test_demo_price_day_is_the_real_nem_day_with_the_evening_spike() -> None:
    from datetime import UTC, datetime

    rrp = nem_day_rrp()
    assert len(rrp) == 288  # 24 h of 5-minute intervals
    # 2024-08-05 17:00-19:00 AEST (intervals 60..83 from 12:00) holds the evening spike.
    assert max(rrp[60:84]) > 10_000 and max(rrp[:48]) < 1_000
    prices = demo_prices(datetime(2030, 1, 1, tzinfo=UTC))
    assert prices.import_c_kwh[0] == rrp[0] / 10 * 1.1
    assert plan_power_kw(None, datetime(2030, 1, 1, tzinfo=UTC)) is None


def test_csms_demo_runs_for_its_duration_and_shows_boots_and_meter_values(
    tmp_path: Path,
) -> None:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "csms",
            "demo",
            "--duration",
            "12",
            "--stations",
            "2",
            "--speed",
            "120",
            "--api-port",
            "0",
            "--ocpp-port",
            "0",
            "--data-dir",
            str(tmp_path / "demo"),
            "--plain",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    output = result.stdout
    assert result.returncode == 0, output + result.stderr
    assert re.search(r"REST API\s+http://127\.0\.0\.1:\d+/api/v1", output), output
    assert re.search(r"API token csms_\S+", output), output
    for station in ("DEMO-1", "DEMO-2"):
        assert f"{station}: booted (BootNotification Accepted)" in output, output
        assert f"{station}: transaction" in output, output
        assert re.search(rf"{station}: V2G plan .* SetChargingProfile: Accepted", output), output
        assert re.search(rf"{station}: meter values at the CSMS: [1-9]\d* sampled", output), output
    assert output.rstrip().endswith("demo stopped"), output[-500:]
    assert (tmp_path / "demo" / "csms.db").exists()


async def test_chargepoint_simulate_against_our_csms_boots_authorizes_and_meters(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        for n in (1, 2):
            response = await stack.api.post(
                "/stations", json={"id": f"SIMT{n}", "password": STATION_PASSWORD}
            )
            assert response.status_code == 201, response.text
        out = io.StringIO()
        code = await run_simulation(
            SimulateOptions(
                csms_url=stack.ocpp_url,
                stations=2,
                id_prefix="SIMT",
                password=STATION_PASSWORD,
                duration_s=6.0,
                speed=10.0,
                id_token=DRIVER_TOKEN,
                meter_interval_s=10,
                status_every_s=2.0,
                state_dir=tmp_path / "sim",
            ),
            out,
        )
        text = out.getvalue()
        assert code == 0, text
        for station_id in ("SIMT1", "SIMT2"):
            assert f"{station_id}: online (BootNotification Accepted)" in text, text
            assert f"{station_id}: Authorize {DRIVER_TOKEN}: Accepted" in text, text
            page = (await stack.api.get(f"/stations/{station_id}/transactions")).json()
            assert page["total"] == 1, page
            transaction: dict[str, Any] = page["items"][0]
            assert transaction["id_token"] == DRIVER_TOKEN
            # The simulation's orderly stop ends the session and delivers the Ended event.
            assert transaction["state"] == "Ended", transaction
            samples = await stack.meter_values(station_id, transaction["transaction_id"])
            imports = [s["value"] for s in samples if s["measurand"].endswith("Import.Register")]
            assert len(samples) >= 5 and imports and max(imports) > 0, samples[:3]


def test_csms_demo_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "csms",
            "demo",
            "--stations",
            "1",
            "--api-port",
            "0",
            "--ocpp-port",
            "0",
            "--data-dir",
            str(tmp_path / "demo"),
            "--plain",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            seen.append(line)
            if "SetChargingProfile: Accepted" in line:
                break
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = "".join(seen) + rest
    assert process.returncode == 0, output
    assert "stopping: ending transactions" in output, output
    assert "DEMO-1: session ended" in output, output
    assert output.rstrip().endswith("demo stopped"), output[-500:]


async def test_demo_live_view_redraws_the_table_in_place(tmp_path: Path) -> None:
    out = io.StringIO()
    options = DemoOptions(
        stations=1,
        speed=60.0,
        duration_s=4.0,
        data_dir=tmp_path / "demo",
        api_port=0,
        ocpp_port=0,
        live=True,
    )
    assert await run_demo(options, out) == 0
    screens = out.getvalue().split("\x1b[H\x1b[2J")
    assert len(screens) >= 3  # one redraw per second
    last = screens[-1]
    assert "API token csms_" in last and "STATION" in last and "DEMO-1" in last
    assert "Simulated NEM time Mon 05 Aug 12:0" in screens[1]
    assert "Events (newest last):" in last and "DEMO-1: booted" in last
