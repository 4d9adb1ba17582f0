"""Issue 12 finding 3: `chargepoint check-config` never prints the station password."""

from __future__ import annotations

from pathlib import Path

import pytest

from chargepoint_firmware.cli import main
from chargepoint_firmware.settings import redact

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "tests" / "data" / "agent" / "station.toml"
PASSWORD = "Sup3r-S3cret-Passw0rd"


def test_finding3_check_config_redacts_the_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CHARGEPOINT_SECURITY__PROFILE", "1")
    monkeypatch.setenv("CHARGEPOINT_SECURITY__BASIC_AUTH_PASSWORD", PASSWORD)
    assert main(["check-config", "--config", str(SAMPLE)]) == 0
    out = capsys.readouterr().out
    assert PASSWORD not in out
    assert f'"basic_auth_password": "*** ({len(PASSWORD)} chars)"' in out
    assert '"profile": 1' in out  # the rest is still shown


def test_finding3_redact_reaches_nested_and_listed_values() -> None:
    dumped = {"a": [{"basic_auth_password": "x" * 16}], "basic_auth_password": None, "b": 1}
    assert redact(dumped) == {
        "a": [{"basic_auth_password": "*** (16 chars)"}],
        "basic_auth_password": None,
        "b": 1,
    }
