"""`csms site add|list|show|update|delete` (issue 18) on a SQLite file in the working directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from csms.cli import main

PASSWORD = "cli-test-password-01"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # the default database: csms.db here
    for name in ("CSMS_DATABASE_URL", "CSMS_OCPP_PORT", "CSMS_API_PORT", "CSMS_OCPP_PATH"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_site_life_cycle(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for station_id in ("CS1", "CS2"):
        assert main(["station", "add", station_id, "--password", PASSWORD]) == 0
    capsys.readouterr()
    added = ["site", "add", "home-1", "--name", "Home", "--nmi", "41023352107"]
    assert main([*added, "--stations", "CS1", "--pin", "111115"]) == 0
    assert "site home-1 added with stations CS1" in capsys.readouterr().out

    assert main(["site", "update", "home-1", "--stations", "CS1,CS2", "--csip"]) == 0
    capsys.readouterr()
    assert main(["site", "list", "--json"]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert listed["station_ids"] == ["CS1", "CS2"]
    assert listed["nmi"] == "41023352107"  # kept: only the given fields change
    assert listed["csip_enabled"] is True and listed["has_registration_pin"] is True
    assert "registration_pin" not in listed
    assert listed["meter_source"] is None

    # The household meter from one of the site's stations (its evse-0 Inlet), and off again.
    assert main(["site", "update", "home-1", "--meter-station", "CS2"]) == 0
    capsys.readouterr()
    assert main(["site", "show", "home-1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["meter_source"] == {"station_id": "CS2"}
    assert main(["site", "update", "home-1", "--meter-station", "CS9"]) == 1  # not the site's
    assert "must be one of the site's" in capsys.readouterr().err
    assert main(["site", "update", "home-1", "--meter-station", ""]) == 0
    capsys.readouterr()
    assert main(["site", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["meter_source"] is None

    assert main(["site", "show", "home-1"]) == 0
    shown = capsys.readouterr().out
    assert "envelope in force: none" in shown and "CS2" in shown
    assert main(["site", "show", "home-1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["in_force"] is None

    # A bad NMI and a station in another site: one line, exit status 1.
    assert main(["site", "update", "home-1", "--nmi", "41023352103"]) == 1
    assert "checksum" in capsys.readouterr().err
    assert main(["site", "add", "home-2", "--name", "Two", "--stations", "CS1"]) == 1
    assert "home-1" in capsys.readouterr().err

    assert main(["site", "delete", "home-1"]) == 0
    capsys.readouterr()
    assert main(["site", "list"]) == 0
    assert "home-1" not in capsys.readouterr().out
    assert main(["site", "show", "home-1"]) == 1
