"""Prometheus metrics on /metrics: what `csms.services.telemetry.Telemetry` records (OCPP messages,
latency histograms, V2G gauges, process metrics) plus what is read at scrape time here: connected
stations by OCPP version, commands sent through the REST API, refused station logins.

No series has a station id label (see telemetry's module doc)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Protocol

from fastapi import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from csms.services.telemetry import Telemetry
from v2g_shared.ocpp_versions import OcppVersion


class AuthCounters(Protocol):
    """The OCPP server's station-login counters (csms.ocpp_server.server.OcppServer)."""

    @property
    def auth_counts(self) -> Mapping[tuple[str, str], int]: ...
    @property
    def security_event_counts(self) -> Mapping[str, int]: ...


class CsmsMetrics(Collector):
    """Collects at scrape time: nothing is counted twice and no global registry is used."""

    def __init__(
        self,
        connected_stations: Callable[[], Mapping[str, int]],
        auth: AuthCounters | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        """`connected_stations()`: OCPP version label ("2.0.1", "2.1") -> open connections."""
        self._connected_stations = connected_stations
        self._auth = auth
        self.telemetry = telemetry
        # (action, outcome) -> commands the REST API sent; set by create_api.
        self.command_counts: Counter[tuple[str, str]] = Counter()
        self.registry = telemetry.registry if telemetry is not None else CollectorRegistry()
        self.registry.register(self)

    def describe(self) -> Iterable[Metric]:
        return ()  # collected at scrape time; nothing to check at registration

    def collect(self) -> Iterable[Metric]:
        gauge = GaugeMetricFamily(
            "csms_connected_stations",
            "Stations with an open OCPP connection on this node, by OCPP version",
            labels=["ocpp_version"],
        )
        by_version = {version.label: 0 for version in OcppVersion}
        by_version.update(self._connected_stations())
        for version, count in sorted(by_version.items()):
            gauge.add_metric([version], float(count))
        yield gauge
        commands = CounterMetricFamily(
            "csms_api_commands",
            "Commands sent through the REST API, by OCPP action and outcome",
            labels=["action", "outcome"],
        )
        for (action, outcome), count in sorted(self.command_counts.items()):
            commands.add_metric([action, outcome], float(count))
        yield commands
        if self._auth is not None:
            logins = CounterMetricFamily(
                "csms_station_logins_refused",
                "Refused station logins: outcome 'refused' by reason (bad_password, "
                "bad_certificate, unknown_station, no_credentials, needs_tls) or 'throttled' "
                "by scope (station, address)",
                labels=["outcome", "reason"],
            )
            for (outcome, reason), count in sorted(self._auth.auth_counts.items()):
                logins.add_metric([outcome, reason], float(count))
            yield logins
            events = CounterMetricFamily(
                "csms_security_events",
                "Security events the CSMS recorded (one per burst of failed logins)",
                labels=["type"],
            )
            for kind, count in sorted(self._auth.security_event_counts.items()):
                events.add_metric([kind], float(count))
            yield events


def metrics_route(metrics: CsmsMetrics | None) -> Callable[[], Awaitable[Response]]:
    async def serve_metrics() -> Response:
        if metrics is None:
            return Response("# no metrics configured\n", media_type=CONTENT_TYPE_LATEST)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return serve_metrics
