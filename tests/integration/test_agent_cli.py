"""The `chargepoint` command: configuration errors, and `run` with the simulated CHAdeMO EVSE."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from chargepoint_firmware.cli import main
from tests.support.agent_test_csms import AgentTestCsms

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "tests" / "data" / "agent" / "station.toml"


def test_sample_configuration_is_valid(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "--config", str(SAMPLE)]) == 0
    assert '"station_id": "CP-0001"' in capsys.readouterr().out


def test_bad_configuration_stops_with_the_field_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('station_id = "X"\ncsms_url = "http://nope"\n')
    assert main(["run", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "csms_url" in err and "ws://" in err


def test_environment_overrides_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CHARGEPOINT_STATION_ID", "FROM-ENV")
    monkeypatch.setenv("CHARGEPOINT_SECURITY__PROFILE", "1")
    monkeypatch.setenv("CHARGEPOINT_SECURITY__BASIC_AUTH_PASSWORD", "p" * 20)
    assert main(["check-config", "--config", str(SAMPLE)]) == 0
    out = capsys.readouterr().out
    assert '"station_id": "FROM-ENV"' in out
    assert '"profile": 1' in out


def test_chademo_hardware_needs_ports_factory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        f'station_id = "X"\ncsms_url = "ws://127.0.0.1:1/ocpp"\nstate_dir = "{tmp_path}"\n'
        'hardware = "chademo"\n'
    )
    assert main(["run", "--config", str(config)]) == 2
    assert "ports_factory" in capsys.readouterr().err


def _spawn_run(config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "chargepoint_firmware", "run", "--config", str(config)],
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def test_run_boots_with_the_simulated_chademo_evse_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    csms = AgentTestCsms()
    url = await csms.start()
    text = SAMPLE.read_text()
    text = text.replace('csms_url = "ws://127.0.0.1:9000/ocpp"', f'csms_url = "{url}"')
    text = text.replace('state_dir = "./chargepoint-state"', f'state_dir = "{tmp_path / "s"}"')
    text = text.replace('channel = "chademo0"', f'channel = "cli-test-{os.getpid()}"')
    config = tmp_path / "station.toml"
    config.write_text(text)
    proc = _spawn_run(config)
    try:
        boots = await csms.wait_for("BootNotification", within_s=20)
        assert boots[0]["chargingStation"]["model"] == "CHAdeMO-V2X"
        statuses = await csms.wait_for("StatusNotification")
        assert statuses[0]["connectorStatus"] == "Available"
        proc.send_signal(signal.SIGTERM)
        # Wait without blocking the loop: the CSMS must answer the websocket close.
        assert await asyncio.to_thread(proc.wait, 15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        await csms.stop()


def test_chademo_decode_subcommand_prints_json_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    source = REPO / "tests" / "data" / "chademo" / "leaf-ze0-v2x-session.csv"
    log = tmp_path / "head.csv"
    log.write_text("".join(source.read_text().splitlines(keepends=True)[:30]))
    assert main(["chademo-decode", str(log)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert lines and {"id", "name"} <= set(lines[0])


def test_simulate_is_delegated_to_its_own_parser(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--help"]) == 0
    assert "usage: chargepoint simulate" in capsys.readouterr().out
    assert main(["simulate", "--stations", "2"]) == 2  # --csms-url is required
    assert "--csms-url" in capsys.readouterr().err


def test_chademo_decode_of_a_missing_log_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["chademo-decode", str(tmp_path / "absent.log")]) == 2
    err = capsys.readouterr().err
    assert "cannot read" in err and "Traceback" not in err
