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
            "15",
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
    assert "prices: 288 five-minute household prices stored" in output, output
    for station in ("DEMO-1", "DEMO-2"):
        assert f"{station}: booted (BootNotification Accepted)" in output, output
        assert f"{station}: vehicle {station}-EV registered with the V2G service" in output
        assert f"{station}: transaction" in output, output
        # The plan comes from the V2G service (POST /stations/{id}/v2g/optimize) and says
        # what its energy is: at the meter, what is sold bought back, the losses.
        assert re.search(
            rf"{station}: V2G plan from the optimizer \(until departure, at the meter: charge "
            r"[\d.]+ kWh, discharge [\d.]+ kWh at the peak \(bought back later: net [-+][\d.]+ "
            r"kWh = [-+][\d.]+ kWh into the \d+ kWh battery \+ [\d.]+ kWh losses\); SoC \d+% "
            r"-> \d+% \(target 80%\)\) sent as SetChargingProfile: Accepted",
            output,
        ), output
        assert re.search(rf"{station}: meter values at the CSMS: [1-9]\d* sampled", output), output
    # Plain mode: the clock and both prices above each table, and a legend.
    assert re.search(
        r"Simulated NEM time \w{3} \d\d Aug \d\d:\d\d AEST \(day 1\)   import price "
        r"-?[\d.]+ c/kWh, export -?[\d.]+ c/kWh\nSTATION ",
        output,
    ), output
    assert "SAMPLES   meter values (sampled values) the CSMS has stored" in output
    # It ends with the money and the targets.
    money = output[output.index("The money per car") :]
    for station, car in (("DEMO-1", "Nissan Leaf 24 kWh"), ("DEMO-2", "Nissan Leaf 40 kWh")):
        block = money[money.index(f"  {station} {car}") :]
        assert re.search(
            r"planned for the day \(from \d+ % to 80 % at departure\): V2G plan [-+][\d.]+ AUD, "
            r"plain charging [-+][\d.]+ AUD: V2G (saves|costs) [\d.]+ AUD",
            block,
        ), money
        assert re.search(r"at the meter \(.*\): in [\d.]+ kWh for [\d.]+ AUD", block), money
        assert re.search(r"target 80 % at departure.*\d+\.\d %", block), money
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


async def test_demo_drives_the_v2g_service_vehicles_plans_and_economics_stay(
    tmp_path: Path,
) -> None:
    """After a run, the CSMS's own records hold what the demo did through the V2G service."""
    from datetime import timedelta

    from csms.services.container import build_services
    from csms.services.v2g import v2g_service_for
    from csms.settings import Settings

    out = io.StringIO()
    options = DemoOptions(
        stations=1,
        speed=360.0,
        duration_s=12.0,
        data_dir=tmp_path / "demo",
        api_port=0,
        ocpp_port=0,
        live=False,
    )
    assert await run_demo(options, out) == 0
    text = out.getvalue()
    assert "V2G plan from the optimizer" in text and "The money per car" in text, text
    assert "Running HiGHS" not in text  # the solver prints nothing into the demo
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'demo' / 'csms.db'}",
        password_key_file=tmp_path / "demo" / "csms.password-key",
    )
    services = build_services(settings)
    await services.start()
    try:
        v2g = v2g_service_for(services)
        vehicles = await v2g.list_vehicles()
        assert [(v.id, v.station_id, v.evse_id) for v in vehicles] == [("DEMO-1-EV", "DEMO-1", 1)]
        assert vehicles[0].capacity_kwh == 24.0 and vehicles[0].target_soc == 0.8
        plan = await v2g.current_plan("DEMO-1")
        assert plan.status == "Accepted" and plan.vehicle_id == "DEMO-1-EV"
        planned_at = plan.planned_at
        report = await v2g.economics(
            "DEMO-1-EV", planned_at - timedelta(hours=1), planned_at + timedelta(days=2)
        )
        assert report.economics.imported_kwh > 0  # priced from the stored NEM day
        assert report.unpriced_kwh == 0
    finally:
        await services.close()


async def test_demo_publishes_to_home_assistant_over_mqtt_when_configured(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """CSMS_MQTT_URL set: the demo's vehicles appear over MQTT discovery with their state."""
    import asyncio
    import json
    import uuid
    from urllib.parse import urlsplit

    import pytest

    url = os.environ.get("CSMS_TEST_MQTT_URL")
    if not url:
        pytest.skip("CSMS_TEST_MQTT_URL not set (MQTT broker tests skipped)")
    import aiomqtt

    prefix = f"demo-{uuid.uuid4().hex[:8]}"
    discovery = f"ha-demo-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("CSMS_MQTT_URL", url)
    monkeypatch.setenv("CSMS_MQTT_TOPIC_PREFIX", prefix)
    monkeypatch.setenv("CSMS_MQTT_DISCOVERY_PREFIX", discovery)
    monkeypatch.setenv("CSMS_MQTT_STATE_INTERVAL_S", "0.5")
    parts = urlsplit(url)
    seen: dict[str, Any] = {}
    async with aiomqtt.Client(parts.hostname or "127.0.0.1", parts.port or 1883) as client:
        await client.subscribe(f"{prefix}/#")
        await client.subscribe(f"{discovery}/#")

        async def collect() -> None:
            async for message in client.messages:
                body = message.payload
                if isinstance(body, bytes | bytearray) and body:
                    try:
                        seen[str(message.topic)] = json.loads(body)
                    except ValueError:  # the availability topic says online / offline
                        seen[str(message.topic)] = body.decode()

        collector = asyncio.create_task(collect())
        try:
            options = DemoOptions(
                stations=1,
                speed=360.0,
                duration_s=10.0,
                data_dir=tmp_path / "demo",
                api_port=0,
                ocpp_port=0,
                live=False,
            )
            assert await run_demo(options, io.StringIO()) == 0
            await asyncio.sleep(0.5)
        finally:
            collector.cancel()
    state_topic = f"{prefix}/DEMO-1-EV/state"
    assert state_topic in seen, sorted(seen)
    assert any(t.startswith(f"{discovery}/") and "DEMO-1-EV" in t for t in seen), sorted(seen)
    state = seen[state_topic]
    soc = state.get("battery_soc")
    assert isinstance(soc, int | float) and 0 < soc <= 100, state
