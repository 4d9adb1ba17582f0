"""Block A (security) and M (certificates): CSR signing, 15118 certificates, OCSP status."""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from csms.domain.errors import CsmsError
from csms.domain.models import CertificateRecord
from csms.ocpp_server import limits
from csms.ocpp_server.blocks._common import record_event

if TYPE_CHECKING:
    from csms.ocpp_server.session import Handler, Session

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CsrAuthority:
    """The CA that signs station CSRs (settings.csr_ca_cert_file / csr_ca_key_file)."""

    certificate: x509.Certificate
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

    @classmethod
    def load(cls, cert_file: Path, key_file: Path) -> CsrAuthority:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise ValueError("CSR CA key must be RSA or EC")
        return cls(cert, key)

    def sign(self, csr_pem: str, now: dt.datetime, days: int = 365) -> str:
        """PEM chain (leaf, then CA) for a valid CSR; ValueError otherwise."""
        csr = x509.load_pem_x509_csr(csr_pem.encode())
        if not csr.is_signature_valid:
            raise ValueError("CSR signature invalid")
        cert = (
            x509.CertificateBuilder()
            .subject_name(csr.subject)
            .issuer_name(self.certificate.subject)
            .public_key(csr.public_key())
            .serial_number(int.from_bytes(secrets.token_bytes(16), "big") >> 1)
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        return (
            cert.public_bytes(serialization.Encoding.PEM)
            + self.certificate.public_bytes(serialization.Encoding.PEM)
        ).decode()


def csr_authority(session: Session) -> CsrAuthority | None:
    settings = session.settings
    if settings.csr_ca_cert_file is None or settings.csr_ca_key_file is None:
        return None
    return CsrAuthority.load(settings.csr_ca_cert_file, settings.csr_ca_key_file)


def csr_common_name(csr_pem: str) -> str | None:
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else None


async def sign_certificate(session: Session, payload: dict[str, Any]) -> dict[str, Any]:
    """A02/A03: Accepted when a CSR CA is configured; CertificateSigned follows from a task."""
    authority = csr_authority(session)
    if authority is None:
        return {"status": "Rejected", "statusInfo": {"reasonCode": "NoCA"}}
    csr = payload["csr"]
    try:
        x509.load_pem_x509_csr(csr.encode())
    except ValueError:
        return {"status": "Rejected", "statusInfo": {"reasonCode": "InvalidCSR"}}
    try:
        # Every CSR is a stored row: charged to the station's quota.
        await limits.charge_storage(session, "SignCertificate", len(csr))
    except limits.StorageRefused as refused:
        return {"status": "Rejected", "statusInfo": {"reasonCode": refused.reason}}
    certificate_type = payload.get("certificateType", "ChargingStationCertificate")
    now = session.clock()
    record = CertificateRecord(session.station_id, certificate_type, csr, "Pending")
    cert_id = await session.services.station_messages.add_certificate_request(record, now)
    session.after_reply(lambda: _send_signed(session, authority, cert_id, csr, certificate_type))
    return {"status": "Accepted"}


async def _send_signed(
    session: Session, authority: CsrAuthority, cert_id: int, csr: str, certificate_type: str
) -> None:
    stored = session.services.station_messages
    try:
        chain = authority.sign(csr, session.clock())
    except ValueError as exc:
        log.info("CSR from %s not signed: %s", session.station_id, exc)
        await stored.set_certificate_status(cert_id, "Rejected", None)
        return
    await stored.set_certificate_status(cert_id, "Signed", chain)
    try:
        answer = await session.call(
            "CertificateSigned",
            {"certificateChain": chain, "certificateType": certificate_type},
            session.settings.command_timeout_s,
        )
    except CsmsError as exc:
        log.info("CertificateSigned to %s failed: %s", session.station_id, exc)
        return
    status = "Installed" if answer.get("status") == "Accepted" else "Refused"
    await stored.set_certificate_status(cert_id, status, chain)


async def get_15118_ev_certificate(session: Session, payload: dict[str, Any]) -> dict[str, Any]:
    """M01/M02: forwarded to the certificate provider (pnc_certificate_provider_url); Failed
    with reasonCode NoProvider when none is configured."""
    await record_event(session, "Get15118EVCertificate", payload, skip_if_refused=True)
    answer = await session.services.pnc.get_ev_certificate(
        session.station_id, payload, session.version
    )
    log.info(
        "Get15118EVCertificate %s from %s: %s %s",
        payload.get("action"),
        session.station_id,
        answer["status"],
        (answer.get("statusInfo") or {}).get("reasonCode", ""),
    )
    return answer


async def get_certificate_status(session: Session, payload: dict[str, Any]) -> dict[str, Any]:
    """M06: the OCSP responder named in the request is asked (when its host is allowed) and
    its response returned (M06.FR.02); Failed when none could be had."""
    await record_event(session, "GetCertificateStatus", payload, skip_if_refused=True)
    return await session.services.pnc.certificate_status(
        payload["ocspRequestData"], session.version
    )


HANDLERS: dict[str, Handler] = {
    "SignCertificate": sign_certificate,
    "Get15118EVCertificate": get_15118_ev_certificate,
    "GetCertificateStatus": get_certificate_status,
}
