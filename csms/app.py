"""Composition root: settings -> migrate -> services -> OCPP server + REST API (uvicorn), in one
event loop; graceful shutdown on SIGINT/SIGTERM.

`start(settings)` returns a `RunningCsms` (tests use it directly); `serve(settings)` is what
`csms serve` runs: start, log the addresses, wait for a signal, stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import logging
import socket
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, Protocol, cast

import uvicorn

from csms.api.app import create_api
from csms.api.health import Readiness
from csms.api.metrics import AuthCounters, CsmsMetrics
from csms.integrations.csip.notifications import NotificationStore, notification_router
from csms.integrations.csip.poller import CsipPoller
from csms.integrations.csip.routes import install as install_csip_routes
from csms.integrations.csip.service import build_csip
from csms.integrations.home_assistant import HomeAssistantSettings, start_bridge, stop_bridge
from csms.integrations.home_assistant_sites import SitesPort
from csms.log_format import configure_logging
from csms.persistence.unreachable import naming_the_database_async
from csms.routing.factory import build_router, close_router, start_router
from csms.services.common import Clock, utcnow
from csms.services.container import Services, build_services
from csms.services.health import Check, HealthService
from csms.services.v2g import v2g_service_for
from csms.settings import Settings
from v2g_shared.ocpp_versions import OcppVersion
from v2g_shared.stop_signals import install_stop_signals

log = logging.getLogger("csms")


class OcppServerHandle(Protocol):
    """What the composition root needs of the OCPP server (csms.ocpp_server.server)."""

    @property
    def port(self) -> int: ...

    async def close(self) -> None: ...


class _ApiServer(uvicorn.Server):
    """uvicorn without its own signal handling: the composition root owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class PortUnavailable(OSError):
    """A port of ours cannot be listened on; names the port and the settings that choose it."""

    def __init__(self, what: str, setting: str, host: str, port: int, cause: OSError) -> None:
        reason = {
            errno.EADDRINUSE: "already in use by another program",
            errno.EACCES: "not allowed (ports below 1024 need privileges)",
            errno.EADDRNOTAVAIL: f"no interface of this machine has the address {host}",
        }.get(cause.errno or 0, cause.strerror or str(cause))
        host_setting = setting.replace("_port", "_host")
        super().__init__(
            f"cannot listen on the {what} port {_url_host(host)}:{port}: {reason} (setting "
            f"{setting}: {_flag(setting)} / CSMS_{setting.upper()}; the address is "
            f"{host_setting}: {_flag(host_setting)} / CSMS_{host_setting.upper()})"
        )
        self.errno = cause.errno


def _flag(setting: str) -> str:
    return "--" + setting.replace("_", "-")


@contextlib.contextmanager
def _naming_the_port(what: str, setting: str, host: str, port: int) -> Generator[None, None, None]:
    try:
        yield
    except PortUnavailable:
        raise
    except OSError as error:
        if error.errno in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
            raise PortUnavailable(what, setting, host, port, error) from error
        raise


def _listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says TCP;
    # with proto 0, Nagle + delayed ACK cost ~40 ms per HTTP response.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _connected_by_version(ocpp_server: object) -> dict[str, int]:
    """Open OCPP connections of this node by the version each session negotiated (a session
    that does not say speaks 2.0.1, the version every session spoke before 2.1)."""
    counts: dict[str, int] = {}
    sessions: dict[str, Any] = getattr(ocpp_server, "sessions", {})
    for session in list(sessions.values()):
        version = getattr(session, "version", None)
        label = version.label if isinstance(version, OcppVersion) else OcppVersion.V201.label
        counts[label] = counts.get(label, 0) + 1
    return counts


def _readiness(services: Services, ocpp_server: object) -> Readiness:
    health = HealthService(services.db)

    def ocpp_listener() -> Check:
        up = bool(getattr(ocpp_server, "listening", False))
        return Check(up, "listening" if up else "not listening")

    def router() -> Check:
        up = bool(getattr(services.router, "broker_up", True))  # in-process: always
        kind = "broker" if hasattr(services.router, "broker_up") else "in-process"
        return Check(up, f"{kind} connected" if up else f"{kind} not connected")

    async def readiness() -> dict[str, Check]:
        return await health.readiness({"ocpp_listener": ocpp_listener, "router": router})

    return readiness


async def _refresh_v2g_gauges(services: Services, every_s: float) -> None:
    """The V2G fleet gauges, read from the database at their own pace (not per scrape)."""
    v2g = v2g_service_for(services)
    while True:
        try:
            services.telemetry.v2g_fleet(await v2g.fleet_figures())
        except Exception as exc:  # the database is down: the gauges keep their last values
            log.debug("V2G gauges not refreshed: %s", exc)
        await asyncio.sleep(every_s)


@dataclass
class RunningCsms:
    settings: Settings
    services: Services
    ocpp_server: OcppServerHandle
    api_server: uvicorn.Server
    api_task: asyncio.Task[None]
    api_port: int
    home_assistant: asyncio.Task[None] | None = None  # the MQTT bridge when CSMS_MQTT_URL is set
    gauges: asyncio.Task[None] | None = None  # the V2G gauges' refresher
    csip: CsipPoller | None = None  # the CSIP-AUS aggregator client when csip_enabled

    @property
    def ocpp_port(self) -> int:
        return self.ocpp_server.port

    @property
    def ocpp_url(self) -> str:
        path = f"/{self.settings.ocpp_path}" if self.settings.ocpp_path else ""
        scheme = "wss" if self.settings.tls_enabled else "ws"
        return f"{scheme}://{_url_host(self.settings.ocpp_host)}:{self.ocpp_port}{path}"

    @property
    def api_url(self) -> str:
        return f"http://{_url_host(self.settings.api_host)}:{self.api_port}"

    async def stop(self) -> None:
        """API first (no new commands), then the stations' connections, then the database."""
        self.services.live.end_viewers()  # open dashboard streams would delay the API's exit
        self.api_server.should_exit = True
        if self.gauges is not None:
            self.gauges.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.gauges
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await self.api_task  # re-raises if the API server had crashed: after cleanup
        finally:
            try:
                await self.ocpp_server.close()
            finally:
                try:
                    await close_router(self.services.router)
                finally:
                    try:
                        await stop_bridge(self.home_assistant)
                    finally:
                        try:
                            if self.csip is not None:
                                await self.csip.stop()  # releases its sites' leases
                        finally:
                            await self.services.close()


async def _start_ocpp_server(settings: Settings, services: Services) -> OcppServerHandle:
    from csms.ocpp_server.server import start_ocpp_server

    server: OcppServerHandle = await start_ocpp_server(settings, services)
    return server


async def start(settings: Settings, *, clock: Clock | None = None) -> RunningCsms:
    """`clock`: the CSMS's wall clock (default: real UTC time); `csms demo` passes its
    simulated clock so that plans, prices and economics run on the stations' time."""
    # In-process router by default; NATS or Redis when CSMS_BROKER_URL names one.
    router = build_router(settings)
    services = build_services(settings, router=router, clock=clock or utcnow)
    # CSIP-AUS aggregator client: off unless CSMS_CSIP_ENABLED (and its server and certificate).
    # Built before anything starts: a refused configuration (certificate header off
    # loopback, no key) stops the start here. Envelopes it stores are enforced at once.
    csip = build_csip(
        settings,
        services.db,
        node_id=str(getattr(router, "node_id", settings.node_id or "csms")),
        clock=clock or utcnow,
        connected_ids=services.live.connected_ids_sorted,
        power_w=lambda station_id: (
            live.power_w if (live := services.live.stations.get(station_id)) else None
        ),
        on_envelopes_changed=services.envelopes.envelopes_changed,
        rating_fallback=services.envelopes.rating_fallback,
    )
    async with naming_the_database_async(settings.database_url):
        await services.start(migrate=True)
    try:
        await start_router(router)
    except BaseException:
        await services.close()
        raise
    try:
        with _naming_the_port("OCPP", "ocpp_port", settings.ocpp_host, settings.ocpp_port):
            ocpp_server = await _start_ocpp_server(settings, services)
    except BaseException:
        await close_router(router)
        await services.close()
        raise
    try:
        auth = cast(AuthCounters, ocpp_server) if hasattr(ocpp_server, "auth_counts") else None
        metrics = CsmsMetrics(
            lambda: _connected_by_version(ocpp_server), auth, telemetry=services.telemetry
        )
        api = create_api(services, metrics=metrics, readiness=_readiness(services, ocpp_server))
        install_csip_routes(api, services.db)
        if csip is not None:
            # POST /csip/notify/{token}: outside the API's auth (the token is the credential);
            # any node serves it, the node polling the site finds it in the database.
            api.include_router(
                notification_router(NotificationStore(services.db, clock or utcnow), csip.wake)
            )
        with _naming_the_port("REST API", "api_port", settings.api_host, settings.api_port):
            sock = _listening_socket(settings.api_host, settings.api_port)
        config = uvicorn.Config(
            api,
            log_config=None,
            lifespan="off",
            access_log=False,
            log_level=settings.log_level.lower(),
            # In-flight commands get their full timeout to finish before shutdown cuts them.
            timeout_graceful_shutdown=int(settings.command_timeout_s) + 5,
        )
        api_server = _ApiServer(config)
        api_task = asyncio.create_task(api_server.serve(sockets=[sock]), name="csms-api")
        while not api_server.started:
            if api_task.done():
                api_task.result()  # raises the startup error
                raise RuntimeError("the REST API server stopped during start")
            await asyncio.sleep(0.01)
        api_port = int(sock.getsockname()[1])
    except BaseException:
        await ocpp_server.close()
        await close_router(router)
        await services.close()
        raise
    # Home Assistant over MQTT: off unless CSMS_MQTT_URL is set.
    home_assistant = start_bridge(
        HomeAssistantSettings.from_settings(settings),
        v2g_service_for(services),
        sites=SitesPort(services.sites.all, services.envelopes.view, services.site_meters.record),
        on_envelope_change=services.envelopes.add_listener,
    )
    gauges = None
    if settings.metrics_v2g_refresh_s > 0:
        gauges = asyncio.create_task(
            _refresh_v2g_gauges(services, settings.metrics_v2g_refresh_s), name="csms-v2g-gauges"
        )
    if csip is not None:
        csip.start()
    return RunningCsms(
        settings,
        services,
        ocpp_server,
        api_server,
        api_task,
        api_port,
        home_assistant,
        gauges,
        csip,
    )


def _configure_logging(settings: Settings) -> None:
    configure_logging(settings.log_level, settings.log_format)
    if not settings.log_ocpp_frames:
        # The `ocpp` library logs every frame at INFO.
        logging.getLogger("ocpp").setLevel(logging.WARNING)


# The collector's thresholds for a serving node: a young collection after 20,000 new
# container objects instead of 700 (each message allocates dozens: dicts, lists, samples), and
# fewer older ones. Measured under the tx-meter load (issue 17): about 20 % less CPU per
# message; garbage cycles wait a little longer for collection, RSS unchanged.
SERVING_GC_THRESHOLDS = (20_000, 20, 20)


def tune_garbage_collector() -> None:
    """Once a node has started. What start-up built (modules, schemas, the app) lives as long as
    the process: frozen out of the collector's sight, a full collection no longer walks it
    (measured: 150 ms pauses every few dozen 1,000-item API reads, the reads' p99; issue 17)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*SERVING_GC_THRESHOLDS)


async def serve(settings: Settings, *, stop: asyncio.Event | None = None) -> int:
    """Run until SIGINT/SIGTERM (or `stop` is set); exit status 0 after a clean shutdown."""
    _configure_logging(settings)
    stop = stop or asyncio.Event()
    remove_stop_signals = install_stop_signals(stop)
    try:
        running = await start(settings)
        tune_garbage_collector()
        log.info("OCPP server listening on %s/<stationId>", running.ocpp_url)
        log.info("REST API on %s/api/v1 (docs at %s/docs)", running.api_url, running.api_url)
        try:
            await stop.wait()
            log.info("stopping")
        finally:
            await running.stop()
        log.info("stopped")
    finally:
        remove_stop_signals()
    return 0
