"""A throw-away PKI for TLS tests: a CA, server certificates for 127.0.0.1 (ECDSA, and RSA on
demand: OCPP A00.FR.318 wants both), client certificates per station of either key type (and one
from a CA the server does not trust), and client contexts limited to chosen suites/versions."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

NOW = dt.datetime.now(dt.UTC)


KeyKind = Literal["ecdsa", "rsa", "ed25519"]  # ed25519: a key type OCPP TLS does not allow
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def _key(kind: KeyKind = "ecdsa", *, rsa_bits: int = 2048) -> PrivateKey:
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


@dataclass
class Issued:
    cert_file: Path
    key_file: Path
    certificate: x509.Certificate
    key: PrivateKey


def _write(directory: Path, stem: str, cert: x509.Certificate, key: PrivateKey) -> Issued:
    cert_file, key_file = directory / f"{stem}.crt", directory / f"{stem}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Issued(cert_file, key_file, cert, key)


def make_ca(directory: Path, stem: str = "ca") -> Issued:
    key = _key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(f"Test {stem}"))
        .issuer_name(_name(f"Test {stem}"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _write(directory, stem, cert, key)


def issue(
    directory: Path,
    ca: Issued,
    cn: str,
    stem: str,
    *,
    server: bool = False,
    kind: KeyKind = "ecdsa",
    rsa_bits: int = 2048,
) -> Issued:
    key = _key(kind, rsa_bits=rsa_bits)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return _write(directory, stem, builder.sign(ca.key, hashes.SHA256()), key)


@dataclass
class Pki:
    ca: Issued
    server: Issued
    other_ca: Issued
    directory: Path
    _server_rsa: Issued | None = field(default=None, repr=False)

    @property
    def server_rsa(self) -> Issued:
        """An RSA 2048 server certificate for 127.0.0.1 from the same CA (made on first use)."""
        if self._server_rsa is None:
            self._server_rsa = issue(
                self.directory, self.ca, "127.0.0.1", "server-rsa", server=True, kind="rsa"
            )
        return self._server_rsa

    def client(self, cn: str, *, trusted: bool = True, kind: KeyKind = "ecdsa") -> Issued:
        ca = self.ca if trusted else self.other_ca
        stem = f"client-{cn}-{'t' if trusted else 'u'}-{kind}"
        return issue(self.directory, ca, cn, stem, kind=kind)

    def client_context(
        self,
        client: Issued | None = None,
        *,
        ciphers: str | None = None,
        min_version: ssl.TLSVersion | None = None,
        max_version: ssl.TLSVersion | None = None,
    ) -> ssl.SSLContext:
        """A station's context; `ciphers` limits its TLS 1.2 offer (e.g. one suite)."""
        context = ssl.create_default_context(cafile=str(self.ca.cert_file))
        if client is not None:
            context.load_cert_chain(client.cert_file, client.key_file)
        if ciphers is not None:
            context.set_ciphers(ciphers)
        if min_version is not None:
            context.minimum_version = min_version
        if max_version is not None:
            context.maximum_version = max_version
        return context


def make_pki(directory: Path) -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    ca = make_ca(directory, "ca")
    server = issue(directory, ca, "127.0.0.1", "server", server=True)
    return Pki(ca, server, make_ca(directory, "other-ca"), directory)


def make_csr(cn: str) -> str:
    key = _key()
    csr = x509.CertificateSigningRequestBuilder().subject_name(_name(cn)).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode()
