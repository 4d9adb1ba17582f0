"""The IEEE 2030.5 HTTP transport of the CSIP-AUS aggregator client (async httpx).

Identity: mutual TLS with the aggregator's certificate and key, the server checked against a CA
bundle (production). For loopback test servers only, the certificate-header mode: no TLS, the
aggregator's PEM in the `ssl-client-cert` header, as a TLS-terminating proxy passes it; a
non-loopback URL in that mode is refused (`TransportRefused`), since anyone on the path could
then act as the aggregator.

Every answer is bounded: at most `max_response_bytes` read (more is an error, not truncated),
a timeout per request, the content type checked, XML parsed without entities or network
access, then validated into envoy-schema's pydantic-xml model. Lists are paged (`?s=&l=`) up to
`max_list_items`. Only hrefs on the configured server are followed.
"""

from __future__ import annotations

import ipaddress
import ssl
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
from lxml import etree
from pydantic import ValidationError
from pydantic_xml import BaseXmlModel

from csms.integrations.csip.identity import der_of_pem, lfdi_of_certificate

SEP_XML = "application/sep+xml"
CERT_HEADER = "ssl-client-cert"
DEFAULT_MAX_RESPONSE_BYTES = 512 * 1024
DEFAULT_PAGE = 100
DEFAULT_MAX_LIST_ITEMS = 500
MAX_HREF_CHARS = 1024

M = TypeVar("M", bound=BaseXmlModel)


class CsipError(Exception):
    """A 2030.5 exchange failed (transport, status, size, content or model)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class TransportRefused(ValueError):
    """The configuration would expose the aggregator identity (certificate header off loopback)."""


def is_loopback_url(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class TransportConfig:
    server_url: str  # the DeviceCapability URL, e.g. https://dnsp.example/api/v2/dcap
    cert_pem: bytes  # the aggregator's certificate (PEM)
    key_file: Path | None = None  # its private key (mutual TLS)
    cert_file: Path | None = None  # the certificate file (mutual TLS)
    ca_file: Path | None = None  # CA bundle the server is checked against (None: system CAs)
    cert_header_mode: bool = False  # loopback tests only
    timeout_s: float = 20.0
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    max_list_items: int = DEFAULT_MAX_LIST_ITEMS
    page_size: int = DEFAULT_PAGE

    @classmethod
    def from_files(
        cls,
        server_url: str,
        cert_file: Path,
        key_file: Path | None,
        ca_file: Path | None,
        *,
        cert_header_mode: bool = False,
        **kwargs: Any,
    ) -> TransportConfig:
        return cls(
            server_url=server_url,
            cert_pem=cert_file.read_bytes(),
            key_file=key_file,
            cert_file=cert_file,
            ca_file=ca_file,
            cert_header_mode=cert_header_mode,
            **kwargs,
        )


def _parser() -> etree.XMLParser:
    # No entities, no DTD loading, no network, no huge trees: the server is a peer.
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def parse(model: type[M], data: bytes) -> M:
    """`data` (a 2030.5 document) as `model`; CsipError when it is not one."""
    # 2030.5 documents have no DTD; lxml expands internal entities in attributes even with
    # resolve_entities=False, so a document type is refused outright (entity bombs).
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise CsipError("XML with a document type declaration refused")
    try:
        root = etree.fromstring(data, parser=_parser())
    except etree.XMLSyntaxError as error:
        raise CsipError(f"not XML: {error}") from error
    try:
        return model.from_xml_tree(root)
    except (ValidationError, ValueError, TypeError) as error:
        raise CsipError(f"not a valid {model.__name__}: {str(error)[:500]}") from error


def serialize(document: BaseXmlModel) -> bytes:
    data = document.to_xml(skip_empty=True, exclude_none=True)
    return data.encode() if isinstance(data, str) else data


class CsipTransport:
    """GET (typed), POST (-> Location), PUT, DELETE and paged lists against one 2030.5 server."""

    def __init__(self, config: TransportConfig, *, client: httpx.AsyncClient | None = None):
        parts = urllib.parse.urlsplit(config.server_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TransportRefused(f"csip server URL must be http(s)://host/...: {parts.scheme}")
        if config.cert_header_mode and not is_loopback_url(config.server_url):
            raise TransportRefused(
                "the certificate-header mode is for loopback test servers only; "
                f"{parts.hostname} needs mutual TLS"
            )
        if not config.cert_header_mode and parts.scheme != "https":
            raise TransportRefused("a CSIP-AUS server is reached over https (mutual TLS)")
        self.config = config
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.dcap_path = parts.path or "/dcap"
        self.aggregator_lfdi = lfdi_of_certificate(der_of_pem(config.cert_pem))
        headers = {"Accept": SEP_XML}
        verify: ssl.SSLContext | bool = True
        if config.cert_header_mode:
            headers[CERT_HEADER] = urllib.parse.quote(config.cert_pem.decode(), safe="")
        else:
            if config.cert_file is None or config.key_file is None:
                raise TransportRefused("mutual TLS needs csip_cert_file and csip_key_file")
            context = ssl.create_default_context(
                cafile=str(config.ca_file) if config.ca_file else None
            )
            context.load_cert_chain(str(config.cert_file), str(config.key_file))
            verify = context
        self._headers = headers  # per request: also on a client handed in (tests)
        self._client = client or httpx.AsyncClient(
            base_url=self.origin,
            verify=verify,
            timeout=config.timeout_s,
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    def path_of(self, href: str) -> str:
        """A server href as a path on this server (absolute URLs elsewhere refused)."""
        if not href or len(href) > MAX_HREF_CHARS:
            raise CsipError(f"bad href of {len(href)} characters")
        parts = urllib.parse.urlsplit(href)
        if (parts.scheme or parts.netloc) and f"{parts.scheme}://{parts.netloc}" != self.origin:
            raise CsipError(f"href on another server refused: {href[:200]}")
        if not parts.path.startswith("/"):
            raise CsipError(f"href is not an absolute path: {href[:200]}")
        return parts.path + (f"?{parts.query}" if parts.query else "")

    async def _request(
        self,
        method: str,
        href: str,
        *,
        params: dict[str, int] | None = None,
        body: bytes | None = None,
        ok: Sequence[int],
    ) -> tuple[httpx.Response, bytes]:
        headers = dict(self._headers)
        if body is not None:
            headers["Content-Type"] = SEP_XML
        limit = self.config.max_response_bytes
        try:
            async with self._client.stream(
                method, self.path_of(href), params=params, content=body, headers=headers
            ) as answer:
                data = bytearray()
                async for chunk in answer.aiter_bytes():
                    data += chunk
                    if len(data) > limit:
                        raise CsipError(f"{method} {href}: answer over {limit} bytes")
        except httpx.HTTPError as error:
            raise CsipError(f"{method} {href}: {type(error).__name__}: {error}") from error
        if answer.status_code not in ok:
            text = bytes(data[:300]).decode(errors="replace")
            raise CsipError(
                f"{method} {href}: HTTP {answer.status_code} {text}", answer.status_code
            )
        return answer, bytes(data)

    async def get(self, href: str, model: type[M], *, params: dict[str, int] | None = None) -> M:
        answer, data = await self._request("GET", href, params=params, ok=(200,))
        content_type = answer.headers.get("content-type", "")
        if "xml" not in content_type:
            raise CsipError(f"GET {href}: content type {content_type[:80]!r}, not {SEP_XML}")
        return parse(model, data)

    async def get_list(
        self, href: str, model: type[M], items: str, *, max_items: int | None = None
    ) -> tuple[M, list[Any]]:
        """Every item of the list at `href` (attribute `items` of `model`), paged, at most
        `max_items` (default config.max_list_items): the first page's document and the items."""
        bound = min(max_items or self.config.max_list_items, self.config.max_list_items)
        page = max(1, min(self.config.page_size, bound))
        collected: list[Any] = []
        first: M | None = None
        start = 0
        while True:
            document = await self.get(href, model, params={"s": start, "l": page})
            first = first or document
            got = list(getattr(document, items) or [])
            collected.extend(got)
            total = int(getattr(document, "all_", 0) or 0)
            start += len(got)
            if not got or start >= total or len(collected) >= bound:
                return first, collected[:bound]

    async def post(self, href: str, document: BaseXmlModel) -> str:
        """POST `document`; the Location of what was made ("" when the server gives none)."""
        answer, _ = await self._request("POST", href, body=serialize(document), ok=(200, 201, 204))
        location = answer.headers.get("location", "")
        return self.path_of(location) if location else ""

    async def put(self, href: str, document: BaseXmlModel) -> None:
        await self._request("PUT", href, body=serialize(document), ok=(200, 201, 204))

    async def delete(self, href: str) -> None:
        await self._request("DELETE", href, ok=(200, 204))
