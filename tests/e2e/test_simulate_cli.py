"""`chargepoint simulate` as a user runs it (a subprocess) against the project CSMS."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from tests.support.e2e_stack import DRIVER_TOKEN, STATION_PASSWORD, running_stack

ROOT = Path(__file__).resolve().parents[2]


async def test_chargepoint_simulate_command_runs_stations_for_its_duration(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        credentials = tmp_path / "credentials.csv"
        lines = ["# station,password"]
        for n in (1, 2, 3):
            station_id = f"CLI{n}"
            response = await stack.api.post(
                "/stations", json={"id": station_id, "password": STATION_PASSWORD}
            )
            assert response.status_code == 201, response.text
            lines.append(f"{station_id},{STATION_PASSWORD}")
        credentials.write_text("\n".join(lines) + "\n")
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "chargepoint_firmware",
            "simulate",
            "--csms-url",
            stack.ocpp_url,
            "--stations",
            "3",
            "--id-prefix",
            "CLI",
            "--credentials",
            str(credentials),
            "--duration",
            "6",
            "--speed",
            "10",
            "--id-token",
            DRIVER_TOKEN,
            "--meter-interval",
            "10",
            "--state-dir",
            str(tmp_path / "sim"),
            cwd=ROOT,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        stdout, _ = await asyncio.wait_for(process.communicate(), 60)
        output = stdout.decode()
        assert process.returncode == 0, output
        for station_id in ("CLI1", "CLI2", "CLI3"):
            assert f"{station_id}: online (BootNotification Accepted)" in output, output
            assert f"{station_id}: Authorize {DRIVER_TOKEN}: Accepted" in output, output
            assert f"{station_id}: transaction started" in output, output
            page = (await stack.api.get(f"/stations/{station_id}/transactions")).json()
            assert page["total"] == 1 and page["items"][0]["state"] == "Ended", page
            samples = await stack.meter_values(station_id, page["items"][0]["transaction_id"])
            assert len(samples) >= 5, samples
        assert output.rstrip().endswith("stopped"), output[-300:]


async def test_chargepoint_simulate_rejects_a_bad_credentials_file(tmp_path: Path) -> None:
    bad = tmp_path / "credentials.csv"
    bad.write_text("no comma here\n")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chargepoint_firmware",
        "simulate",
        "--csms-url",
        "ws://127.0.0.1:9/ocpp",
        "--credentials",
        str(bad),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    assert "line 1" in stderr.decode()
