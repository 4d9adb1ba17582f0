"""The OCPP 2.0.1 websocket endpoint: ws(s)://host:port/<path>/<stationId>.

Handshake answers (before any websocket frame):
- no `ocpp2.0.1` among the offered subprotocols (or none offered): HTTP 400;
- path not `/<path>/<stationId>` or unknown station: HTTP 404;
- bad or missing credentials, or a profile 2/3 station on plain ws: HTTP 401.
Security profiles: 1 = Basic auth (user = station id); 2 = TLS + Basic; 3 = TLS client
certificate whose CN is the station id (no Basic needed).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import ssl
import weakref
from http import HTTPStatus
from typing import Protocol
from urllib.parse import unquote, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from csms.domain.models import SecurityProfile, Station
from csms.ocpp_server.blocks import all_handlers
from csms.ocpp_server.session import Handler, Session
from csms.routing.base import StationLink
from csms.services.container import Services
from csms.settings import Settings

log = logging.getLogger(__name__)

SUBPROTOCOL = "ocpp2.0.1"
HANDSHAKE_TIMEOUT_S = 60.0


class ConnectionRegistry(Protocol):
    """What the server needs from the router: who holds which station."""

    def register(self, link: StationLink) -> StationLink | None: ...

    def unregister(self, link: StationLink) -> None: ...


def server_ssl_context(settings: Settings) -> ssl.SSLContext | None:
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
    if settings.tls_client_ca_file is not None:
        context.load_verify_locations(settings.tls_client_ca_file)
        # Optional: profile 2 stations have no client certificate; profile 3 is checked per
        # station in the handshake.
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


def _offered_subprotocols(request: Request) -> list[str]:
    return [
        part.strip()
        for header in request.headers.get_all("Sec-WebSocket-Protocol")
        for part in header.split(",")
        if part.strip()
    ]


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("Authorization")
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def _client_common_name(connection: ServerConnection) -> str | None:
    ssl_object = connection.transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    cert = ssl_object.getpeercert()
    if not cert:
        return None
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


class OcppServer:
    """A running OCPP endpoint. Use `start_ocpp_server(settings, services)`."""

    def __init__(self, settings: Settings, services: Services) -> None:
        registry = services.router
        if not hasattr(registry, "register") or not hasattr(registry, "unregister"):
            raise TypeError("services.router must keep a connection registry")
        self.settings = settings
        self.services = services
        self._registry: ConnectionRegistry = registry  # type: ignore[assignment]
        self._handlers: dict[str, Handler] = all_handlers()
        self._prefix = f"/{settings.ocpp_path}/" if settings.ocpp_path else "/"
        self._server: Server | None = None
        self.sessions: dict[str, Session] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._pruner: asyncio.Task[None] | None = None
        # Station read by the handshake, for the connection handler (weak: a handshake that
        # fails later leaves nothing behind).
        self._admitted: weakref.WeakKeyDictionary[ServerConnection, Station] = (
            weakref.WeakKeyDictionary()
        )

    @property
    def port(self) -> int:
        assert self._server is not None
        sockets = list(self._server.sockets)
        return int(sockets[0].getsockname()[1])

    @property
    def tls(self) -> bool:
        return self.settings.tls_enabled

    async def start(self) -> None:
        self._server = await serve(
            self._handle,
            self.settings.ocpp_host,
            self.settings.ocpp_port,
            subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
            process_request=self._process_request,
            ssl=server_ssl_context(self.settings),
            ping_interval=self.settings.ping_interval_s,
            ping_timeout=self.settings.ping_timeout_s,
            # A dead link will not complete the closing handshake either: don't wait 10 s.
            close_timeout=self.settings.ping_timeout_s,
            max_size=self.settings.ocpp_max_frame_bytes,  # larger: closed with 1009
            compression=None,
            # A reconnect storm: the default backlog (100) drops SYNs by the thousand, and
            # a handshake given up after websockets' default 10 s is work thrown away.
            backlog=4096,
            open_timeout=HANDSHAKE_TIMEOUT_S,
        )
        self._pruner = asyncio.create_task(self._prune_message_log(3600.0))

    async def _prune_message_log(self, every_s: float) -> None:
        while True:
            try:
                removed = await self.services.message_log.prune_expired()
                if removed:
                    log.info("message log: %d old entries removed", removed)
            except Exception:
                log.exception("message log pruning failed")
            await asyncio.sleep(every_s)

    async def close(self) -> None:
        if self._pruner is not None:
            self._pruner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pruner
            self._pruner = None
        if self._server is None:
            return
        self._server.close()
        await self._server.wait_closed()
        self._server = None

    def station_id_of(self, path: str) -> str | None:
        path = urlsplit(path).path
        if not path.startswith(self._prefix):
            return None
        station_id = unquote(path[len(self._prefix) :])
        if not station_id or "/" in station_id or len(station_id) > 48:
            return None
        return station_id

    async def _process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        if SUBPROTOCOL not in _offered_subprotocols(request):
            return connection.respond(
                HTTPStatus.BAD_REQUEST, f"no common subprotocol: this CSMS speaks {SUBPROTOCOL}\n"
            )
        station_id = self.station_id_of(request.path)
        if station_id is None:
            return connection.respond(HTTPStatus.NOT_FOUND, "expected /<path>/<stationId>\n")
        admission = await self.services.stations.admission(station_id)
        if admission is None:
            return connection.respond(HTTPStatus.NOT_FOUND, "unknown station\n")
        station, stored_password = admission
        profile = station.security_profile
        tls = connection.transport.get_extra_info("ssl_object") is not None
        if profile is not SecurityProfile.BASIC_AUTH and not tls:
            return self._unauthorized(connection, f"security profile {int(profile)} needs wss://")
        if profile is SecurityProfile.TLS_CLIENT_CERT:
            if _client_common_name(connection) != station_id:
                return self._unauthorized(connection, "client certificate missing or not for it")
            self._admitted[connection] = station
            return None
        credentials = _basic_credentials(request)
        if (
            credentials is None
            or credentials[0] != station_id
            or stored_password is None
            or not await self.services.stations.verify_password(
                station_id, credentials[1], stored_password
            )
        ):
            return self._unauthorized(connection, "bad credentials")
        # _handle uses this read instead of reading the station again.
        self._admitted[connection] = station
        return None

    @staticmethod
    def _unauthorized(connection: ServerConnection, why: str) -> Response:
        response = connection.respond(HTTPStatus.UNAUTHORIZED, f"{why}\n")
        response.headers["WWW-Authenticate"] = 'Basic realm="OCPP", charset="UTF-8"'
        return response

    async def _handle(self, connection: ServerConnection) -> None:
        station_id = self.station_id_of(connection.request.path if connection.request else "")
        if station_id is None:  # cannot happen: process_request checked it
            await connection.close(1008, "bad path")
            return
        station = self._admitted.pop(connection, None)
        if station is None:
            try:
                station = await self.services.stations.get(station_id)
            except Exception:
                await connection.close(1011, "station unavailable")
                return
        session = Session(
            station_id,
            connection,
            self.services,
            self._handlers,
            registration=station.registration_status,
        )
        previous = self._registry.register(session)
        self.sessions[station_id] = session
        if isinstance(previous, Session):
            log.info("%s reconnected: closing its previous connection", station_id)
            # Its waiting commands fail now; the closing handshake runs in the background so
            # the new connection is served at once.
            closing = asyncio.create_task(previous.close(1000, "replaced by a new connection"))
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
        log.info("%s connected", station_id)
        try:
            await session.run()
        finally:
            self._registry.unregister(session)
            if self.sessions.get(station_id) is session:
                del self.sessions[station_id]
            log.info("%s disconnected", station_id)


async def start_ocpp_server(settings: Settings, services: Services) -> OcppServer:
    """Start listening (settings.ocpp_host/ocpp_port; port 0 = any free port)."""
    server = OcppServer(settings, services)
    await server.start()
    return server


__all__ = ["OcppServer", "start_ocpp_server"]
