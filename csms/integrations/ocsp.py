"""OCSP over HTTP (RFC 6960, RFC 5019 POST): one request per certificate, to the responder URL
the station names, built and read with `cryptography`'s OCSP module, sent with httpx.

Bounded: one overall timeout per request, at most `max_response_bytes` read (the body is
streamed and cut off), no redirects followed. The response must be a successful OCSP response
about exactly the certificate asked for, with a thisUpdate not in the future and a nextUpdate
(when given) not in the past; its signature is checked when the issuer's key is known (from
the trust anchors, the chain the station sent, or the certificates the response carries whose
key is the one the request names), else the answer is marked unverified.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from csms.domain.iso15118 import OcspAnswer, OcspRequestData

log = logging.getLogger(__name__)

HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "SHA256": hashes.SHA256,
    "SHA384": hashes.SHA384,
    "SHA512": hashes.SHA512,
}
# Clocks differ: a thisUpdate up to this far in the future is accepted.
CLOCK_SKEW = timedelta(minutes=5)


def key_hash(certificate: x509.Certificate, algorithm: hashes.HashAlgorithm) -> bytes:
    """Hash of the subjectPublicKey BIT STRING (the CertID issuerKeyHash, RFC 6960 4.1.1)."""
    public = certificate.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        raw = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        raw = public.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    elif isinstance(public, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    else:
        return b""
    digest = hashes.Hash(algorithm)
    digest.update(raw)
    return digest.finalize()


def request_data_for(
    certificate: x509.Certificate, issuer: x509.Certificate, responder_url: str
) -> OcspRequestData:
    """OCSPRequestData (SHA256) of a certificate whose issuer is known."""
    name = hashes.Hash(hashes.SHA256())
    name.update(issuer.subject.public_bytes())
    return OcspRequestData(
        "SHA256",
        name.finalize().hex(),
        key_hash(issuer, hashes.SHA256()).hex(),
        format(certificate.serial_number, "x"),
        responder_url,
    )


def responder_url_of(certificate: x509.Certificate) -> str | None:
    """The OCSP responder URL of the certificate's Authority Information Access."""
    try:
        aia = certificate.extensions.get_extension_for_class(x509.AuthorityInformationAccess)
    except x509.ExtensionNotFound:
        return None
    for description in aia.value:
        if description.access_method == x509.AuthorityInformationAccessOID.OCSP and isinstance(
            description.access_location, x509.UniformResourceIdentifier
        ):
            return str(description.access_location.value)
    return None


def _verify_signature(
    public_key: object, signature: bytes, data: bytes, algorithm: hashes.HashAlgorithm | None
) -> bool:
    try:
        if isinstance(public_key, rsa.RSAPublicKey) and algorithm is not None:
            public_key.verify(signature, data, padding.PKCS1v15(), algorithm)
        elif isinstance(public_key, ec.EllipticCurvePublicKey) and algorithm is not None:
            public_key.verify(signature, data, ec.ECDSA(algorithm))
        elif isinstance(public_key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            public_key.verify(signature, data)
        else:
            return False
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def _signed_by_issuer(
    response: ocsp.OCSPResponse,
    wanted: OcspRequestData,
    known: Sequence[x509.Certificate],
) -> bool:
    """Whether the response is signed by the certificate's issuer, or by a responder the
    issuer delegated (id-kp-OCSPSigning, directly issued by it). The issuer is any
    certificate whose key hashes to the request's issuerKeyHash."""
    algorithm = HASHES[wanted.hash_algorithm]()
    carried = list(response.certificates)
    candidates = [*carried, *known]
    issuers = [c for c in candidates if key_hash(c, algorithm).hex() == wanted.issuer_key_hash]
    signature_hash = response.signature_hash_algorithm
    for signer in candidates:
        if not _is_responder(response, signer):
            continue
        if not _verify_signature(
            signer.public_key(), response.signature, response.tbs_response_bytes, signature_hash
        ):
            continue
        if signer in issuers:
            return True
        if _delegated(signer) and any(_issued_by(signer, issuer) for issuer in issuers):
            return True
    return False


def _is_responder(response: ocsp.OCSPResponse, certificate: x509.Certificate) -> bool:
    if response.responder_key_hash is not None:
        return key_hash(certificate, hashes.SHA1()) == response.responder_key_hash
    return certificate.subject == response.responder_name


def _delegated(certificate: x509.Certificate) -> bool:
    try:
        usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return ExtendedKeyUsageOID.OCSP_SIGNING in usage


def _issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def read_response(
    der: bytes, wanted: OcspRequestData, known: Sequence[x509.Certificate], now: datetime
) -> OcspAnswer:
    """An OCSP response (DER) about `wanted`, checked; status error when unusable."""
    try:
        response = ocsp.load_der_ocsp_response(der)
    except ValueError as exc:
        return OcspAnswer("error", reason=f"not an OCSP response: {exc}")
    if response.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
        return OcspAnswer("error", reason=f"responder said {response.response_status.name}")
    algorithm = HASHES[wanted.hash_algorithm]
    for single in response.responses:
        if not (
            isinstance(single.hash_algorithm, algorithm)
            and single.issuer_name_hash.hex() == wanted.issuer_name_hash
            and single.issuer_key_hash.hex() == wanted.issuer_key_hash
            and format(single.serial_number, "x") == wanted.serial_number
        ):
            continue
        this_update = single.this_update_utc
        next_update = single.next_update_utc
        if this_update > now + CLOCK_SKEW:
            return OcspAnswer("error", reason="thisUpdate is in the future")
        if next_update is not None and next_update < now - CLOCK_SKEW:
            return OcspAnswer("error", reason="stale: nextUpdate has passed")
        status = {
            ocsp.OCSPCertStatus.GOOD: "good",
            ocsp.OCSPCertStatus.REVOKED: "revoked",
            ocsp.OCSPCertStatus.UNKNOWN: "unknown",
        }[single.certificate_status]
        return OcspAnswer(
            status,
            der,
            this_update,
            next_update,
            verified=_signed_by_issuer(response, wanted, known),
        )
    return OcspAnswer("error", reason="the response is not about the certificate asked for")


class HttpOcspClient:
    """The OcspClient of csms/services/pnc.py: real OCSP requests over HTTP."""

    def __init__(self, *, timeout_s: float, max_response_bytes: int) -> None:
        self._timeout_s = timeout_s
        self._max_bytes = max_response_bytes

    async def fetch(
        self, wanted: OcspRequestData, known: Sequence[x509.Certificate], now: datetime
    ) -> OcspAnswer:
        algorithm = HASHES.get(wanted.hash_algorithm)
        if algorithm is None:
            return OcspAnswer("error", reason=f"hash {wanted.hash_algorithm} not supported")
        try:
            request = (
                ocsp.OCSPRequestBuilder()
                .add_certificate_by_hash(
                    bytes.fromhex(wanted.issuer_name_hash),
                    bytes.fromhex(wanted.issuer_key_hash),
                    int(wanted.serial_number, 16),
                    algorithm(),
                )
                .build()
            )
        except ValueError as exc:
            return OcspAnswer("error", reason=f"bad certificate id: {exc}")
        body = request.public_bytes(serialization.Encoding.DER)
        try:
            async with asyncio.timeout(self._timeout_s):
                der = await self._post(wanted.responder_url, body)
        except TimeoutError:
            return OcspAnswer("error", reason=f"no answer within {self._timeout_s:g} s")
        except (httpx.HTTPError, ValueError) as exc:
            return OcspAnswer("error", reason=f"request failed: {exc}")
        return read_response(der, wanted, known, now.astimezone(UTC))

    async def _post(self, url: str, body: bytes) -> bytes:
        async with (
            httpx.AsyncClient(timeout=self._timeout_s, follow_redirects=False) as client,
            client.stream(
                "POST",
                url,
                content=body,
                headers={"Content-Type": "application/ocsp-request"},
            ) as response,
        ):
            if response.status_code != 200:
                raise ValueError(f"HTTP {response.status_code}")
            received = bytearray()
            async for chunk in response.aiter_bytes():
                received += chunk
                if len(received) > self._max_bytes:
                    raise ValueError(f"response over {self._max_bytes} bytes")
            return bytes(received)
