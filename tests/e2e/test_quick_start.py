"""The README's quick start, as a user types it (issue 15, finding 6).

`csms station add` + `csms id-token add SIM-DRIVER` + `csms serve`, then `chargepoint simulate`
against it: the simulator's driver token is Accepted, a transaction starts and the car charges,
and the simulator leaves nothing in the working directory. The commands are the README's (this
test checks they are still written there); only free ports replace 9000/8000.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "sim1-password-0001"
README_COMMANDS = (
    f"csms station add SIM1 --password {PASSWORD}",
    "csms id-token add SIM-DRIVER",
    "csms serve",
    f"chargepoint simulate --csms-url ws://127.0.0.1:9000/ocpp --password {PASSWORD}",
)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CSMS_", "CHARGEPOINT_"))}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _csms(*args: str) -> list[str]:
    return [sys.executable, "-m", "csms", *args]


def test_finding6_readme_commands_are_the_ones_tested() -> None:
    readme = (ROOT / "README.md").read_text()
    for command in README_COMMANDS:
        assert f".venv/bin/{command}" in readme, command


def test_finding6_quick_start_serve_and_simulate_charges_first_time(tmp_path: Path) -> None:
    env = _env()
    for command in README_COMMANDS[:2]:
        done = subprocess.run(
            _csms(*command.split()[1:]),
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
    serve = subprocess.Popen(
        _csms("serve", "--ocpp-host", "127.0.0.1", "--ocpp-port", "0", "--api-port", "0"),
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert serve.stdout is not None
        ocpp_url = None
        deadline = time.monotonic() + 90
        while ocpp_url is None and time.monotonic() < deadline:
            line = serve.stdout.readline()
            if not line:
                break
            found = re.search(r"OCPP server listening on (ws://\S+)/<stationId>", line)
            ocpp_url = found.group(1) if found else None
        assert ocpp_url is not None, "csms serve did not start"
        simulate = subprocess.run(
            [
                sys.executable,
                "-m",
                "chargepoint_firmware",
                "simulate",
                "--csms-url",
                ocpp_url,
                "--password",
                PASSWORD,
                "--duration",
                "12",
                "--speed",
                "10",
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        serve.send_signal(signal.SIGTERM)
        try:
            serve.communicate(timeout=60)
        finally:
            if serve.poll() is None:
                serve.kill()
    output = simulate.stdout + simulate.stderr
    assert simulate.returncode == 0, output
    assert "SIM1: online (BootNotification Accepted)" in output, output
    assert "SIM1: Authorize SIM-DRIVER: Accepted" in output, output
    assert "SIM1: transaction started" in output, output
    # The car took energy (the last status line, printed after the stop, has the total).
    imported = re.findall(r"SIM1: .* in (\d+\.\d+) kWh", output)
    assert imported and float(imported[-1]) > 0, output
    # Nothing of the simulator's in the working directory: only the CSMS's database and key.
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("csms.db")) == [
        "csms.password-key"
    ]
    assert serve.returncode == 0
