"""TLS of the OCPP endpoint with real clients over loopback (issue 11, finding 9).

OCPP 2.0.1 A00.FR.318 (profile 2) / A00.FR.421 (profile 3): the CSMS SHALL support the four suites
TLS_ECDHE_ECDSA_WITH_AES_{128,256}_GCM_* and TLS_RSA_WITH_AES_{128,256}_GCM_*, which needs an RSA
and an ECDSA certificate; A00.FR.313/416: TLS 1.2 or above only.

Each station here offers exactly one suite (TLS 1.2 only, `set_ciphers(<one suite>)`), the way a
station built for one of them would. A refusal is asserted to be the server's (an alert it sent),
not the client's own library giving up, so the tests cannot pass vacuously.
"""

from __future__ import annotations

import asyncio
import shutil
import ssl
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from csms.domain.models import SecurityProfile
from tests.support.csms_harness import PASSWORD, Csms, basic_auth, raw_boot, running_csms
from tests.support.csms_pki import Pki, make_pki

REQUIRED_SUITES = {  # OpenSSL name -> server certificate key type it needs
    "ECDHE-ECDSA-AES128-GCM-SHA256": "ECDSA",
    "ECDHE-ECDSA-AES256-GCM-SHA384": "ECDSA",
    "AES128-GCM-SHA256": "RSA",  # TLS_RSA_WITH_AES_128_GCM_SHA256
    "AES256-GCM-SHA384": "RSA",  # TLS_RSA_WITH_AES_256_GCM_SHA384
}
# Suites a station may offer that the CSMS refuses: CBC (with SHA-1 or SHA-2 MACs), finite-field
# DHE. Python's default server list (the old CSMS) accepted the ECDHE CBC and DHE ones.
WEAK_SUITES = [
    "AES128-SHA",
    "AES256-SHA256",
    "ECDHE-RSA-AES128-SHA",
    "ECDHE-ECDSA-AES256-SHA384",
    "ECDHE-ECDSA-AES128-SHA256",
    "DHE-RSA-AES128-GCM-SHA256",
]
SERVER_RESET = "refused by the server"

TLS12 = ssl.TLSVersion.TLSv1_2


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def both_certificates(pki: Pki) -> dict[str, Any]:
    return {
        "tls_rsa_cert_file": pki.server_rsa.cert_file,
        "tls_rsa_key_file": pki.server_rsa.key_file,
        "tls_ecdsa_cert_file": pki.server.cert_file,
        "tls_ecdsa_key_file": pki.server.key_file,
        "tls_client_ca_file": pki.ca.cert_file,
    }


@pytest.fixture
async def dual(tmp_path: Path, pki: Pki) -> AsyncIterator[Csms]:
    """A CSMS holding an RSA and an ECDSA certificate, with a profile 2 and a profile 3 station."""
    async with running_csms(tmp_path, **both_certificates(pki)) as csms:
        await csms.add_station("P2", security_profile=SecurityProfile.TLS_BASIC_AUTH)
        await csms.add_station(
            "P3", password=None, security_profile=SecurityProfile.TLS_CLIENT_CERT
        )
        yield csms


def one_suite(pki: Pki, suite: str, client: Any = None) -> ssl.SSLContext:
    """A TLS 1.2 station context offering exactly `suite`."""
    context = pki.client_context(client, ciphers=suite, max_version=TLS12)
    offered = [c["name"] for c in context.get_ciphers() if c["protocol"] != "TLSv1.3"]
    assert offered == [suite]  # the client really offers this one suite only
    return context


def key_kind(der: bytes) -> str:
    key = x509.load_der_x509_certificate(der).public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA"
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return "ECDSA"


async def boot_over(
    csms: Csms, context: ssl.SSLContext, station_id: str = "P2", *, password: bool = True
) -> tuple[str, str, str, str]:
    """Handshake + BootNotification: (boot status, suite, TLS version, server key type)."""
    headers = basic_auth(station_id, PASSWORD) if password else {}
    ws = await websockets.connect(
        f"{csms.url}/{station_id}",
        subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
        additional_headers=headers,
        ssl=context,
        open_timeout=5,
    )
    try:
        tls = ws.transport.get_extra_info("ssl_object")
        suite, version, _bits = tls.cipher()
        server_key = key_kind(tls.getpeercert(binary_form=True))
        status = (await raw_boot(ws))[2]["status"]
    finally:
        await ws.close()
    return status, suite, version, server_key


async def refused(csms: Csms, context: ssl.SSLContext, station_id: str = "P2") -> str:
    """How the server refused a handshake (the test fails if the handshake succeeds)."""
    try:
        ws = await websockets.connect(
            f"{csms.url}/{station_id}",
            subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
            additional_headers=basic_auth(station_id, PASSWORD),
            ssl=context,
            open_timeout=5,
        )
    except ConnectionResetError:
        # asyncio's server transport drops a failed handshake without flushing the alert.
        return SERVER_RESET
    except ssl.SSLError as error:
        # An alert from the server; not the client's own refusal to offer anything.
        assert "ALERT" in str(error.reason) or isinstance(error, ssl.SSLEOFError), error
        return SERVER_RESET
    await ws.close()
    raise AssertionError("the handshake succeeded")


# ---- A00.FR.318 / A00.FR.421: the four suites, one at a time ---------------------------------


@pytest.mark.parametrize("suite", list(REQUIRED_SUITES))
async def test_a00_fr_318_station_offering_only_this_suite_boots(
    dual: Csms, pki: Pki, suite: str
) -> None:
    status, negotiated, version, server_key = await boot_over(dual, one_suite(pki, suite))
    assert (status, negotiated, version) == ("Accepted", suite, "TLSv1.2")
    assert server_key == REQUIRED_SUITES[suite]  # OpenSSL served the certificate the suite needs


@pytest.mark.parametrize("suite", list(REQUIRED_SUITES))
async def test_a00_fr_421_profile3_client_certificate_over_this_suite(
    dual: Csms, pki: Pki, suite: str
) -> None:
    # Client key type follows the suite's family: an RSA station and an ECDSA station.
    client = pki.client("P3", kind="rsa" if REQUIRED_SUITES[suite] == "RSA" else "ecdsa")
    status, negotiated, _version, server_key = await boot_over(
        dual, one_suite(pki, suite, client), "P3", password=False
    )
    assert (status, negotiated, server_key) == ("Accepted", suite, REQUIRED_SUITES[suite])


async def test_a00_fr_318_modern_clients_get_forward_secret_suites(dual: Csms, pki: Pki) -> None:
    # An ordinary client negotiates TLS 1.3; a TLS 1.2 client offering everything gets an ECDHE
    # suite (server preference), never static RSA.
    status, _suite, version, _key = await boot_over(dual, pki.client_context())
    assert (status, version) == ("Accepted", "TLSv1.3")
    status, suite, version, _key = await boot_over(
        dual, pki.client_context(ciphers="ALL:@SECLEVEL=2", max_version=TLS12)
    )
    assert (status, version) == ("Accepted", "TLSv1.2")
    assert suite.startswith("ECDHE-") and suite.endswith(("GCM-SHA256", "GCM-SHA384"))
    for kept in ("ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305"):
        assert (await boot_over(dual, one_suite(pki, kept)))[:2] == ("Accepted", kept)


@pytest.mark.parametrize("suite", WEAK_SUITES)
async def test_finding9_station_offering_only_a_weak_suite_is_refused(
    dual: Csms, pki: Pki, suite: str
) -> None:
    assert await refused(dual, one_suite(pki, suite)) == SERVER_RESET


@pytest.mark.parametrize("version", ["TLSv1", "TLSv1_1"])
async def test_a00_fr_313_tls_below_1_2_is_refused(dual: Csms, pki: Pki, version: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the client must be able to try
        old = getattr(ssl.TLSVersion, version)
        context = pki.client_context(ciphers="ALL:@SECLEVEL=0", min_version=old, max_version=old)
    assert await refused(dual, context) == SERVER_RESET


# ---- tls_min_version = "1.3" -------------------------------------------------------------------


async def test_finding9_tls13_only_refuses_tls12_station(tmp_path: Path, pki: Pki) -> None:
    async with running_csms(tmp_path, tls_min_version="1.3", **both_certificates(pki)) as csms:
        await csms.add_station("P2", security_profile=SecurityProfile.TLS_BASIC_AUTH)
        for suite in REQUIRED_SUITES:
            assert await refused(csms, one_suite(pki, suite)) == SERVER_RESET
        status, _suite, version, _key = await boot_over(csms, pki.client_context())
        assert (status, version) == ("Accepted", "TLSv1.3")


# ---- one certificate only ----------------------------------------------------------------------


@pytest.mark.parametrize("setting", ["tls_rsa", "tls"])
async def test_finding9_rsa_certificate_alone_serves_rsa_suites(
    tmp_path: Path, pki: Pki, setting: str
) -> None:
    # `tls` = the one-certificate setting given an RSA certificate: the old CSMS refused the
    # static-RSA suites even then (they were not in its cipher list).
    files = {
        f"{setting}_cert_file": pki.server_rsa.cert_file,
        f"{setting}_key_file": pki.server_rsa.key_file,
    }
    async with running_csms(tmp_path, **files) as csms:
        await csms.add_station("P2", security_profile=SecurityProfile.TLS_BASIC_AUTH)
        assert csms.url.startswith("wss://")
        for suite in ("AES128-GCM-SHA256", "AES256-GCM-SHA384", "ECDHE-RSA-AES128-GCM-SHA256"):
            status, negotiated, _v, server_key = await boot_over(csms, one_suite(pki, suite))
            assert (status, negotiated, server_key) == ("Accepted", suite, "RSA")
        # No ECDSA certificate: an ECDSA-only station cannot be served.
        refusal = await refused(csms, one_suite(pki, "ECDHE-ECDSA-AES128-GCM-SHA256"))
        assert refusal == SERVER_RESET


@pytest.mark.parametrize("setting", ["tls_ecdsa", "tls"])
async def test_finding9_ecdsa_certificate_alone_serves_ecdsa_suites(
    tmp_path: Path, pki: Pki, setting: str
) -> None:
    files = {
        f"{setting}_cert_file": pki.server.cert_file,
        f"{setting}_key_file": pki.server.key_file,
    }
    async with running_csms(tmp_path, **files) as csms:
        await csms.add_station("P2", security_profile=SecurityProfile.TLS_BASIC_AUTH)
        for suite in ("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384"):
            status, negotiated, _v, server_key = await boot_over(csms, one_suite(pki, suite))
            assert (status, negotiated, server_key) == ("Accepted", suite, "ECDSA")
        assert await refused(csms, one_suite(pki, "AES128-GCM-SHA256")) == SERVER_RESET


async def test_finding9_profile3_refuses_untrusted_client_over_static_rsa(
    dual: Csms, pki: Pki
) -> None:
    # The static-RSA suites do not loosen client-certificate checks (profile 3).
    untrusted = pki.client("P3", trusted=False, kind="rsa")
    context = one_suite(pki, "AES128-GCM-SHA256", untrusted)
    assert await refused(dual, context, "P3") == SERVER_RESET
    trusted = one_suite(pki, "AES128-GCM-SHA256", pki.client("P3", kind="rsa"))
    assert (await boot_over(dual, trusted, "P3", password=False))[0] == "Accepted"


# ---- an independent client: openssl s_client -----------------------------------------------


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl command")
async def test_a00_fr_318_openssl_s_client_each_suite(dual: Csms, pki: Pki) -> None:
    port = dual.server.port
    for suite, kind in REQUIRED_SUITES.items():
        process = await asyncio.create_subprocess_exec(
            "openssl",
            "s_client",
            "-connect",
            f"127.0.0.1:{port}",
            "-tls1_2",
            "-cipher",
            suite,
            "-CAfile",
            str(pki.ca.cert_file),
            "-verify_return_error",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        async with asyncio.timeout(10):
            output, _ = await process.communicate()
        text = output.decode(errors="replace")
        assert process.returncode == 0, text
        assert f"Cipher is {suite}" in text, text
        assert "Verify return code: 0 (ok)" in text, text
        # RSA suites were served the 2048-bit RSA certificate, ECDSA ones the P-256 one.
        assert f"Server public key is {2048 if kind == 'RSA' else 256} bit" in text, text
