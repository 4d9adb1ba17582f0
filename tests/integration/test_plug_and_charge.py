"""Plug & Charge on the CSMS against an OCSP responder and a certificate provider run here on
loopback: Authorize with contract certificates (C07), GetCertificateStatus (M06) and
Get15118EVCertificate (M01/M02), over a real websocket."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.x509 import ocsp
from websockets.asyncio.client import ClientConnection

from csms.domain.iso15118 import OcspRequestData
from csms.domain.models import IdTokenStatus
from csms.integrations.ocsp import HttpOcspClient
from tests.support.csms_harness import Csms, raw_boot, raw_connect, raw_exchange, running_csms
from tests.support.pnc_pki import (
    ContractPki,
    OcspResponder,
    Provider,
    http_server,
    make_contract_pki,
)

EMAID = "AUXYZC123456780"


@dataclass
class PnC:
    csms: Csms
    ws: ClientConnection
    pki: ContractPki
    responder: OcspResponder
    provider: Provider

    async def authorize(self, **extra: Any) -> dict[str, Any]:
        payload = {"idToken": {"idToken": EMAID, "type": "eMAID"}, **extra}
        reply = await raw_exchange(self.ws, [2, "a", "Authorize", payload])
        assert reply[0] == 3, reply
        answer: dict[str, Any] = reply[2]
        return answer


@contextlib.asynccontextmanager
async def pnc_csms(tmp_path: Path, **overrides: Any) -> AsyncIterator[PnC]:
    responder = OcspResponder()
    provider = Provider()
    async with http_server(responder.handle) as ocsp_url, http_server(provider.handle) as prov:
        pki = make_contract_pki(f"{ocsp_url}/ocsp")
        responder.pki = pki
        anchors = tmp_path / "v2g-roots.pem"
        anchors.write_text(pki.root.pem)
        settings: dict[str, Any] = {
            "pnc_ocsp_responder_hosts": "127.0.0.1",
            "pnc_trust_anchors_file": anchors,
            "pnc_certificate_provider_url": f"{prov}/ev-certificate",
            **overrides,
        }
        async with running_csms(tmp_path, **settings) as csms:
            await csms.add_station("CS1")
            await csms.services.id_tokens.create(EMAID, "eMAID", IdTokenStatus.ACCEPTED)
            ws = await raw_connect(csms, "CS1")
            assert (await raw_boot(ws))[2]["status"] == "Accepted"
            try:
                yield PnC(csms, ws, pki, responder, provider)
            finally:
                await ws.close()


@pytest.fixture
async def pnc(tmp_path: Path) -> AsyncIterator[PnC]:
    async with pnc_csms(tmp_path) as running:
        yield running


# ---- C07: Authorize with contract certificates -------------------------------------------


async def test_c07_fr05_hash_data_good_contract_accepted(pnc: PnC) -> None:
    leaf = pnc.pki.contract("good")
    answer = await pnc.authorize(iso15118CertificateHashData=pnc.pki.hash_data(leaf))
    assert answer["idTokenInfo"]["status"] == "Accepted"
    assert answer["certificateStatus"] == "Accepted"
    assert pnc.responder.requests == 2  # the contract and its sub-CA, each asked


async def test_c07_fr16_revoked_contract_is_invalid(pnc: PnC) -> None:
    leaf = pnc.pki.contract("revoked")
    answer = await pnc.authorize(iso15118CertificateHashData=pnc.pki.hash_data(leaf))
    assert answer["idTokenInfo"]["status"] == "Invalid"
    assert answer["certificateStatus"] == "CertificateRevoked"
    audit = (await pnc.csms.services.events.list("CS1", kind="Authorize")).items
    assert audit[0].payload["certificateStatus"] == "CertificateRevoked"


async def test_c07_fr05_unknown_contract_not_accepted(pnc: PnC) -> None:
    leaf = pnc.pki.contract("unknown")
    answer = await pnc.authorize(iso15118CertificateHashData=pnc.pki.hash_data(leaf))
    assert answer["idTokenInfo"]["status"] == "Invalid"
    assert answer["certificateStatus"] == "CertChainError"


async def test_c07_fr13_good_contract_but_blocked_emaid(pnc: PnC) -> None:
    await pnc.csms.services.id_tokens.create(EMAID, "eMAID", IdTokenStatus.BLOCKED)
    leaf = pnc.pki.contract("good")
    answer = await pnc.authorize(iso15118CertificateHashData=pnc.pki.hash_data(leaf))
    assert answer["idTokenInfo"]["status"] == "Blocked"
    assert answer["certificateStatus"] == "ContractCancelled"


async def test_c07_fr06_pem_chain_checked_against_the_trust_anchor_and_ocsp(pnc: PnC) -> None:
    good = pnc.pki.contract("good")
    answer = await pnc.authorize(certificate=pnc.pki.chain_pem(good))
    assert (answer["idTokenInfo"]["status"], answer["certificateStatus"]) == (
        "Accepted",
        "Accepted",
    )
    revoked = pnc.pki.contract("revoked")
    answer = await pnc.authorize(certificate=pnc.pki.chain_pem(revoked))
    assert (answer["idTokenInfo"]["status"], answer["certificateStatus"]) == (
        "Invalid",
        "CertificateRevoked",
    )


async def test_c07_fr06_chain_from_an_untrusted_root_refused(pnc: PnC) -> None:
    other = make_contract_pki(pnc.pki.responder_url)
    leaf = other.contract("good")
    answer = await pnc.authorize(certificate=other.chain_pem(leaf))
    assert answer["idTokenInfo"]["status"] == "Invalid"
    assert answer["certificateStatus"] == "CertChainError"
    assert pnc.responder.requests == 0  # refused before any OCSP request


async def test_c07_expired_contract(pnc: PnC) -> None:
    leaf = pnc.pki.contract("good", not_after=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    answer = await pnc.authorize(certificate=pnc.pki.chain_pem(leaf))
    assert (answer["idTokenInfo"]["status"], answer["certificateStatus"]) == (
        "Expired",
        "CertificateExpired",
    )


async def test_c07_ocsp_answers_cached_until_next_update(pnc: PnC) -> None:
    leaf = pnc.pki.contract("good")
    for _ in range(3):
        answer = await pnc.authorize(iso15118CertificateHashData=pnc.pki.hash_data(leaf))
        assert answer["certificateStatus"] == "Accepted"
    assert pnc.responder.requests == 2  # asked once per certificate, then the cache


async def test_c07_answer_without_next_update_not_cached(pnc: PnC) -> None:
    pnc.responder.next_update = None
    leaf = pnc.pki.contract("good")
    for _ in range(2):
        await pnc.authorize(iso15118CertificateHashData=pnc.pki.hash_data(leaf))
    assert pnc.responder.requests == 4


async def test_c07_forged_ocsp_signature_not_accepted(pnc: PnC) -> None:
    pnc.responder.sign_with_wrong_key = True
    leaf = pnc.pki.contract("good")
    answer = await pnc.authorize(certificate=pnc.pki.chain_pem(leaf))
    assert answer["idTokenInfo"]["status"] == "Invalid"
    assert answer["certificateStatus"] == "CertChainError"


async def test_c07_delegated_ocsp_responder_verified(pnc: PnC) -> None:
    pnc.responder.delegate = True
    leaf = pnc.pki.contract("good")
    answer = await pnc.authorize(certificate=pnc.pki.chain_pem(leaf))
    assert answer["certificateStatus"] == "Accepted"


async def test_c07_responder_host_not_allowed_means_no_request(tmp_path: Path) -> None:
    async with pnc_csms(tmp_path, pnc_ocsp_responder_hosts="") as pnc:
        leaf = pnc.pki.contract("good")
        answer = await pnc.authorize(iso15118CertificateHashData=pnc.pki.hash_data(leaf))
        assert answer["certificateStatus"] == "CertChainError"
        assert pnc.responder.requests == 0


async def test_c01_token_alone_unchanged_without_certificates(pnc: PnC) -> None:
    answer = await pnc.authorize()
    assert answer == {"idTokenInfo": {"status": "Accepted"}}
    assert pnc.responder.requests == 0


# ---- M06: GetCertificateStatus ------------------------------------------------------------


async def test_m06_fr01_fr02_certificate_status_returns_the_ocsp_response(pnc: PnC) -> None:
    leaf = pnc.pki.contract("revoked")
    data = pnc.pki.hash_data(leaf)[0]
    reply = await raw_exchange(pnc.ws, [2, "s", "GetCertificateStatus", {"ocspRequestData": data}])
    assert reply[2]["status"] == "Accepted"
    response = ocsp.load_der_ocsp_response(base64.b64decode(reply[2]["ocspResult"]))
    assert response.serial_number == leaf.certificate.serial_number
    assert response.certificate_status is ocsp.OCSPCertStatus.REVOKED


async def test_m06_fr01_failed_when_the_responder_is_unreachable(pnc: PnC) -> None:
    leaf = pnc.pki.contract("good")
    data = pnc.pki.hash_data(leaf)[0]
    data["responderURL"] = "http://127.0.0.1:9/ocsp"  # discard port: nothing listens
    reply = await raw_exchange(pnc.ws, [2, "s", "GetCertificateStatus", {"ocspRequestData": data}])
    assert reply[2]["status"] == "Failed"


# ---- M01 / M02: Get15118EVCertificate ------------------------------------------------------


@pytest.mark.parametrize("action", ["Install", "Update"])
async def test_m01_fr01_m02_fr01_request_forwarded_to_the_provider(pnc: PnC, action: str) -> None:
    request = {
        "iso15118SchemaVersion": "urn:iso:15118:2:2013:MsgDef",
        "action": action,
        "exiRequest": "ZXhpLXJlcXVlc3Q=",
    }
    reply = await raw_exchange(pnc.ws, [2, "e", "Get15118EVCertificate", request])
    assert reply[2] == {"status": "Accepted", "exiResponse": "ZXhpLXJlc3BvbnNl"}
    assert pnc.provider.requests == [{"stationId": "CS1", **request}]


async def test_m01_provider_failure_is_failed(pnc: PnC) -> None:
    pnc.provider.http_status = 500
    request = {"iso15118SchemaVersion": "x", "action": "Install", "exiRequest": "AAAA"}
    reply = await raw_exchange(pnc.ws, [2, "e", "Get15118EVCertificate", request])
    assert reply[2]["status"] == "Failed"
    assert reply[2]["statusInfo"]["reasonCode"] == "ProviderError"


async def test_m01_without_a_provider_failed_no_provider(tmp_path: Path) -> None:
    async with pnc_csms(tmp_path, pnc_certificate_provider_url=None) as pnc:
        request = {"iso15118SchemaVersion": "x", "action": "Install", "exiRequest": "AAAA"}
        reply = await raw_exchange(pnc.ws, [2, "e", "Get15118EVCertificate", request])
        assert reply[2]["status"] == "Failed"
        assert reply[2]["statusInfo"]["reasonCode"] == "NoProvider"
        assert pnc.provider.requests == []


# ---- bounds on what a responder or provider sends back ------------------------------------


async def test_ocsp_response_size_and_time_bounded() -> None:
    async def huge(path: str, body: bytes) -> tuple[int, str, bytes]:
        return 200, "application/ocsp-response", b"\0" * (2 * 1024 * 1024)

    async def slow(path: str, body: bytes) -> tuple[int, str, bytes]:
        await asyncio.sleep(2)
        return 200, "application/ocsp-response", b""

    pki = make_contract_pki("http://127.0.0.1:9/ocsp")
    leaf = pki.contract()
    client = HttpOcspClient(timeout_s=0.3, max_response_bytes=64 * 1024)
    async with http_server(huge) as url:
        wanted = OcspRequestData.from_ocpp({**pki.hash_data(leaf)[0], "responderURL": url})
        answer = await client.fetch(wanted, [], dt.datetime.now(dt.UTC))
    assert answer.status == "error" and "over 65536 bytes" in answer.reason
    async with http_server(slow) as url:
        wanted = OcspRequestData.from_ocpp({**pki.hash_data(leaf)[0], "responderURL": url})
        started = time.perf_counter()
        answer = await client.fetch(wanted, [], dt.datetime.now(dt.UTC))
        assert time.perf_counter() - started < 1.5
    assert answer.status == "error" and "no answer within" in answer.reason


async def test_m01_provider_exi_response_bounded(pnc: PnC) -> None:
    pnc.provider.answer = {"status": "Accepted", "exiResponse": "A" * 8000}
    request = {"iso15118SchemaVersion": "x", "action": "Install", "exiRequest": "AAAA"}
    reply = await raw_exchange(pnc.ws, [2, "e", "Get15118EVCertificate", request])
    assert reply[2]["status"] == "Failed"
    assert reply[2]["statusInfo"]["reasonCode"] == "ExiTooLong"
