"""The OCPP websocket endpoint, 2.0.1 and 2.1 on one URL: ws(s)://host:port/<path>/<stationId>.

Version negotiation (OCPP-J Part 4, 3.1): the accepted versions in preference order are the
station's own list (`Station.ocpp_versions`) or else settings.ocpp_versions (default
`ocpp2.1,ocpp2.0.1`); the first of them the station offers is chosen, recorded with the session
and stored on the station.

Handshake answers (before any websocket frame):
- no subprotocol this platform speaks offered (or none offered): HTTP 400 naming what we
  speak; the same after authentication when none of the station's accepted versions is offered;
- path not `/<path>/<stationId>` or unknown station: HTTP 404;
- bad or missing credentials, or a profile 2/3 station on plain ws: HTTP 401;
- too many failed logins for this station id or source address: HTTP 429 with Retry-After
  (RFC 6585), answered before the station is read or the password checked.
Failed logins (bad password or certificate, unknown id) feed a per-node throttle
(csms.domain.throttle); each burst stores one `CsmsSecurityEvent` event and every refusal is
counted for /metrics. One log line per refused attempt at most, with station id and address.
Security profiles: 1 = Basic auth (user = station id); 2 = TLS + Basic; 3 = TLS client
certificate whose CN is the station id (no Basic needed).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import math
import time
import weakref
from collections import Counter
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from csms.domain.models import EventRecord, RegistrationStatus, SecurityProfile, Station
from csms.domain.ocpp_versions import negotiate
from csms.domain.throttle import (
    AuthThrottle,
    BackoffPolicy,
    Scope,
    Verdict,
    address_key,
    client_host,
    parse_networks,
)
from csms.ocpp_server.blocks import all_handlers
from csms.ocpp_server.session import Handler, Session
from csms.ocpp_server.tls import server_ssl_context
from csms.routing.base import StationLink
from csms.services.container import Services
from csms.services.redaction import install_frame_redaction
from csms.settings import Settings
from v2g_shared.ocpp_versions import OcppVersion

log = logging.getLogger(__name__)

SECURITY_EVENT_KIND = "CsmsSecurityEvent"  # events the CSMS itself records about a station
SUBPROTOCOLS = tuple(OcppVersion)  # every version the endpoint can speak
HANDSHAKE_TIMEOUT_S = 60.0


class ConnectionRegistry(Protocol):
    """What the server needs from the router: who holds which station."""

    def register(self, link: StationLink) -> StationLink | None: ...

    def unregister(self, link: StationLink) -> None: ...


class _QuietHandshakeLog(logging.LoggerAdapter):
    """websockets logs every connection's open/reject/close at INFO: two lines per refused
    login, a flood under guessing. Those go to DEBUG; the CSMS logs one line itself."""

    _PER_CONNECTION = (
        "connection open",
        "connection closed",
        "connection rejected",
        "HTTP response sent",
    )

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if level == logging.INFO and str(msg).startswith(self._PER_CONNECTION):
            level = logging.DEBUG
        super().log(level, msg, *args, **kwargs)


def auth_throttle(settings: Settings) -> AuthThrottle:
    def policy(free_failures: int) -> BackoffPolicy:
        return BackoffPolicy(
            free_failures=free_failures,
            base_delay_s=settings.auth_backoff_base_s,
            max_delay_s=settings.auth_backoff_max_s,
            forget_after_s=settings.auth_throttle_forget_s,
        )

    return AuthThrottle(
        policy(settings.auth_free_failures_per_station),
        policy(settings.auth_free_failures_per_address),
        capacity=settings.auth_throttle_table_size,
    )


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
        # The version negotiated by the handshake, for select_subprotocol and the session.
        self._negotiated: weakref.WeakKeyDictionary[ServerConnection, OcppVersion] = (
            weakref.WeakKeyDictionary()
        )
        self.accepted_versions = settings.accepted_ocpp_versions
        install_frame_redaction()  # frames logged at DEBUG carry no secrets
        self.throttle = auth_throttle(settings)
        self._trusted_proxies = parse_networks(settings.trusted_proxies)
        self.monotonic = time.monotonic  # the throttle's clock (tests replace it)
        # ("refused", reason) and ("throttled", scope) -> attempts; kind -> security events.
        self.auth_counts: Counter[tuple[str, str]] = Counter()
        self.security_event_counts: Counter[str] = Counter()

    @property
    def port(self) -> int:
        assert self._server is not None
        sockets = list(self._server.sockets)
        return int(sockets[0].getsockname()[1])

    @property
    def listening(self) -> bool:
        """The websocket listener is open (readiness: /ready)."""
        return self._server is not None and any(True for _ in self._server.sockets)

    @property
    def tls(self) -> bool:
        return self.settings.tls_enabled

    async def start(self) -> None:
        self._server = await serve(
            self._handle,
            self.settings.ocpp_host,
            self.settings.ocpp_port,
            subprotocols=list(SUBPROTOCOLS),  # type: ignore[arg-type]
            select_subprotocol=self._select_subprotocol,
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
            logger=_QuietHandshakeLog(logging.getLogger("websockets.server")),
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
        if self._closing:  # replaced connections still in their closing handshake
            await asyncio.wait(list(self._closing), timeout=self.settings.ping_timeout_s + 1)

    def station_id_of(self, path: str) -> str | None:
        path = urlsplit(path).path
        if not path.startswith(self._prefix):
            return None
        station_id = unquote(path[len(self._prefix) :])
        if not station_id or "/" in station_id or len(station_id) > 48:
            return None
        return station_id

    def _select_subprotocol(
        self, connection: ServerConnection, offered: Sequence[Subprotocol]
    ) -> Subprotocol | None:
        """The version chosen in process_request, once the station is known."""
        version = self._negotiated.get(connection)
        return Subprotocol(version.value) if version is not None else None

    @staticmethod
    def _no_common_version(
        connection: ServerConnection, accepted: Sequence[OcppVersion]
    ) -> Response:
        speaks = ", ".join(v.value for v in accepted)
        return connection.respond(
            HTTPStatus.BAD_REQUEST, f"no common subprotocol: this CSMS speaks {speaks}\n"
        )

    async def _process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        # Before anything is read: a station that offers no version this platform speaks at
        # all cannot be served whatever its own list says.
        if negotiate(_offered_subprotocols(request), SUBPROTOCOLS) is None:
            return self._no_common_version(connection, self.accepted_versions)
        station_id = self.station_id_of(request.path)
        if station_id is None:
            return connection.respond(HTTPStatus.NOT_FOUND, "expected /<path>/<stationId>\n")
        remote = connection.remote_address
        host = client_host(
            str(remote[0]) if remote else None,
            request.headers.get_all("X-Forwarded-For"),
            self._trusted_proxies,
        )
        address = address_key(host)
        verdict = self.throttle.check(station_id, address, self.monotonic())
        if verdict.retry_after_s > 0:
            return self._throttled(connection, station_id, host, verdict)
        self.throttle.begin(station_id, address)
        try:
            refused = await self._admit(connection, request, station_id, host, address)
            if refused is not None:
                return refused
            return self._negotiate(connection, request)
        except Exception as exc:
            # E.g. the database is down: one line per attempt, not websockets' traceback.
            log.warning(
                "station login not checked: station=%r address=%s: %s", station_id, host, exc
            )
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "try again later\n")
        finally:
            self.throttle.end(station_id, address)

    async def _admit(
        self,
        connection: ServerConnection,
        request: Request,
        station_id: str,
        host: str | None,
        address: str,
    ) -> Response | None:
        admission = await self.services.stations.admission(station_id)
        if admission is None:
            await self._failed(station_id, host, address, "unknown_station", known=False)
            if self.settings.unknown_station_status == 401:
                return self._unauthorized(connection, "bad credentials")
            return connection.respond(HTTPStatus.NOT_FOUND, "unknown station\n")
        station, stored_password = admission
        profile = station.security_profile
        tls = connection.transport.get_extra_info("ssl_object") is not None
        if profile is not SecurityProfile.BASIC_AUTH and not tls:
            self._refused(station_id, host, "needs_tls")  # a misconfiguration, not a guess
            return self._unauthorized(connection, f"security profile {int(profile)} needs wss://")
        if profile is SecurityProfile.TLS_CLIENT_CERT:
            if _client_common_name(connection) != station_id:
                await self._failed(station_id, host, address, "bad_certificate", known=True)
                return self._unauthorized(connection, "client certificate missing or not for it")
            self._admitted[connection] = station
            self.throttle.record_success(station_id, address, self.monotonic())
            return None
        credentials = _basic_credentials(request)
        if credentials is None:
            # Nothing guessed (e.g. a client waiting for the challenge): not counted.
            self._refused(station_id, host, "no_credentials")
            return self._unauthorized(connection, "bad credentials")
        if (
            credentials[0] != station_id
            or stored_password is None
            or not await self.services.stations.verify_password(
                station_id, credentials[1], stored_password
            )
        ):
            await self._failed(station_id, host, address, "bad_password", known=True)
            return self._unauthorized(connection, "bad credentials")
        self.throttle.record_success(station_id, address, self.monotonic())
        # _handle uses this read instead of reading the station again.
        self._admitted[connection] = station
        return None

    def _negotiate(self, connection: ServerConnection, request: Request) -> Response | None:
        """The admitted station's version: the first of its accepted versions it offers."""
        station = self._admitted[connection]
        accepted = station.ocpp_versions or self.accepted_versions
        version = negotiate(_offered_subprotocols(request), accepted)
        if version is None:
            self._admitted.pop(connection, None)
            self.auth_counts[("refused", "no_common_version")] += 1
            log.info(
                "station login refused: station=%r reason=no_common_version offered=%r",
                station.id,
                _offered_subprotocols(request)[:8],
            )
            return self._no_common_version(connection, accepted)
        self._negotiated[connection] = version
        return None

    def _refused(
        self,
        station_id: str,
        host: str | None,
        reason: str,
        extra: str = "",
        level: int = logging.INFO,
    ) -> None:
        self.auth_counts[("refused", reason)] += 1
        # The id comes from the URL: %r keeps control characters out of the log.
        log.log(
            level,
            "station login refused: station=%r address=%s reason=%s%s",
            station_id,
            host,
            reason,
            extra,
        )

    async def _failed(
        self, station_id: str, host: str | None, address: str, reason: str, *, known: bool
    ) -> None:
        """A checked attempt failed: count it; the failure that starts a burst also stores
        one security event (and says so in the attempt's one log line)."""
        now = self.monotonic()
        bursts = self.throttle.record_failure(station_id if known else None, address, now)
        if not bursts:
            self._refused(station_id, host, reason)
            return
        retry = max(
            self.throttle.stations.retry_after(station_id, now),
            self.throttle.addresses.retry_after(address, now),
        )
        scopes = ",".join(scope.value for scope in bursts)
        self._refused(
            station_id,
            host,
            reason,
            f"; throttling per {scopes} for {retry:.0f} s and more",
            logging.WARNING,  # a burst starts: worth an operator's attention
        )
        for scope in bursts:
            await self._security_event(station_id, host, scope, reason, retry)

    async def _security_event(
        self, station_id: str, host: str | None, scope: Scope, reason: str, retry_s: float
    ) -> None:
        now = self.services.clock()
        failures = (
            self.throttle.stations.failures(station_id, self.monotonic())
            if scope is Scope.STATION
            else self.throttle.addresses.failures(address_key(host), self.monotonic())
        )
        event = EventRecord(
            station_id=station_id,
            kind=SECURITY_EVENT_KIND,
            payload={
                "type": "AuthenticationThrottled",
                "scope": scope.value,
                "address": host,
                "reason": reason,
                "failures": failures,
                "retryAfterSeconds": math.ceil(retry_s),
                "techInfo": f"{failures} failed logins per {scope.value}; further attempts "
                "are refused with 429 until the back-off clears",
            },
            received_at=now,
            timestamp=now,
        )
        self.security_event_counts["AuthenticationThrottled"] += 1
        try:
            await self.services.station_messages.record_event(event)
        except Exception:  # the throttle holds without the record
            log.warning("could not store the security event of %r", station_id, exc_info=True)

    def _throttled(
        self, connection: ServerConnection, station_id: str, host: str | None, verdict: Verdict
    ) -> Response:
        scope = verdict.scope.value if verdict.scope else "?"
        self.auth_counts[("throttled", scope)] += 1
        # DEBUG: these cost the CSMS nothing and come at the attacker's rate.
        log.debug(
            "station login throttled: station=%r address=%s scope=%s retry_after=%.1f",
            station_id,
            host,
            scope,
            verdict.retry_after_s,
        )
        response = connection.respond(
            HTTPStatus.TOO_MANY_REQUESTS, "too many failed logins: retry later\n"
        )
        response.headers["Retry-After"] = str(max(1, math.ceil(verdict.retry_after_s)))
        return response

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
        version = self._negotiated.pop(connection, None)
        if station is None or version is None:  # cannot happen: process_request set both
            await connection.close(1011, "station unavailable")
            return
        try:
            await self.services.stations.record_ocpp_version(station, version)
        except Exception:  # the connection is served all the same; the API shows the old one
            log.warning("could not store the OCPP version of %r", station_id, exc_info=True)
        session = Session(
            station_id,
            connection,
            self.services,
            self._handlers,
            registration=station.registration_status,
            version=version,
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
        log.info("%s connected (OCPP %s)", station_id, version.label)
        envelopes = getattr(self.services, "envelopes", None)
        if station.registration_status is RegistrationStatus.ACCEPTED and envelopes is not None:
            # Reconnected without booting: its site's envelope again (issue 18).
            session.spawn(envelopes.station_connected(station_id))
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
