"""A certificate provider over HTTP for Get15118EVCertificate (M01 install, M02 update).

The CSMS POSTs the station's request as JSON to `pnc_certificate_provider_url` and expects
JSON back (the contract, in README "ISO 15118: charging needs and Plug & Charge"):

    request  {"stationId", "iso15118SchemaVersion", "action": "Install" | "Update",
              "exiRequest": base64 EXI, ["maximumContractCertificateChains"],
              ["prioritizedEMAIDs"]}
    response {"status": "Accepted" | "Failed", "exiResponse": base64 EXI,
              ["remainingContracts": n (ISO 15118-20, passed on to OCPP 2.1 stations)]}

A provider of another shape (a PKI's own API) sits behind a small adapter serving this one.
Bounded: one overall timeout, at most MAX_RESPONSE_BYTES read, no redirects.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from typing import Any

import httpx

from csms.domain.iso15118 import ProviderAnswer

MAX_RESPONSE_BYTES = 64 * 1024
# The longest exiResponse any OCPP version carries (2.1: 17,000; the service applies the
# station's version's limit).
MAX_EXI_RESPONSE_CHARS = 17_000
MAX_REMAINING_CONTRACTS = 1_000


class HttpCertificateProvider:
    """The CertificateProvider of csms/services/pnc.py, over HTTP(S)."""

    def __init__(self, url: str, *, timeout_s: float) -> None:
        self.url = url
        self._timeout_s = timeout_s

    async def get_ev_certificate(self, request: dict[str, Any]) -> ProviderAnswer:
        try:
            async with asyncio.timeout(self._timeout_s):
                body = await self._post(request)
        except TimeoutError:
            return ProviderAnswer("Failed", reason="ProviderTimeout")
        except (httpx.HTTPError, ValueError) as exc:
            return ProviderAnswer("Failed", reason="ProviderError", detail=str(exc))
        try:
            answer = json.loads(body)
        except ValueError:
            return ProviderAnswer("Failed", reason="ProviderError", detail="not JSON")
        if not isinstance(answer, dict):
            return ProviderAnswer("Failed", reason="ProviderError", detail="not an object")
        status = answer.get("status")
        exi = answer.get("exiResponse", "")
        if status not in ("Accepted", "Failed") or not isinstance(exi, str):
            return ProviderAnswer("Failed", reason="ProviderError", detail="bad status or EXI")
        if len(exi) > MAX_EXI_RESPONSE_CHARS:
            return ProviderAnswer("Failed", reason="ExiTooLong")
        try:
            base64.b64decode(exi, validate=True)
        except (binascii.Error, ValueError):
            return ProviderAnswer("Failed", reason="ProviderError", detail="EXI not base64")
        remaining = answer.get("remainingContracts")
        if isinstance(remaining, bool) or not isinstance(remaining, int):
            remaining = None
        elif not 0 <= remaining <= MAX_REMAINING_CONTRACTS:
            return ProviderAnswer("Failed", reason="ProviderError", detail="remainingContracts")
        return ProviderAnswer(status, exi, remaining_contracts=remaining)

    async def _post(self, request: dict[str, Any]) -> bytes:
        async with (
            httpx.AsyncClient(timeout=self._timeout_s, follow_redirects=False) as client,
            client.stream("POST", self.url, json=request) as response,
        ):
            if response.status_code != 200:
                raise ValueError(f"HTTP {response.status_code}")
            received = bytearray()
            async for chunk in response.aiter_bytes():
                received += chunk
                if len(received) > MAX_RESPONSE_BYTES:
                    raise ValueError(f"response over {MAX_RESPONSE_BYTES} bytes")
            return bytes(received)
