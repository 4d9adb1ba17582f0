"""The pure pieces of the CSIP-AUS test harness (tests/support/csip_server.py, csip_cactus.py):
2030.5 identifiers of a test certificate, the certificate header, where the vendored wheels
are found, and reading the CACTUS runner's finalize zip (bounded)."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import sys
import urllib.parse
import zipfile
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, load_pem_private_key

from tests.support import csip_cactus, csip_server
from tests.support.csip_cactus import parse_finalize_zip, parse_status
from tests.support.csip_server import (
    ENVOY_WHEEL,
    cert_header_value,
    make_identity,
    marker_text,
    sfdi_of,
    vendor_dir,
)


def test_sfdi_of_the_2030_5_example() -> None:
    # IEEE 2030.5 section 6.3.3's example: this LFDI has SFDI 167261211391.
    assert sfdi_of("3E4F45AB31EDFE5B67E343E5E4562E31984E23E5") == 167261211391


def test_identity_is_a_current_p256_certificate_with_its_lfdi() -> None:
    identity = make_identity("unit")
    cert = x509.load_pem_x509_certificate(identity.cert_pem.encode())
    now = dt.datetime.now(dt.UTC)
    assert cert.not_valid_before_utc <= now < cert.not_valid_after_utc
    public = cert.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name == "secp256r1"
    key = load_pem_private_key(identity.key_pem.encode(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.public_key().public_numbers() == public.public_numbers()
    der = cert.public_bytes(Encoding.DER)
    assert identity.lfdi == hashlib.sha256(der).hexdigest()[:40]
    assert identity.sfdi == sfdi_of(identity.lfdi)
    assert make_identity("unit").lfdi != identity.lfdi


def test_cert_header_is_one_line_and_decodes_to_the_pem() -> None:
    pem = make_identity().cert_pem
    value = cert_header_value(pem)
    assert "\n" not in value and " " not in value
    assert urllib.parse.unquote(value) == pem


def test_vendor_dir_env_wins_else_found_above_the_repo(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CSMS_TEST_CSIP_VENDOR", str(tmp_path))
    assert vendor_dir() == tmp_path
    monkeypatch.delenv("CSMS_TEST_CSIP_VENDOR")
    repo = tmp_path / "work" / "wt-x"
    vendor = tmp_path / "work" / "shared" / "vendor"
    vendor.mkdir(parents=True)
    (vendor / ENVOY_WHEEL).write_bytes(b"")
    repo.mkdir()
    monkeypatch.setattr(csip_server, "REPO", repo)
    assert vendor_dir() == vendor


def test_marker_names_every_pin() -> None:
    text = marker_text()
    for pin in ("python-dateutil==2.9.0.post0", "cactus-schema==1.3.1", ENVOY_WHEEL):
        assert pin in text


def _zip(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return out.getvalue()


STATUS = {
    "testProcedureName": "ALL-01",
    "statusSummary": "1/2 steps complete.",
    "criteria": [{"success": False, "type": "all-steps-complete", "details": "GET-TM"}],
    "stepStatus": {
        "GET-DCAP": {"startedAt": "2026-01-01T00:00:00Z", "completedAt": "2026-01-01T00:00:01Z"},
        "GET-TM": {"startedAt": "2026-01-01T00:00:01Z", "completedAt": None},
    },
}


def test_finalize_zip_summary_steps_and_criteria() -> None:
    data = _zip(
        {
            "CactusTestProcedureSummary_1_ALL-01.json": json.dumps(STATUS).encode(),
            "generation-errors.txt": b"no /shared/envoy.server.log",
        }
    )
    summary = parse_finalize_zip(data)
    assert summary.test_procedure == "ALL-01"
    assert summary.steps == {"GET-DCAP": True, "GET-TM": False}
    assert [(c.type, c.success) for c in summary.criteria] == [("all-steps-complete", False)]
    assert not summary.passed
    assert summary.errors == ["no /shared/envoy.server.log"]


def test_status_in_snake_case_too_and_no_criteria_is_no_pass() -> None:
    steps, criteria = parse_status({"step_status": {"A": {"completed_at": "x"}}})
    assert steps == {"A": True} and criteria == []
    summary = parse_finalize_zip(_zip({"CactusTestProcedureSummary.json": b"{}"}))
    assert not summary.passed


def test_finalize_zip_without_summary_or_too_big_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(AssertionError, match="no summary"):
        parse_finalize_zip(_zip({"generation-errors.txt": b"boom"}))
    big = _zip({"CactusTestProcedureSummary.json": b" " * 2048 + b"{}"})
    monkeypatch.setattr(csip_cactus, "MAX_SUMMARY_BYTES", 1024)
    with pytest.raises(ValueError, match="summary of"):
        parse_finalize_zip(big)
    monkeypatch.setattr(csip_cactus, "MAX_ZIP_BYTES", 10)
    with pytest.raises(ValueError, match="zip of"):
        parse_finalize_zip(big)


async def test_a_server_that_exits_at_start_fails_with_its_output(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "print('envoy: no DATABASE_URL'); raise SystemExit(3)"]
    env = csip_server.clean_env({})
    with pytest.raises(AssertionError, match=r"exited \(3\): envoy: no DATABASE_URL"):
        await csip_server.start_service(
            "fake", argv, env, tmp_path, f"http://127.0.0.1:{csip_server.free_port()}", "/"
        )


def test_clean_env_passes_only_what_a_server_needs(monkeypatch: pytest.MonkeyPatch) -> None:
    # envoy's settings read any variable named like a field (DEBUG, HREF_PREFIX, ...).
    monkeypatch.setenv("HREF_PREFIX", "/evil")
    env = csip_server.clean_env({"DATABASE_URL": "x"})
    assert "HREF_PREFIX" not in env and env["DATABASE_URL"] == "x"


def test_ensure_is_cached_by_its_marker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    filled: list[Path] = []

    def fill(venv: Path) -> None:
        filled.append(venv)
        (venv / csip_server.MARKER).write_text(marker_text())

    monkeypatch.setattr(csip_server, "_fill", fill)
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / csip_server.MARKER).write_text("envoy-1.4.0-py3-none-any.whl\n")  # other pins
    assert csip_server.ensure(venv) == venv and filled == [venv]
    assert csip_server.is_ready(venv)
    assert csip_server.ensure(venv) == venv and filled == [venv]  # no second fill
