"""TLS for the OCPP endpoint (security profiles 2 and 3).

OCPP 2.0.1 Part 2 A00.FR.318 (profile 2) and A00.FR.421 (profile 3): the CSMS SHALL support at
least TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
TLS_RSA_WITH_AES_128_GCM_SHA256 and TLS_RSA_WITH_AES_256_GCM_SHA384, which needs two server
certificates (an ECDSA and an RSA one). A00.FR.313/416: TLS 1.2 or above only. A00.FR.321: no
TLS compression. A00.FR.502/503: RSA keys >= 2048 bits, elliptic-curve keys >= 224 bits.

Both certificates go into one SSLContext (`load_cert_chain` once per key type); OpenSSL keeps one
certificate per key type and picks, per handshake, the one the negotiated suite needs.

The file checks below are pure functions of the PEM bytes (the settings read the files), so a bad
file stops the start with a message naming the setting instead of failing a handshake later.
"""

from __future__ import annotations

import logging
import re
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

if TYPE_CHECKING:
    from pathlib import Path

    from csms.settings import Settings

log = logging.getLogger(__name__)

KeyKind = Literal["RSA", "ECDSA"]

# The four suites OCPP requires, IANA name -> OpenSSL name.
OCPP_REQUIRED_SUITES: dict[str, str] = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
}

# TLS 1.2 suites offered, in server preference order: forward-secret AEAD suites first, the two
# static-RSA suites of A00.FR.318 last (no forward secrecy: only for stations offering nothing
# better). No CBC, SHA-1 or DHE suites. TLS 1.3 suites are OpenSSL's defaults (all AEAD).
TLS12_SUITES: tuple[str, ...] = (
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
    "AES128-GCM-SHA256",
    "AES256-GCM-SHA384",
)
# SECLEVEL 2 pinned: it is what A00.FR.502/503 ask of keys (RSA >= 2048, EC >= 224) and still
# allows static RSA (level 3 would drop it); a system default of 1 or 3 does not change it.
SECURITY_LEVEL = 2
CIPHER_STRING = f"@SECLEVEL={SECURITY_LEVEL}:" + ":".join(TLS12_SUITES)

MIN_RSA_BITS = 2048  # A00.FR.502
MIN_EC_BITS = 224  # A00.FR.503

TLS_VERSIONS: dict[str, ssl.TLSVersion] = {
    "1.2": ssl.TLSVersion.TLSv1_2,
    "1.3": ssl.TLSVersion.TLSv1_3,
}

_PEM_BLOCK = re.compile(
    rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----", re.DOTALL
)  # one PEM block and its label


class TlsFileError(ValueError):
    """A certificate or key file that cannot serve TLS; the message says why."""


@dataclass(frozen=True)
class KeyInfo:
    kind: KeyKind
    bits: int
    public_key_der: bytes  # SubjectPublicKeyInfo: compares a certificate with its key

    @property
    def label(self) -> str:
        return f"{self.kind} {self.bits}-bit"


def _key_info(public: object) -> KeyInfo:
    """Key type and size of a public key, refusing what OCPP does not allow."""
    if isinstance(public, rsa.RSAPublicKey):
        kind: KeyKind = "RSA"
        bits = public.key_size
        if bits < MIN_RSA_BITS:
            raise TlsFileError(
                f"RSA key of {bits} bits; OCPP (A00.FR.502) needs at least {MIN_RSA_BITS}"
            )
    elif isinstance(public, ec.EllipticCurvePublicKey):
        kind = "ECDSA"
        bits = public.curve.key_size
        if bits < MIN_EC_BITS:
            raise TlsFileError(
                f"elliptic-curve key of {bits} bits; OCPP (A00.FR.503) needs at least {MIN_EC_BITS}"
            )
    else:
        name = type(public).__name__.removesuffix("PublicKey")
        raise TlsFileError(f"{name} key; OCPP TLS (A00.FR.318) needs RSA or ECDSA")
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return KeyInfo(kind, bits, der)


def _blocks(pem: bytes) -> list[tuple[str, bytes]]:
    return [(m.group(1).decode(), m.group(0)) for m in _PEM_BLOCK.finditer(pem)]


def certificate_key(pem: bytes) -> KeyInfo:
    """The key of the first (leaf) certificate in a PEM file, as load_cert_chain reads it."""
    certificates = [block for label, block in _blocks(pem) if label == "CERTIFICATE"]
    if not certificates:
        raise TlsFileError("no PEM certificate (-----BEGIN CERTIFICATE-----) in the file")
    try:
        leaf = x509.load_pem_x509_certificate(certificates[0])
    except ValueError as error:
        raise TlsFileError(f"unreadable certificate: {error}") from None
    return _key_info(leaf.public_key())


def private_key(pem: bytes) -> KeyInfo:
    """The first private key in a PEM file; encrypted keys are refused (no way to prompt)."""
    keys = [block for label, block in _blocks(pem) if label.endswith("PRIVATE KEY")]
    if not keys:
        raise TlsFileError("no PEM private key (-----BEGIN ... PRIVATE KEY-----) in the file")
    try:
        key = serialization.load_pem_private_key(keys[0], password=None)
    except TypeError:
        raise TlsFileError("the private key is encrypted; give an unencrypted key file") from None
    except ValueError as error:
        raise TlsFileError(f"unreadable private key: {error}") from None
    return _key_info(key.public_key())


def trusted_certificates(pem: bytes) -> int:
    """How many CA certificates a client-CA bundle holds (at least one, all readable)."""
    certificates = [block for label, block in _blocks(pem) if label == "CERTIFICATE"]
    if not certificates:
        raise TlsFileError("no PEM certificate (-----BEGIN CERTIFICATE-----) in the file")
    for block in certificates:
        try:
            x509.load_pem_x509_certificate(block)
        except ValueError as error:
            raise TlsFileError(f"unreadable certificate: {error}") from None
    return len(certificates)


def read_pem(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise TlsFileError(f"cannot read {path}: {error.strerror or error}") from None


@dataclass(frozen=True)
class ServerCertificate:
    cert_file: Path
    key_file: Path
    kind: KeyKind


def server_certificates(settings: Settings) -> list[ServerCertificate]:
    """The configured server certificates (settings already checked types and pairs)."""
    found: list[ServerCertificate] = []
    pairs: list[tuple[Path | None, Path | None, KeyKind | None]] = [
        (settings.tls_cert_file, settings.tls_key_file, None),
        (settings.tls_rsa_cert_file, settings.tls_rsa_key_file, "RSA"),
        (settings.tls_ecdsa_cert_file, settings.tls_ecdsa_key_file, "ECDSA"),
    ]
    for cert_file, key_file, kind in pairs:
        if cert_file is None or key_file is None:
            continue
        found.append(
            ServerCertificate(
                cert_file, key_file, kind or certificate_key(read_pem(cert_file)).kind
            )
        )
    return found


def server_ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The SSLContext of the OCPP endpoint, or None for plain ws (no certificate configured)."""
    certificates = server_certificates(settings)
    if not certificates:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = TLS_VERSIONS[settings.tls_min_version]
    context.set_ciphers(CIPHER_STRING)
    context.options |= ssl.OP_NO_COMPRESSION  # A00.FR.321 (Python's default too)
    for certificate in certificates:
        context.load_cert_chain(certificate.cert_file, certificate.key_file)
    if settings.tls_client_ca_file is not None:
        context.load_verify_locations(settings.tls_client_ca_file)
        # Optional: profile 2 stations have no client certificate; profile 3 is checked per
        # station in the handshake.
        context.verify_mode = ssl.CERT_OPTIONAL
    kinds = sorted({c.kind for c in certificates})
    log.info("OCPP TLS: %s certificate(s), TLS >= %s", " + ".join(kinds), settings.tls_min_version)
    if len(kinds) == 1:
        missing = "RSA" if kinds == ["ECDSA"] else "ECDSA"
        log.warning(
            "OCPP TLS: no %s server certificate: stations offering only the %s suites of "
            "A00.FR.318 will fail the handshake (set tls_%s_cert_file/tls_%s_key_file)",
            missing,
            missing,
            missing.lower(),
            missing.lower(),
        )
    if settings.tls_min_version == "1.3":
        log.warning("OCPP TLS: TLS 1.3 only: stations limited to TLS 1.2 will be refused")
    return context
