"""The small parts the demo and `chargepoint simulate` are built from: the scaled agent clock,
the credentials file, the console view, and reading the plan at a moment."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from chargepoint_firmware.settings import ConfigError
from chargepoint_firmware.simulate import ScaledClock, read_credentials, station_settings
from csms.v2g.optimizer import VehiclePlan
from v2g_demo.run import plan_power_kw
from v2g_demo.view import Snapshot, StationRow, render

ORIGIN = datetime(2024, 8, 5, 2, 0, tzinfo=UTC)


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_scaled_clock_runs_speed_times_faster_from_its_origin() -> None:
    mono = FakeMonotonic()
    clock = ScaledClock(360.0, origin=ORIGIN, monotonic=mono)
    assert clock.now() == ORIGIN
    mono.now += 10.0  # ten real seconds
    assert clock.now() == ORIGIN + timedelta(hours=1)
    assert clock.real_seconds(3600) == 10.0
    with pytest.raises(ValueError):
        ScaledClock(0.0)


async def test_scaled_clock_sleeps_simulated_time_in_real_time_divided_by_speed() -> None:
    clock = ScaledClock(100.0)
    started = time.monotonic()
    await clock.sleep_until(clock.now() + timedelta(seconds=20))  # 0.2 s real
    elapsed = time.monotonic() - started
    assert 0.18 <= elapsed < 1.0
    await asyncio.wait_for(clock.sleep_until(clock.now() - timedelta(seconds=5)), 0.1)


def test_credentials_file_lines_and_json(tmp_path: Path) -> None:
    lines = tmp_path / "creds.csv"
    lines.write_text("# station,password\nSIM1, password-number-0001\nSIM2,password-number-0002\n")
    assert read_credentials(lines) == {
        "SIM1": "password-number-0001",
        "SIM2": "password-number-0002",
    }
    as_json = tmp_path / "creds.json"
    as_json.write_text('{"SIM1": "password-number-0001"}')
    assert read_credentials(as_json) == {"SIM1": "password-number-0001"}
    bad = tmp_path / "bad.csv"
    bad.write_text("SIM1 without a comma\n")
    with pytest.raises(ConfigError, match="line 1"):
        read_credentials(bad)
    with pytest.raises(ConfigError):
        read_credentials(tmp_path / "missing.csv")


def test_station_settings_pick_the_security_profile_from_password_and_scheme(
    tmp_path: Path,
) -> None:
    plain = station_settings("S1", "ws://127.0.0.1:9000/ocpp", tmp_path)
    assert plain.security.profile == 0 and plain.hardware == "simulated"
    basic = station_settings("S1", "ws://127.0.0.1:9000/ocpp", tmp_path, password="p" * 16)
    assert basic.security.profile == 1
    tls = station_settings("S1", "wss://127.0.0.1:9000/ocpp", tmp_path, password="p" * 16)
    assert tls.security.profile == 2
    other = station_settings("S2", "ws://127.0.0.1:9000/ocpp", tmp_path)
    assert other.can.channel != plain.can.channel  # one virtual bus per station


def test_plan_power_at_a_moment_follows_the_plan_intervals() -> None:
    start = ORIGIN
    plan = VehiclePlan(
        vehicle_id="V",
        start=start,
        departure=start + timedelta(minutes=15),
        interval_starts=tuple(start + timedelta(minutes=5 * k) for k in range(3)),
        hours=(5 / 60,) * 3,
        power_kw=(6.0, 0.0, -5.0),
        soc_start=0.5,
        soc_after=(0.52, 0.52, 0.5),
        target_soc=0.5,
        target_met=True,
    )
    assert plan_power_kw(plan, start) == 6.0
    assert plan_power_kw(plan, start + timedelta(minutes=7)) == 0.0
    assert plan_power_kw(plan, start + timedelta(minutes=14, seconds=59)) == -5.0
    assert plan_power_kw(plan, start + timedelta(minutes=15)) is None
    assert plan_power_kw(plan, start - timedelta(seconds=1)) is None


def test_console_view_shows_every_station_and_the_newest_events() -> None:
    row = StationRow(
        station_id="DEMO-1",
        car="Nissan Leaf 24 kWh",
        state="discharging",
        setpoint_kw=-5.0,
        commanded_a=-13.4,
        limited_by="schedule",
        current_a=-13.3,
        power_kw=-4.95,
        soc_pct=61.25,
        energy_in_kwh=1.5,
        energy_out_kwh=3.25,
        meter_values=42,
    )
    screen = render(
        Snapshot(
            header=["csms demo"],
            sim_time=datetime(2024, 8, 5, 17, 35),
            price_c_kwh=1467.25,
            rows=[row],
            events=[f"event {n}" for n in range(20)],
        ),
        event_lines=5,
    )
    assert "DEMO-1" in screen and "discharging" in screen
    # units live in the column headers (PLAN kW, METER kW), the cells hold the numbers
    assert "PLAN kW" in screen and "-5.0 " in screen and "-4.95" in screen
    assert "61.2%" in screen or "61.3%" in screen
    assert "Mon 05 Aug 17:35" in screen and "1467.2" in screen
    assert "event 19" in screen and "event 15" in screen and "event 14" not in screen
