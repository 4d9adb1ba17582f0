"""/metrics content: connected stations and OCPP message counters, collected at scrape time."""

from __future__ import annotations

from prometheus_client import generate_latest

from csms.api.metrics import CsmsMetrics


class Counters:
    def __init__(self) -> None:
        self.messages_in: dict[str, int] = {}
        self.messages_out: dict[str, int] = {}


def test_connected_stations_gauge_follows_the_source() -> None:
    connected = [3]
    metrics = CsmsMetrics(lambda: connected[0])
    assert b"csms_connected_stations 3.0" in generate_latest(metrics.registry)
    connected[0] = 5
    text = generate_latest(metrics.registry).decode()
    assert "csms_connected_stations 5.0" in text
    assert "csms_ocpp_messages" not in text  # no counters exposed by the server


def test_message_counters_by_direction_and_action() -> None:
    counters = Counters()
    metrics = CsmsMetrics(lambda: 1, counters)
    counters.messages_in["Heartbeat"] = 7
    counters.messages_out["SetChargingProfile"] = 2
    text = generate_latest(metrics.registry).decode()
    assert 'csms_ocpp_messages_total{action="Heartbeat",direction="in"} 7.0' in text
    assert 'csms_ocpp_messages_total{action="SetChargingProfile",direction="out"} 2.0' in text


def test_api_commands_by_action_and_outcome() -> None:
    metrics = CsmsMetrics(lambda: 0)
    metrics.command_counts[("Reset", "ok")] += 2
    metrics.command_counts[("Reset", "CommandTimeout")] += 1
    text = generate_latest(metrics.registry).decode()
    assert 'csms_api_commands_total{action="Reset",outcome="ok"} 2.0' in text
    assert 'csms_api_commands_total{action="Reset",outcome="CommandTimeout"} 1.0' in text
