"""Plug & Charge on the CSMS: contract certificates in Authorize (C07), certificate status
for the station (M06, OCSP) and contract installation through a certificate provider
(M01/M02). The OCSP client and the provider are behind the small protocols below; the HTTP
ones are in csms/integrations.

OCSP answers are cached until their nextUpdate (at most `pnc_ocsp_cache_max_s`, at most
`pnc_ocsp_cache_entries`, those expiring first dropped): in memory, and in the database
(`ocsp_responses`), so a restart or another node reuses them instead of asking again.
Responder URLs come from stations, so a request goes only to a host the operator listed
(`pnc_ocsp_responder_hosts`): no request to an address an outsider chose.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import math
from collections import OrderedDict
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from csms.domain.iso15118 import (
    OcspAnswer,
    OcspRequestData,
    ProviderAnswer,
    cache_until,
    certificate_status_of,
    worst_certificate_status,
)
from csms.integrations.certificate_provider import HttpCertificateProvider
from csms.integrations.ocsp import HttpOcspClient, request_data_for, responder_url_of
from csms.persistence.database import Database
from csms.persistence.repositories import ocsp as ocsp_repo
from csms.services.common import Clock, utcnow
from v2g_shared.ocpp_versions import OcppVersion

log = logging.getLogger(__name__)

# A contract chain longer than this is not a contract chain (leaf, up to 2 sub-CAs, root).
MAX_CHAIN_CERTIFICATES = 5
# Response field lengths per version: GetCertificateStatusResponse.ocspResult and
# Get15118EVCertificateResponse.exiResponse maxLength (OCPP 2.0.1, 2.1).
MAX_OCSP_RESULT_CHARS = {OcppVersion.V201: 5500, OcppVersion.V21: 18000}
MAX_EXI_RESPONSE_CHARS = {OcppVersion.V201: 7500, OcppVersion.V21: 17000}


class OcspClient(Protocol):
    async def fetch(
        self, wanted: OcspRequestData, known: Sequence[x509.Certificate], now: datetime
    ) -> OcspAnswer: ...


class CertificateProvider(Protocol):
    async def get_ev_certificate(self, request: dict[str, Any]) -> ProviderAnswer: ...


class OcspStore:
    """OCSP answers in the database, shared by restarts and nodes."""

    def __init__(self, db: Database, keep: int) -> None:
        self._db = db
        self._keep = keep

    @staticmethod
    def key(cache_key: tuple[str, str, str, str]) -> str:
        return hashlib.sha256("|".join(cache_key).encode()).hexdigest()

    async def get(
        self, cache_key: tuple[str, str, str, str], now: datetime
    ) -> tuple[datetime, OcspAnswer] | None:
        async with self._db.read() as conn:
            return await ocsp_repo.get_ocsp_answer(conn, self.key(cache_key), now)

    async def put(
        self,
        cache_key: tuple[str, str, str, str],
        until: datetime,
        answer: OcspAnswer,
        now: datetime,
    ) -> None:
        key = self.key(cache_key)
        await self._db.write(
            lambda conn: ocsp_repo.put_ocsp_answer(conn, key, until, answer, now, self._keep)
        )


class PlugAndChargeService:
    def __init__(
        self,
        ocsp_client: OcspClient | None,
        provider: CertificateProvider | None,
        *,
        store: OcspStore | None = None,
        responder_hosts: str = "",
        trust_anchors: Sequence[x509.Certificate] = (),
        cache_max: timedelta = timedelta(days=1),
        cache_entries: int = 10_000,
        clock: Clock = utcnow,
    ) -> None:
        self._ocsp = ocsp_client
        self._store = store
        self.provider = provider
        hosts = {h.strip().lower() for h in responder_hosts.split(",") if h.strip()}
        self._any_host = "*" in hosts
        self._hosts = hosts - {"*"}
        self.trust_anchors = tuple(trust_anchors)
        self._cache_max = cache_max
        self._cache_entries = cache_entries
        self._cache: OrderedDict[tuple[str, str, str, str], tuple[datetime, OcspAnswer]] = (
            OrderedDict()
        )
        self._clock = clock
        self.ocsp_requests = 0  # sent to a responder (the rest came from the cache)

    # ---- OCSP ---------------------------------------------------------------------------

    def responder_allowed(self, url: str) -> bool:
        try:
            parts = urlsplit(url)
            host = (parts.hostname or "").lower()
        except ValueError:
            return False
        if parts.scheme not in ("http", "https") or not host:
            return False
        return self._any_host or host in self._hosts

    async def ocsp(
        self, wanted: OcspRequestData, known: Sequence[x509.Certificate] = ()
    ) -> OcspAnswer:
        """The responder's answer for one certificate, from the cache while it is valid."""
        now = self._clock()
        cached = self._cache.get(wanted.cache_key)
        if cached is not None:
            until, answer = cached
            if now < until:
                return answer
            del self._cache[wanted.cache_key]
        if self._store is not None:
            stored = await self._store.get(wanted.cache_key, now)
            if stored is not None:
                self._remember(wanted.cache_key, *stored)
                return stored[1]
        if self._ocsp is None or not self.responder_allowed(wanted.responder_url):
            return OcspAnswer("error", reason="responder not allowed (pnc_ocsp_responder_hosts)")
        self.ocsp_requests += 1
        answer = await self._ocsp.fetch(wanted, (*self.trust_anchors, *known), now)
        if answer.status == "error":
            log.info(
                "OCSP %s serial %s: %s", wanted.responder_url, wanted.serial_number, answer.reason
            )
        keep_until = cache_until(answer, now, self._cache_max)
        if keep_until is not None:
            self._remember(wanted.cache_key, keep_until, answer)
            if self._store is not None:
                await self._store.put(wanted.cache_key, keep_until, answer, now)
        return answer

    def _remember(
        self, key: tuple[str, str, str, str], until: datetime, answer: OcspAnswer
    ) -> None:
        self._cache[key] = (until, answer)
        while len(self._cache) > self._cache_entries:
            self._cache.popitem(last=False)

    async def certificate_status(
        self, data: dict[str, Any], version: OcppVersion = OcppVersion.V201
    ) -> dict[str, Any]:
        """GetCertificateStatusResponse (M06): Accepted with the responder's DER response
        (base64) when it answered about that certificate (M06.FR.02), else Failed."""
        wanted = OcspRequestData.from_ocpp(data)
        answer = await self.ocsp(wanted)
        if answer.der is None:
            return {
                "status": "Failed",
                "statusInfo": {"reasonCode": "OCSPFailed", "additionalInfo": answer.reason[:500]},
            }
        result = base64.b64encode(answer.der).decode()
        if len(result) > MAX_OCSP_RESULT_CHARS[version]:
            return {"status": "Failed", "statusInfo": {"reasonCode": "OCSPResultTooLong"}}
        return {"status": "Accepted", "ocspResult": result}

    async def chain_certificate_status(
        self, hash_data: dict[str, Any], source: str, urls: Sequence[str]
    ) -> tuple[str, datetime | None]:
        """One entry of OCPP 2.1 GetCertificateChainStatus: Good / Revoked / Unknown from the
        certificate's OCSP responder (the first URL), with the answer's nextUpdate; Failed for
        a CRL source (no CRL client) or when no usable answer came."""
        if source != "OCSP" or not urls:
            return "Failed", None
        wanted = OcspRequestData.from_ocpp({**hash_data, "responderURL": urls[0]})
        answer = await self.ocsp(wanted)
        status = {"good": "Good", "revoked": "Revoked", "unknown": "Unknown"}.get(answer.status)
        if status is None:
            return "Failed", None
        return status, answer.next_update

    # ---- contract certificates in Authorize (C07) ----------------------------------------

    async def contract_status(
        self, hash_data: Sequence[dict[str, Any]] | None, pem_chain: str | None
    ) -> str:
        """An AuthorizeCertificateStatus for the contract the station presented: the hash
        data's certificates checked by OCSP (C07.FR.05), or the PEM chain checked against
        the trust anchors, its validity and OCSP (C07.FR.06)."""
        if pem_chain:
            return await self._chain_status(pem_chain)
        entries = [OcspRequestData.from_ocpp(d) for d in hash_data or []]
        answers = await asyncio.gather(*(self.ocsp(e) for e in entries))
        return worst_certificate_status([certificate_status_of(a) for a in answers])

    async def _chain_status(self, pem_chain: str) -> str:
        try:
            chain = x509.load_pem_x509_certificates(pem_chain.encode())
        except ValueError:
            return "CertChainError"
        if not chain or len(chain) > MAX_CHAIN_CERTIFICATES:
            return "CertChainError"
        now = self._clock()
        for certificate in chain:
            if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
                return "CertificateExpired"
        issuers: list[x509.Certificate] = []
        for k, certificate in enumerate(chain):
            issuer = chain[k + 1] if k + 1 < len(chain) else self._anchor_of(certificate)
            if issuer is None:
                return "CertChainError"  # no trust anchor issued the top of the chain
            if not _issued_by(certificate, issuer):
                return "SignatureError"
            issuers.append(issuer)
        lookups = []
        for certificate, issuer in zip(chain, issuers, strict=True):
            if certificate == issuer:
                continue  # a root in the chain needs no OCSP
            url = responder_url_of(certificate)
            if url is None:
                return "CertChainError"  # revocation cannot be checked: fail closed
            lookups.append(self.ocsp(request_data_for(certificate, issuer, url), issuers))
        answers = await asyncio.gather(*lookups)
        return worst_certificate_status([certificate_status_of(a) for a in answers] or ["Accepted"])

    def _anchor_of(self, certificate: x509.Certificate) -> x509.Certificate | None:
        for anchor in self.trust_anchors:
            if anchor == certificate:
                return anchor
            if anchor.subject == certificate.issuer and _issued_by(certificate, anchor):
                return anchor
        return None

    # ---- contract installation (M01/M02) -----------------------------------------------

    async def get_ev_certificate(
        self, station_id: str, payload: dict[str, Any], version: OcppVersion = OcppVersion.V201
    ) -> dict[str, Any]:
        """Get15118EVCertificateResponse: the provider's answer (M01.FR.01, M02.FR.01), or
        Failed naming why (no provider configured, provider failed)."""
        if self.provider is None:
            return {
                "status": "Failed",
                "exiResponse": "",
                "statusInfo": {"reasonCode": "NoProvider"},
            }
        request: dict[str, Any] = {"stationId": station_id}
        for key in (
            "iso15118SchemaVersion",
            "action",
            "exiRequest",
            "maximumContractCertificateChains",
            "prioritizedEMAIDs",
        ):
            if key in payload:
                request[key] = payload[key]
        answer = await self.provider.get_ev_certificate(request)
        if len(answer.exi_response) > MAX_EXI_RESPONSE_CHARS[version]:
            answer = ProviderAnswer("Failed", reason="ExiTooLong")
        response: dict[str, Any] = {"status": answer.status, "exiResponse": answer.exi_response}
        if version is OcppVersion.V21 and answer.remaining_contracts is not None:
            response["remainingContracts"] = answer.remaining_contracts
        if answer.reason:
            info: dict[str, Any] = {"reasonCode": answer.reason[:20]}
            if answer.detail:
                info["additionalInfo"] = answer.detail[:500]
            response["statusInfo"] = info
        return response


def _issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    if certificate.issuer != issuer.subject:
        return False
    try:
        certificate.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def load_trust_anchors(path: Path | None) -> list[x509.Certificate]:
    if path is None:
        return []
    return x509.load_pem_x509_certificates(path.read_bytes())


def pnc_service_from_settings(
    settings: Any, clock: Clock = utcnow, db: Database | None = None
) -> PlugAndChargeService:
    """The service with the HTTP OCSP client and, when a URL is set, the HTTP provider; OCSP
    answers kept in `db` too when given."""
    provider = None
    if settings.pnc_certificate_provider_url:
        provider = HttpCertificateProvider(
            settings.pnc_certificate_provider_url,
            timeout_s=settings.pnc_certificate_provider_timeout_s,
        )
    cache_max_s = settings.pnc_ocsp_cache_max_s
    return PlugAndChargeService(
        HttpOcspClient(
            timeout_s=settings.pnc_ocsp_timeout_s,
            max_response_bytes=settings.pnc_ocsp_max_response_bytes,
        ),
        provider,
        store=None if db is None else OcspStore(db, settings.pnc_ocsp_cache_entries),
        responder_hosts=settings.pnc_ocsp_responder_hosts,
        trust_anchors=load_trust_anchors(settings.pnc_trust_anchors_file),
        cache_max=timedelta(seconds=cache_max_s if math.isfinite(cache_max_s) else 0),
        cache_entries=settings.pnc_ocsp_cache_entries,
        clock=clock,
    )
