"""The deployment examples in deploy/ are valid: the settings loaders accept the example
configurations, and systemd accepts the units (issue 15, "Deployment").

- deploy/csms.env: every line names a CSMS setting, and Settings built from it validates;
- deploy/chargepoint.toml: `chargepoint`'s loader accepts it for a real charger (SocketCAN);
- deploy/systemd/*.service: `systemd-analyze verify` finds nothing to say, with ExecStart
  pointed at this checkout's installed commands; the paths the units name are the ones the
  examples and the README use.
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from chargepoint_firmware.settings import load_settings
from csms.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
INSTALLED_BIN = "/opt/v2g-platform/bin/"


def read_env_file(path: Path) -> dict[str, str]:
    """systemd EnvironmentFile lines: KEY=VALUE, '#' comments, blank lines."""
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep and key == key.strip() and key.isidentifier(), f"{path}:{number}: {raw!r}"
        assert key not in values, f"{path}:{number}: {key} twice"
        values[key] = value
    return values


def test_csms_env_example_names_only_settings_and_validates(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    values = read_env_file(DEPLOY / "csms.env")
    fields = {f"CSMS_{name.upper()}" for name in Settings.model_fields}
    assert set(values) <= fields, set(values) - fields
    for name in list(os.environ):
        if name.startswith("CSMS_"):
            monkeypatch.delenv(name)
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.database_url.startswith("postgresql+asyncpg://")
    assert settings.api_host == "127.0.0.1"  # behind a proxy by default
    assert settings.ocpp_port == 9000


def test_chargepoint_example_is_a_real_charger_config_the_loader_accepts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in list(os.environ):
        if name.startswith("CHARGEPOINT_"):
            monkeypatch.delenv(name)
    settings = load_settings(DEPLOY / "chargepoint.toml")
    assert settings.hardware == "chademo"
    assert settings.can.interface == "socketcan"
    assert settings.security.profile == 1 and settings.csms_url.startswith("ws://")
    assert settings.state_dir == Path("/var/lib/chargepoint")


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((DEPLOY / "systemd" / name).read_text())
    return parser


def test_units_name_the_example_files_and_installed_commands() -> None:
    csms = _unit("csms.service")["Service"]
    assert csms["EnvironmentFile"] == "/etc/csms/csms.env"
    assert csms["ExecStart"] == f"{INSTALLED_BIN}csms serve"
    assert csms["StateDirectory"] == "csms"
    chargepoint = _unit("chargepoint.service")["Service"]
    assert chargepoint["ExecStart"] == (
        f"{INSTALLED_BIN}chargepoint run --config /etc/chargepoint/station.toml"
    )
    assert chargepoint["StateDirectory"] == "chargepoint"
    assert load_settings(DEPLOY / "chargepoint.toml").state_dir == Path("/var/lib/chargepoint")
    readme = (ROOT / "README.md").read_text()
    for path in ("deploy/csms.env", "deploy/chargepoint.toml", "deploy/systemd/"):
        assert path in readme, path


@pytest.mark.parametrize("name", ["csms.service", "chargepoint.service"])
def test_systemd_accepts_the_units(name: str, tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here")
    # ExecStart must name an executable that exists: this checkout's installed command.
    bin_dir = Path(sys.executable).parent
    assert (bin_dir / "csms").exists() and (bin_dir / "chargepoint").exists()
    unit = tmp_path / name
    unit.write_text((DEPLOY / "systemd" / name).read_text().replace(INSTALLED_BIN, f"{bin_dir}/"))
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    said = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if str(unit) in line or name in line
    ]
    assert result.returncode == 0 and said == [], result.stdout + result.stderr
