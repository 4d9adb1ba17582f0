"""Prometheus metrics on /metrics: connected stations; commands sent through the REST API by
action and outcome; and OCPP message counters when the OCPP server exposes them (an object with
`messages_in`/`messages_out` mappings action -> count)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Protocol

from fastapi import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


class MessageCounters(Protocol):
    @property
    def messages_in(self) -> Mapping[str, int]: ...
    @property
    def messages_out(self) -> Mapping[str, int]: ...


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
        connected_stations: Callable[[], int],
        counters: MessageCounters | None = None,
        auth: AuthCounters | None = None,
    ) -> None:
        self._connected_stations = connected_stations
        self._counters = counters
        self._auth = auth
        # (action, outcome) -> commands the REST API sent; set by create_api.
        self.command_counts: Counter[tuple[str, str]] = Counter()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def collect(self) -> Iterable[Metric]:
        gauge = GaugeMetricFamily(
            "csms_connected_stations", "Stations with an open OCPP connection on this node"
        )
        gauge.add_metric([], float(self._connected_stations()))
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
        if self._counters is None:
            return
        messages = CounterMetricFamily(
            "csms_ocpp_messages",
            "OCPP CALLs by direction and action",
            labels=["direction", "action"],
        )
        for direction, counts in (
            ("in", self._counters.messages_in),
            ("out", self._counters.messages_out),
        ):
            for action, count in sorted(counts.items()):
                messages.add_metric([direction, action], float(count))
        yield messages


def metrics_route(metrics: CsmsMetrics | None) -> Callable[[], Awaitable[Response]]:
    async def serve_metrics() -> Response:
        if metrics is None:
            return Response("# no metrics configured\n", media_type=CONTENT_TYPE_LATEST)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return serve_metrics
