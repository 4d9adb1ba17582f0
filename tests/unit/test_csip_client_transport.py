"""The CSIP-AUS client's identity helpers and 2030.5 transport (issue 18), without a server:
LFDI/SFDI per IEEE 2030.5-2018 6.3.3, the certificate-header mode refused off loopback, bounded
answers, paging, hrefs only on the configured server, XML without entities."""

from __future__ import annotations

import hashlib

import httpx
import pytest
from envoy_schema.server.schema.sep2.device_capability import DeviceCapabilityResponse
from envoy_schema.server.schema.sep2.end_device import EndDeviceListResponse, EndDeviceRequest

from csms.integrations.csip.identity import (
    der_of_pem,
    lfdi_of_certificate,
    pin_with_check_digit,
    sfdi_of_lfdi,
    site_lfdi,
)
from csms.integrations.csip.transport import (
    CsipError,
    CsipTransport,
    TransportConfig,
    TransportRefused,
    is_loopback_url,
    parse,
)
from tests.support.csip_server import make_identity, sfdi_of

NS = 'xmlns="urn:ieee:std:2030.5:ns"'
IDENTITY = make_identity("unit-aggregator")


def test_sfdi_of_the_ieee_2030_5_example() -> None:
    # IEEE 2030.5-2018 6.3.3's worked example; CACTUS's ALL-01 gives the 36 bits 16726121139.
    lfdi = "3E4F45AB31EDFE5B67E343E5E4562E31984E23E5"
    assert sfdi_of_lfdi(lfdi) == 167261211391
    assert sfdi_of_lfdi(lfdi) // 10 == 16726121139
    assert sfdi_of_lfdi(lfdi.lower()) == 167261211391
    with pytest.raises(ValueError):
        sfdi_of_lfdi("3E4F")


def test_lfdi_is_the_sha256_of_the_der_certificate() -> None:
    der = der_of_pem(IDENTITY.cert_pem)
    assert lfdi_of_certificate(der) == hashlib.sha256(der).hexdigest()[:40].upper()
    assert lfdi_of_certificate(der).lower() == IDENTITY.lfdi
    # The harness's own SFDI (independently written) agrees.
    assert sfdi_of_lfdi(IDENTITY.lfdi) == sfdi_of(IDENTITY.lfdi) == IDENTITY.sfdi


def test_site_lfdi_is_stable_uppercase_and_ends_in_the_pen() -> None:
    one = site_lfdi(IDENTITY.lfdi, "home-1", 12345)
    assert one == site_lfdi(IDENTITY.lfdi.upper(), "home-1", 12345)
    assert one != site_lfdi(IDENTITY.lfdi, "home-2", 12345)
    assert len(one) == 40 and one == one.upper() and one.endswith("00012345")
    with pytest.raises(ValueError):
        site_lfdi(IDENTITY.lfdi, "home-1", 10**8)


def test_registration_pin_check_digit() -> None:
    assert pin_with_check_digit(11111) == 111115  # CACTUS ALL-04
    assert pin_with_check_digit(0) == 0


@pytest.mark.parametrize(
    "url,loopback",
    [
        ("http://127.0.0.1:8000/dcap", True),
        ("http://127.5.0.1/dcap", True),
        ("http://[::1]:80/dcap", True),
        ("http://localhost/dcap", True),
        ("http://10.0.0.1/dcap", False),
        ("https://dnsp.example.com/dcap", False),
        ("http://127.0.0.1.example.com/dcap", False),
    ],
)
def test_loopback_urls(url: str, loopback: bool) -> None:
    assert is_loopback_url(url) is loopback


def test_certificate_header_mode_is_refused_off_loopback() -> None:
    for url in ("https://dnsp.example.com/dcap", "http://192.168.1.5/dcap"):
        with pytest.raises(TransportRefused, match="loopback"):
            CsipTransport(TransportConfig(url, IDENTITY.cert_pem.encode(), cert_header_mode=True))


def test_production_mode_needs_https_and_a_key() -> None:
    with pytest.raises(TransportRefused, match="https"):
        CsipTransport(TransportConfig("http://dnsp.example.com/dcap", b"x"))
    with pytest.raises(TransportRefused, match="key"):
        CsipTransport(TransportConfig("https://dnsp.example.com/dcap", IDENTITY.cert_pem.encode()))


def _transport(handler: httpx.MockTransport, **kwargs: object) -> CsipTransport:
    config = TransportConfig(
        "http://127.0.0.1:9/dcap", IDENTITY.cert_pem.encode(), cert_header_mode=True, **kwargs
    )  # type: ignore[arg-type]
    client = httpx.AsyncClient(base_url="http://127.0.0.1:9", transport=handler)
    return CsipTransport(config, client=client)


def _xml(body: str, status: int = 200) -> httpx.Response:
    return httpx.Response(
        status, content=body.encode(), headers={"content-type": "application/sep+xml"}
    )


async def test_get_parses_into_the_envoy_schema_model() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/dcap"
        return _xml(
            f'<DeviceCapability {NS} href="/dcap" pollRate="60">'
            '<TimeLink href="/tm"/><EndDeviceListLink href="/edev" all="1"/></DeviceCapability>'
        )

    transport = _transport(httpx.MockTransport(handler))
    dcap = await transport.get("/dcap", DeviceCapabilityResponse)
    assert dcap.pollRate == 60 and dcap.EndDeviceListLink is not None
    assert dcap.EndDeviceListLink.href == "/edev"
    assert transport.aggregator_lfdi == IDENTITY.lfdi.upper()


async def test_answers_over_the_size_bound_are_errors() -> None:
    big = f'<DeviceCapability {NS} href="/dcap">' + " " * 5000 + "</DeviceCapability>"
    transport = _transport(httpx.MockTransport(lambda _: _xml(big)), max_response_bytes=4096)
    with pytest.raises(CsipError, match="over 4096 bytes"):
        await transport.get("/dcap", DeviceCapabilityResponse)


async def test_wrong_content_type_status_and_entities_are_errors() -> None:
    html = httpx.MockTransport(lambda _: httpx.Response(200, content=b"<html/>"))
    with pytest.raises(CsipError, match="content type"):
        await _transport(html).get("/dcap", DeviceCapabilityResponse)
    gone = httpx.MockTransport(lambda _: _xml("<Error/>", 404))
    with pytest.raises(CsipError) as raised:
        await _transport(gone).get("/dcap", DeviceCapabilityResponse)
    assert raised.value.status == 404
    bomb = (
        '<!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        f'<DeviceCapability {NS} href="/dcap"><TimeLink href="&b;"/></DeviceCapability>'
    )
    # No entity is ever expanded (lxml would expand them in attributes): refused.
    with pytest.raises(CsipError, match="document type"):
        parse(DeviceCapabilityResponse, bomb.encode())


async def test_hrefs_on_other_servers_are_refused() -> None:
    transport = _transport(httpx.MockTransport(lambda _: _xml("<x/>")))
    assert transport.path_of("/edev/1?s=0") == "/edev/1?s=0"
    assert transport.path_of("http://127.0.0.1:9/edev/1") == "/edev/1"
    for href in ("https://evil.example/edev", "edev/1", "", "/" + "a" * 2000):
        with pytest.raises(CsipError):
            transport.path_of(href)


async def test_lists_are_paged_and_bounded() -> None:
    total = 7
    seen: list[tuple[int, int]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        s, n = int(request.url.params["s"]), int(request.url.params["l"])
        seen.append((s, n))
        items = "".join(
            f'<EndDevice href="/edev/{i}"><sFDI>{i + 1}</sFDI><changedTime>0</changedTime>'
            "</EndDevice>"
            for i in range(s, min(s + n, total))
        )
        count = min(n, max(0, total - s))
        return _xml(
            f'<EndDeviceList {NS} href="/edev" all="{total}" results="{count}">'
            f"{items}</EndDeviceList>"
        )

    transport = _transport(httpx.MockTransport(handler), page_size=3)
    _, items = await transport.get_list("/edev", EndDeviceListResponse, "EndDevice")
    assert [e.href for e in items] == [f"/edev/{i}" for i in range(total)]
    assert seen == [(0, 3), (3, 3), (6, 3)]
    bounded = _transport(httpx.MockTransport(handler), page_size=3, max_list_items=4)
    _, items = await bounded.get_list("/edev", EndDeviceListResponse, "EndDevice")
    assert len(items) == 4


async def test_post_returns_the_location_and_sends_sep_xml() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["content-type"] == "application/sep+xml"
        assert request.headers["ssl-client-cert"].startswith("-----BEGIN%20CERTIFICATE")
        assert b"<lFDI>" in request.content
        return httpx.Response(201, headers={"location": "/edev/3"})

    transport = _transport(httpx.MockTransport(handler))
    device = EndDeviceRequest(lFDI="AB" * 20, sFDI=1, changedTime=0)
    assert await transport.post("/edev", device) == "/edev/3"
