"""The `csms` command line: station and token administration, migrations, settings errors."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from csms.api.app import create_api
from csms.cli import main
from csms.services.container import build_services
from csms.settings import Settings

PASSWORD = "cli-test-password-01"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # The default database is a SQLite file in the working directory.
    monkeypatch.chdir(tmp_path)
    for name in ("CSMS_DATABASE_URL", "CSMS_OCPP_PORT", "CSMS_API_PORT", "CSMS_OCPP_PATH"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def _stations_with_token(
    database_url: str, token: str, method: str = "GET", json: object = None
) -> httpx.Response:
    async def call() -> httpx.Response:
        services = build_services(Settings(database_url=database_url))
        await services.start()
        try:
            transport = httpx.ASGITransport(app=create_api(services))
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
                return await client.request(
                    method,
                    "/api/v1/stations",
                    json=json,
                    headers={"Authorization": f"Bearer {token}"},
                )
        finally:
            await services.close()

    return asyncio.run(call())


def test_station_add_then_list(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["station", "add", "CS-CLI-1", "--password", PASSWORD]) == 0
    assert "CS-CLI-1 added" in capsys.readouterr().out
    assert (workdir / "csms.db").exists()
    assert (
        main(
            [
                "station",
                "add",
                "CS-CLI-2",
                "--password",
                PASSWORD,
                "--security-profile",
                "2",
                "--boot-policy",
                "Pending",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["station", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:4] == ["CS-CLI-1", "1", "Accepted", "Unknown"]
    assert lines[2].split()[:4] == ["CS-CLI-2", "2", "Pending", "Unknown"]


def test_station_ocpp_versions_add_update_list(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["station", "add", "CS21", "--password", PASSWORD, "--ocpp-versions", "2.1"]
    assert main(args) == 0
    assert "OCPP versions ocpp2.1)" in capsys.readouterr().out
    assert main(["station", "update", "CS21", "--ocpp-versions", "2.0.1,2.1"]) == 0
    assert "OCPP versions ocpp2.0.1,ocpp2.1" in capsys.readouterr().out
    assert main(["station", "update", "CS21", "--ocpp-versions", "global"]) == 0
    assert "OCPP versions global setting" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # argparse refuses an unknown version
        main(["station", "update", "CS21", "--ocpp-versions", "1.6"])
    assert "unknown OCPP version" in capsys.readouterr().err
    assert main(["station", "list"]) == 0
    header, row = capsys.readouterr().out.splitlines()[:2]
    assert "OCPP" in header.split()
    assert row.split()[:5] == ["CS21", "1", "Accepted", "Unknown", "-"]  # never connected


def test_station_add_errors_exit_non_zero(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["station", "add", "CS1", "--password", PASSWORD]) == 0
    assert main(["station", "add", "CS1", "--password", PASSWORD]) == 1
    assert "already exists" in capsys.readouterr().err
    assert main(["station", "add", "CS2", "--password", "short"]) == 1
    assert "password must be" in capsys.readouterr().err


def test_token_create_prints_the_token_last_and_it_authenticates(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["token", "create", "operator"]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    assert " " not in token and len(token) > 30
    database_url = "sqlite+aiosqlite:///./csms.db"
    assert _stations_with_token(database_url, token).status_code == 200
    assert _stations_with_token(database_url, token + "x").status_code == 401

    assert main(["token", "list"]) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[:2] == ["operator", "admin"]
    assert main(["token", "revoke", "operator"]) == 0
    capsys.readouterr()
    assert _stations_with_token(database_url, token).status_code == 401
    assert main(["token", "revoke", "operator"]) == 1
    assert "no active API token" in capsys.readouterr().err


def test_finding10_token_create_with_scope_read_cannot_write(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["token", "create", "dashboard", "--scope", "read"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert "(scope read)" in out[0]
    token = out[-1]
    database_url = "sqlite+aiosqlite:///./csms.db"
    assert _stations_with_token(database_url, token).status_code == 200
    denied = _stations_with_token(database_url, token, "POST", {"id": "CS9", "password": PASSWORD})
    assert denied.status_code == 403
    assert denied.json()["required_scope"] == "admin"
    assert main(["token", "list"]) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[:2] == ["dashboard", "read"]
    with pytest.raises(SystemExit):
        main(["token", "create", "x", "--scope", "root"])


def test_database_url_flag_and_env(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    flag_db = workdir / "flag.db"
    assert (
        main(
            [
                "station",
                "add",
                "A",
                "--password",
                PASSWORD,
                "--database-url",
                f"sqlite+aiosqlite:///{flag_db}",
            ]
        )
        == 0
    )
    assert flag_db.exists()
    env_db = workdir / "env.db"
    monkeypatch.setenv("CSMS_DATABASE_URL", f"sqlite+aiosqlite:///{env_db}")
    assert main(["station", "add", "B", "--password", PASSWORD]) == 0
    assert env_db.exists()
    assert not (workdir / "csms.db").exists()


def test_db_downgrade_and_upgrade(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "upgrade"]) == 0
    assert main(["station", "add", "A", "--password", PASSWORD]) == 0
    assert main(["db", "downgrade", "base"]) == 0
    assert main(["db", "upgrade", "head"]) == 0
    capsys.readouterr()
    assert main(["station", "list"]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == []  # the downgrade dropped the tables


@pytest.mark.parametrize(
    ("argv", "env", "field"),
    [
        (["serve", "--ocpp-port", "70000"], {}, "ocpp_port"),
        (["serve", "--api-port", "eighty"], {}, "api_port"),
        (["serve"], {"CSMS_OCPP_PORT": "-1"}, "ocpp_port"),
        (["serve", "--database-url", "mysql://db"], {}, "database_url"),
        (["station", "list"], {"CSMS_DATABASE_URL": "oracle://db"}, "database_url"),
        (["serve", "--log-level", "LOUD"], {}, "log_level"),
    ],
)
def test_bad_settings_exit_non_zero_naming_the_field(
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    env: dict[str, str],
    field: str,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"'{field}'" in err
    assert f"CSMS_{field.upper()}" in err


@pytest.mark.parametrize(("what", "setting"), [("REST API", "api_port"), ("OCPP", "ocpp_port")])
def test_finding6_a_busy_port_is_one_line_naming_the_port_and_its_setting(
    workdir: Path, capsys: pytest.CaptureFixture[str], what: str, setting: str
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ports = {"api_port": "0", "ocpp_port": "0", setting: str(port)}
        argv = [
            "serve",
            "--api-host",
            "127.0.0.1",
            "--ocpp-host",
            "127.0.0.1",
            "--api-port",
            ports["api_port"],
            "--ocpp-port",
            ports["ocpp_port"],
        ]
        assert main(argv) == 1
    err = capsys.readouterr().err
    # serve logs its start (INFO) first; the failure itself is one line, no traceback
    (line,) = [entry for entry in err.splitlines() if entry.startswith("csms: ")]
    assert line.startswith(f"csms: cannot listen on the {what} port 127.0.0.1:{port}: ")
    assert "already in use" in line
    assert f"--{setting.replace('_', '-')} / CSMS_{setting.upper()}" in line
    assert "Traceback" not in err


def test_unreachable_database_is_one_line_not_a_traceback(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Nothing listens on a port just closed: the driver's connection refusal is the message.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql+asyncpg://postgres:s3cret-pw@127.0.0.1:{port}/test"
    assert main(["station", "list", "--database-url", url]) == 1
    err = capsys.readouterr().err
    # log lines may come first (an earlier `serve` in this process configured logging)
    (line,) = [entry for entry in err.splitlines() if entry.startswith("csms: ")]
    assert "refused" in line.lower()
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "argv",
    [
        ["db", "upgrade"],
        ["station", "list"],
        ["token", "list"],
        ["serve", "--api-port", "0", "--ocpp-port", "0", "--api-host", "127.0.0.1"],
    ],
)
def test_finding6_an_unreachable_postgresql_is_named_as_the_database_with_host_and_port(
    workdir: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    with socket.socket() as probe:  # nothing listens on a port just closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql+asyncpg://csms:s3cret-pw@127.0.0.1:{port}/v2g"
    assert main([*argv, "--database-url", url]) == 1
    err = capsys.readouterr().err
    # serve logs its start (INFO) first; the failure itself is one line, no traceback
    (line,) = [entry for entry in err.splitlines() if entry.startswith("csms: ")]
    assert line.startswith(
        f"csms: cannot use the PostgreSQL database v2g at 127.0.0.1:{port} (user csms)"
    )
    assert "--database-url, CSMS_DATABASE_URL" in line
    assert "refused" in line.lower()
    assert "s3cret-pw" not in err


def test_console_script_runs_as_a_process(workdir: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "csms", "serve", "--ocpp-port", "99999"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "ocpp_port" in result.stderr


def test_v2g_is_delegated(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["v2g", "--help"])
    out, err = capsys.readouterr()
    try:
        import csms.v2g_cli  # noqa: F401
    except ModuleNotFoundError:
        assert status == 1
        assert "csms.v2g_cli" in err
    else:
        assert out or err  # the v2g CLI printed its own help


def test_every_setting_has_a_serve_flag_and_flags_win_over_env(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from csms.cli import build_parser, load_settings

    monkeypatch.setenv("CSMS_OCPP_PORT", "9100")
    monkeypatch.setenv("CSMS_API_PORT", "8100")
    args = build_parser().parse_args(
        [
            "serve",
            "--ocpp-port",
            "9200",
            "--ocpp-path",
            "/v2/",
            "--no-validate-messages",
            "--command-timeout-s",
            "5.5",
            "--log-level",
            "DEBUG",
        ]
    )
    settings = load_settings(args)
    assert settings.ocpp_port == 9200  # flag wins
    assert settings.api_port == 8100  # env used when no flag
    assert settings.ocpp_path == "v2"
    assert settings.validate_messages is False
    assert settings.command_timeout_s == 5.5
    assert settings.log_level == "DEBUG"
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["serve", "--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    for name in Settings.model_fields:
        assert "--" + name.replace("_", "-") in help_text, name


def test_station_add_writes_the_key_beside_the_database_and_a_bad_key_is_one_line(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["station", "add", "A", "--password", PASSWORD]) == 0
    assert (workdir / "csms.password-key").stat().st_mode & 0o077 == 0  # private to its owner
    bad = workdir / "bad.key"
    bad.write_text("not a key")
    monkeypatch.setenv("CSMS_PASSWORD_KEY_FILE", str(bad))
    capsys.readouterr()
    assert main(["station", "list"]) == 2
    err = capsys.readouterr().err
    assert "bad.key" in err and "hex key" in err and "Traceback" not in err


def test_finding6_every_serve_flag_has_a_description() -> None:
    import argparse

    from csms.cli import build_parser
    from csms.settings_help import SETTING_HELP

    # Every setting has a description, and the help table names no setting that is gone.
    for name, info in Settings.model_fields.items():
        assert (info.description or SETTING_HELP.get(name, "")).strip(), name
    assert set(SETTING_HELP) <= set(Settings.model_fields)

    (commands,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    serve = commands.choices["serve"]
    assert serve.description
    flags = [a for a in serve._actions if a.option_strings and a.dest != "help"]
    assert len(flags) == len(Settings.model_fields)
    for action in flags:
        help_text = action.help or ""
        described = help_text.split(" (env CSMS_")[0].strip()
        assert described, action.option_strings
        assert f"CSMS_{action.dest.removeprefix('setting_').upper()}" in help_text
    # argparse renders it (a stray % in a description would raise here).
    assert "postgresql+asyncpg://" in serve.format_help()


def test_finding6_list_commands_print_json_with_json(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json
    from datetime import datetime

    assert main(["station", "add", "CS-JSON-1", "--password", PASSWORD]) == 0
    assert (
        main(["station", "add", "CS-JSON-2", "--password", PASSWORD, "--security-profile", "2"])
        == 0
    )
    assert main(["token", "create", "ops", "--scope", "operate"]) == 0
    secret = capsys.readouterr().out.strip().splitlines()[-1]
    assert main(["token", "create", "old", "--scope", "read"]) == 0
    assert main(["token", "revoke", "old"]) == 0
    capsys.readouterr()

    assert main(["station", "list", "--json"]) == 0
    stations = json.loads(capsys.readouterr().out)
    assert [s["id"] for s in stations] == ["CS-JSON-1", "CS-JSON-2"]
    assert [s["security_profile"] for s in stations] == [1, 2]
    assert stations[0]["boot_policy"] == "Accepted"
    assert stations[0]["has_password"] is True
    assert "password" not in stations[0] and "password_hash" not in stations[0]

    assert main(["token", "list", "--json"]) == 0
    out = capsys.readouterr().out
    tokens = {t["name"]: t for t in json.loads(out)}
    assert set(tokens) == {"ops", "old"}
    assert tokens["ops"]["scope"] == "operate" and tokens["ops"]["revoked"] is False
    assert tokens["old"]["revoked"] is True
    datetime.fromisoformat(tokens["old"]["revoked_at"])
    datetime.fromisoformat(tokens["ops"]["created_at"])
    assert secret not in out


def test_finding6_id_token_add_list_json_and_remove(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    assert main(["id-token", "add", "SIM-DRIVER"]) == 0
    assert main(["id-token", "add", "04A2B3C4", "--type", "ISO15693"]) == 0
    assert "SIM-DRIVER (ISO14443) added, status Accepted" in capsys.readouterr().out
    assert main(["id-token", "list", "--json"]) == 0
    tokens = {(t["id_token"], t["type"]): t for t in json.loads(capsys.readouterr().out)}
    assert set(tokens) == {("SIM-DRIVER", "ISO14443"), ("04A2B3C4", "ISO15693")}
    assert tokens["SIM-DRIVER", "ISO14443"]["status"] == "Accepted"
    assert main(["id-token", "remove", "04A2B3C4", "--type", "ISO15693"]) == 0
    capsys.readouterr()
    assert main(["id-token", "list"]) == 0
    listing = capsys.readouterr().out
    assert "SIM-DRIVER" in listing and "04A2B3C4" not in listing
    assert main(["id-token", "remove", "04A2B3C4", "--type", "ISO15693"]) == 1
    assert main(["id-token", "add", "X", "--type", "Bogus"]) == 1
    assert "idToken type must be one of" in capsys.readouterr().err
