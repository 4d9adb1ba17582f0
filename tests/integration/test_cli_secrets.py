"""Finding 5 (secrets in clear): the `csms` command line does not print a password that sits
in a database or broker URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from csms.cli import main

SECRET = "hunter2-not-for-the-terminal"


@pytest.mark.parametrize(
    ("flag", "url"),
    [
        ("--database-url", f"mysql://admin:{SECRET}@db.example/csms"),
        ("--broker-url", f"amqp://csms:{SECRET}@broker.example:5672"),
    ],
)
def test_finding5_settings_error_does_not_print_url_password(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    flag: str,
    url: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CSMS_DATABASE_URL", raising=False)
    assert main(["serve", flag, url, "--ocpp-port", "0", "--api-port", "0"]) == 2
    err = capsys.readouterr().err
    assert flag in err and ":***@" in err  # the field is still named, the URL still shown
    assert SECRET not in err
