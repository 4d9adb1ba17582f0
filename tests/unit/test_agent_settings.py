"""Agent configuration: TOML + environment, validation errors naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from chargepoint_firmware.settings import ConfigError, load_settings

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "agent" / "station.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "station.toml"
    path.write_text(text)
    return path


BASE = 'station_id = "CP1"\ncsms_url = "ws://127.0.0.1:9000/ocpp"\n'


def test_sample_loads_with_documented_values() -> None:
    s = load_settings(SAMPLE)
    assert s.station_id == "CP-0001"
    assert s.station_url == "ws://127.0.0.1:9000/ocpp/CP-0001"
    assert s.hardware == "simulated"
    assert s.can.interface == "virtual"
    assert s.evse(1).max_discharge_current_a == 20.0
    assert s.safety.offline_safe_limit_a == 0.0


def test_defaults_one_evse(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, BASE))
    assert [e.id for e in s.evses] == [1]
    assert s.security.profile == 0


def test_environment_wins_over_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHARGEPOINT_CSMS_URL", "ws://10.0.0.1:9000/x")
    monkeypatch.setenv("CHARGEPOINT_CAN__CHANNEL", "can7")
    s = load_settings(write(tmp_path, BASE + '[can]\ninterface = "socketcan"\n'))
    assert s.csms_url == "ws://10.0.0.1:9000/x"
    assert s.can.channel == "can7"
    assert s.can.interface == "socketcan"  # nested values merge


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('station_id = "CP1"\ncsms_url = "http://x"\n', "csms_url"),
        ('csms_url = "ws://x"\n', "station_id"),
        (BASE + "[[evses]]\nid = 2\n", "evses"),
        (BASE + "[[evses]]\nid = 1\nmin_voltage_v = 600\n", "evses.0"),
        (BASE + "[security]\nprofile = 1\n", "basic_auth_password"),
        (
            BASE + '[security]\nprofile = 1\nbasic_auth_password = "short"\n',
            "security.basic_auth_password",
        ),
        (BASE + "[security]\nprofile = 2\nbasic_auth_password = '" + "p" * 16 + "'\n", "wss://"),
        (BASE + "[security]\nprofile = 4\n", "security.profile"),
        (BASE + "[can]\nbitrate = 0\n", "can.bitrate"),
        (BASE + "unknown_key = 1\n", "unknown_key"),
        (BASE + "reconnect_min_s = 5\nreconnect_max_s = 1\n", "reconnect_min_s"),
    ],
)
def test_bad_configuration_names_the_field(tmp_path: Path, text: str, field: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(write(tmp_path, text))
    assert field in str(error.value)


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path, "station_id = \n"))
