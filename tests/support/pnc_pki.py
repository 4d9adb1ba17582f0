"""Plug & Charge test PKI and peers on loopback: a V2G root, a Mobility Operator sub-CA, contract
certificates whose OCSP responder URL points at an OCSP responder run here (answers built with
`cryptography`: good / revoked / unknown per serial), and a certificate provider run here.

Both servers are small HTTP/1.1 servers on asyncio streams bound to 127.0.0.1 (one request
per connection, Content-Length bodies): enough for httpx, and no dependency added."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from csms.integrations.ocsp import request_data_for

NOW = dt.datetime.now(dt.UTC)
Handler = Callable[[str, bytes], Awaitable[tuple[int, str, bytes]]]


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


@dataclass
class Authority:
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()


def _build(
    subject: str,
    issuer: Authority | None,
    *,
    ca: bool,
    ocsp_url: str | None = None,
    ocsp_signing: bool = False,
    not_after: dt.datetime | None = None,
    serial: int | None = None,
) -> Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer.certificate.subject if issuer else _name(subject))
        .public_key(key.public_key())
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(not_after or NOW + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ocsp_url:
        builder = builder.add_extension(
            x509.AuthorityInformationAccess(
                [
                    x509.AccessDescription(
                        x509.AuthorityInformationAccessOID.OCSP,
                        x509.UniformResourceIdentifier(ocsp_url),
                    )
                ]
            ),
            critical=False,
        )
    if ocsp_signing:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False
        )
    signer = issuer.key if issuer else key
    return Authority(builder.sign(signer, hashes.SHA256()), key)


@dataclass
class ContractPki:
    root: Authority
    mo_ca: Authority
    responder_url: str
    statuses: dict[int, str] = field(default_factory=dict)  # serial -> good/revoked/unknown

    def contract(self, status: str = "good", *, not_after: dt.datetime | None = None) -> Authority:
        leaf = _build(
            "EMAID-AU-XYZ-C12345678-0",
            self.mo_ca,
            ca=False,
            ocsp_url=self.responder_url,
            not_after=not_after,
        )
        self.statuses[leaf.certificate.serial_number] = status
        return leaf

    def chain_pem(self, leaf: Authority) -> str:
        return leaf.pem + self.mo_ca.pem

    def hash_data(self, leaf: Authority) -> list[dict[str, Any]]:
        """iso15118CertificateHashData for the leaf and the sub-CA (what a station sends)."""
        out = []
        for cert, issuer in ((leaf, self.mo_ca), (self.mo_ca, self.root)):
            data = request_data_for(cert.certificate, issuer.certificate, self.responder_url)
            out.append(
                {
                    "hashAlgorithm": data.hash_algorithm,
                    "issuerNameHash": data.issuer_name_hash,
                    "issuerKeyHash": data.issuer_key_hash,
                    "serialNumber": data.serial_number,
                    "responderURL": data.responder_url,
                }
            )
        return out


def make_contract_pki(responder_url: str) -> ContractPki:
    root = _build("V2G Root CA", None, ca=True)
    mo_ca = _build("MO Sub-CA", root, ca=True, ocsp_url=responder_url)
    pki = ContractPki(root, mo_ca, responder_url)
    pki.statuses[mo_ca.certificate.serial_number] = "good"
    return pki


async def _serve_http(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, handler: Handler
) -> None:
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        lines = head.decode("latin-1").split("\r\n")
        path = lines[0].split(" ")[1]
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        body = await asyncio.wait_for(reader.readexactly(length), 5) if length else b""
        status, content_type, payload = await handler(path, body)
        writer.write(
            f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
            + payload
        )
        await writer.drain()
    except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


@contextlib.asynccontextmanager
async def http_server(handler: Handler) -> AsyncIterator[str]:
    """Serve `handler` on 127.0.0.1 (a free port); yields the base URL."""
    server = await asyncio.start_server(lambda r, w: _serve_http(r, w, handler), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


@dataclass
class OcspResponder:
    """Answers OCSP requests for the PKI's certificates, signed by the issuing CA (or by a
    delegated responder when `delegate` is set; or by a wrong key); counts the requests."""

    pki: ContractPki | None = None
    requests: int = 0
    delegate: bool = False
    next_update: dt.timedelta | None = dt.timedelta(hours=1)
    sign_with_wrong_key: bool = False

    async def handle(self, path: str, body: bytes) -> tuple[int, str, bytes]:
        self.requests += 1
        assert self.pki is not None
        request = ocsp.load_der_ocsp_request(body)
        serial = request.serial_number
        issuer = (
            self.pki.mo_ca if serial != self.pki.mo_ca.certificate.serial_number else self.pki.root
        )
        status = self.pki.statuses.get(serial, "unknown")
        cert_status = {
            "good": ocsp.OCSPCertStatus.GOOD,
            "revoked": ocsp.OCSPCertStatus.REVOKED,
            "unknown": ocsp.OCSPCertStatus.UNKNOWN,
        }[status]
        builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
            issuer_name_hash=request.issuer_name_hash,
            issuer_key_hash=request.issuer_key_hash,
            serial_number=serial,
            algorithm=request.hash_algorithm,
            cert_status=cert_status,
            this_update=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1),
            next_update=(
                None if self.next_update is None else dt.datetime.now(dt.UTC) + self.next_update
            ),
            revocation_time=NOW if status == "revoked" else None,
            revocation_reason=x509.ReasonFlags.key_compromise if status == "revoked" else None,
        )
        signer = issuer
        if self.delegate:
            signer = _build("OCSP responder", issuer, ca=False, ocsp_signing=True)
        # The signer's certificate travels with the response (as responders commonly do):
        # the CSMS trusts it only when its key is the one the request names (or was issued
        # by it, for a delegated responder).
        builder = builder.certificates([signer.certificate])
        if self.sign_with_wrong_key:
            signer = Authority(signer.certificate, ec.generate_private_key(ec.SECP256R1()))
        builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, signer.certificate)
        response = builder.sign(signer.key, hashes.SHA256())
        return 200, "application/ocsp-response", response.public_bytes(serialization.Encoding.DER)


@dataclass
class Provider:
    """A certificate provider: answers with a fixed EXI response, records the requests."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    answer: dict[str, Any] = field(
        default_factory=lambda: {"status": "Accepted", "exiResponse": "ZXhpLXJlc3BvbnNl"}
    )
    http_status: int = 200

    async def handle(self, path: str, body: bytes) -> tuple[int, str, bytes]:
        self.requests.append(json.loads(body))
        return self.http_status, "application/json", json.dumps(self.answer).encode()
