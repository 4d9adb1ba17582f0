"""What the CSMS measures about itself, for Prometheus (`/metrics`).

One `Telemetry` per CSMS (on the services container), each with its own registry: two CSMSes
in one process (tests) never share a series. The OCPP edge, the group-commit writer and the API
record into it; the API's collector adds what is read at scrape time (connected stations, logins).

Label cardinality is bounded on purpose: no station id is ever a label (a 10,000-station fleet
would make 10,000 series per metric). `action` is an OCPP action name from the OCA action table
or "unknown" (a station's free text never becomes a label); `result` is "ok", an OCPP-J error
code (a fixed set) or "other", "timeout", "disconnected" or "failed"; `direction` is "in"
(station-initiated) or "out" (CSMS-initiated). Per-station detail is in
`/api/v1/stations/{id}/messages` instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from csms import oca_schemas
from v2g_shared.ocpp_j import CALLERROR_CODES
from v2g_shared.ocpp_versions import OcppVersion

# OCPP handling: parse -> validate -> handler (its database commit included) -> reply sent.
# The mix benchmark's p50/p99 are 1.4-13 ms: buckets from 0.5 ms to 5 s.
HANDLING_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
COMMIT_BUCKETS_S = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1)
# A command waits for the station's answer (up to command_timeout_s, at most 300 s).
COMMAND_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

_KNOWN_ERRORS = CALLERROR_CODES
# Every action of every OCPP version the CSMS speaks (a fixed set).
_KNOWN_ACTIONS = frozenset().union(*(oca_schemas.table(v).all_actions for v in OcppVersion))


def action_label(action: str | None) -> str:
    """An OCPP action name the CSMS knows, or "unknown": never the station's free text."""
    return action if action in _KNOWN_ACTIONS else "unknown"


def error_label(code: str) -> str:
    """An OCPP-J error code (a fixed set), or "other"."""
    return code if code in _KNOWN_ERRORS else "other"


@dataclass(frozen=True)
class V2gFleetFigures:
    """Fleet totals for the V2G gauges (no per-vehicle series)."""

    vehicles: int  # registered
    plugged_in: int  # linked to a station with an active transaction
    measured: int  # linked to a station and read (at most GAUGE_MAX_VEHICLES)
    charge_kw: float  # sum of the latest Power.Active.Import of the vehicles' EVSEs
    discharge_kw: float  # sum of the latest Power.Active.Export
    imported_kwh: float  # sum of the latest Energy.Active.Import.Register
    exported_kwh: float  # sum of the latest Energy.Active.Export.Register


class Telemetry:
    """Counters and histograms in a registry of their own; process metrics included."""

    def __init__(self, *, process_metrics: bool = True) -> None:
        # No `<name>_created` sample beside each counter and histogram (prometheus-client's
        # default doubles the series; Prometheus does not need them). Process-wide.
        disable_created_metrics()
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.ocpp_messages = Counter(
            "csms_ocpp_messages",
            "OCPP CALLs by direction (in: station-initiated, out: CSMS-initiated), action and "
            "result (ok, an OCPP-J error code, timeout, disconnected)",
            ["direction", "action", "result"],
            registry=r,
        )
        self.ocpp_handling = Histogram(
            "csms_ocpp_handling_seconds",
            "Station-initiated CALL: frame parsed to answer sent (validation, handler and its "
            "database commit included), by action",
            ["action"],
            buckets=HANDLING_BUCKETS_S,
            registry=r,
        )
        self.db_commit = Histogram(
            "csms_db_commit_seconds",
            "One group commit of the database writer (a batch of writes, one transaction)",
            buckets=COMMIT_BUCKETS_S,
            registry=r,
        )
        self.db_commit_ops = Counter(
            "csms_db_committed_writes", "Writes committed by the group-commit writer", registry=r
        )
        self.api_command = Histogram(
            "csms_api_command_seconds",
            "Command sent through the REST API: request to the station's answer, by action and "
            "outcome (ok or the error class)",
            ["action", "outcome"],
            buckets=COMMAND_BUCKETS_S,
            registry=r,
        )
        self.message_log_dropped = Counter(
            "csms_message_log_dropped",
            "Message-log entries dropped because the write buffer was full",
            registry=r,
        )
        self.v2g_vehicles = Gauge(
            "csms_v2g_vehicles",
            "V2G vehicles: registered; measured (linked to a station, read for these gauges); "
            "plugged in (an active transaction at their EVSE)",
            ["state"],
            registry=r,
        )
        self.v2g_power = Gauge(
            "csms_v2g_power_kw",
            "V2G fleet power now (kW): sum over the vehicles' EVSEs of the latest "
            "Power.Active.Import (charge) and Power.Active.Export (discharge) meter values",
            ["direction"],
            registry=r,
        )
        self.v2g_energy = Gauge(
            "csms_v2g_energy_kwh",
            "Sum over the vehicles' EVSEs of the latest Energy.Active.Import.Register "
            "(import) and Energy.Active.Export.Register (export) meter values (kWh)",
            ["direction"],
            registry=r,
        )
        self._station_children: dict[tuple[str, str], tuple[Any, Any]] = {}
        if process_metrics:
            # CPU seconds, resident memory, open file descriptors, start time (Linux /proc),
            # Python version and garbage-collector counts.
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)
            GCCollector(registry=r)

    # ---- recording (cheap: one dict lookup and an add under a lock) -------------------------

    def station_call(self, action: str, result: str, seconds: float) -> None:
        """Per station message: two dict lookups, an add and an observe (the label children
        are cached: prometheus-client's `labels()` costs a lock and a few us per call)."""
        name = action_label(action)
        key = (name, result)
        children = self._station_children.get(key)
        if children is None:  # bounded: actions x results, both from fixed sets
            children = (
                self.ocpp_messages.labels("in", name, result),
                self.ocpp_handling.labels(name),
            )
            self._station_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def csms_call(self, action: str, result: str) -> None:
        self.ocpp_messages.labels("out", action_label(action), result).inc()

    def commit(self, seconds: float, writes: int) -> None:
        self.db_commit.observe(seconds)
        self.db_commit_ops.inc(writes)

    def api_command_done(self, action: str, outcome: str, seconds: float) -> None:
        self.api_command.labels(action_label(action), outcome).observe(seconds)

    def v2g_fleet(self, figures: V2gFleetFigures) -> None:
        self.v2g_vehicles.labels("registered").set(figures.vehicles)
        self.v2g_vehicles.labels("plugged_in").set(figures.plugged_in)
        self.v2g_vehicles.labels("measured").set(figures.measured)
        self.v2g_power.labels("charge").set(figures.charge_kw)
        self.v2g_power.labels("discharge").set(figures.discharge_kw)
        self.v2g_energy.labels("import").set(figures.imported_kwh)
        self.v2g_energy.labels("export").set(figures.exported_kwh)


def series_names(telemetry: Telemetry) -> Iterable[str]:
    """Every metric family name in the registry (for tests and the README)."""
    for metric in telemetry.registry.collect():
        yield metric.name
