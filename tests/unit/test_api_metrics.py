"""/metrics content collected at scrape time, and the telemetry's bounded labels."""

from __future__ import annotations

from prometheus_client import generate_latest

from csms.api.metrics import CsmsMetrics
from csms.services.telemetry import Telemetry, V2gFleetFigures, action_label, error_label


def test_connected_stations_gauge_by_ocpp_version_follows_the_source() -> None:
    connected = {"2.0.1": 3}
    metrics = CsmsMetrics(lambda: connected)
    text = generate_latest(metrics.registry).decode()
    assert 'csms_connected_stations{ocpp_version="2.0.1"} 3.0' in text
    assert 'csms_connected_stations{ocpp_version="2.1"} 0.0' in text  # every version shown
    connected["2.1"] = 2
    text = generate_latest(metrics.registry).decode()
    assert 'csms_connected_stations{ocpp_version="2.1"} 2.0' in text


def test_api_commands_by_action_and_outcome() -> None:
    metrics = CsmsMetrics(dict)
    metrics.command_counts[("Reset", "ok")] += 2
    metrics.command_counts[("Reset", "CommandTimeout")] += 1
    text = generate_latest(metrics.registry).decode()
    assert 'csms_api_commands_total{action="Reset",outcome="ok"} 2.0' in text
    assert 'csms_api_commands_total{action="Reset",outcome="CommandTimeout"} 1.0' in text


def test_labels_are_bounded_station_text_never_becomes_a_label() -> None:
    assert action_label("Heartbeat") == "Heartbeat"
    assert action_label("Heartbeat-from-CS1") == "unknown"
    assert action_label(None) == "unknown"
    assert error_label("FormatViolation") == "FormatViolation"
    assert error_label("MyVendorError") == "other"
    telemetry = Telemetry(process_metrics=False)
    for n in range(500):  # a station inventing action names
        telemetry.station_call(f"Invented{n}", error_label(f"Code{n}"), 0.001)
    text = generate_latest(telemetry.registry).decode()
    assert 'csms_ocpp_messages_total{action="unknown",direction="in",result="other"} 500.0' in text
    assert "Invented" not in text and "Code1" not in text


def test_telemetry_histograms_and_v2g_gauges() -> None:
    telemetry = Telemetry(process_metrics=False)
    metrics = CsmsMetrics(dict, telemetry=telemetry)  # one registry for both
    telemetry.commit(0.002, 5)
    telemetry.api_command_done("SetChargingProfile", "ok", 0.04)
    telemetry.v2g_fleet(V2gFleetFigures(3, 2, 3, 7.4, 5.0, 120.5, 33.25))
    text = generate_latest(metrics.registry).decode()
    assert 'csms_db_commit_seconds_bucket{le="0.0025"} 1.0' in text
    assert "csms_db_committed_writes_total 5.0" in text
    assert (
        'csms_api_command_seconds_bucket{action="SetChargingProfile",le="0.05",outcome="ok"} 1.0'
        in text
    )
    assert 'csms_v2g_vehicles{state="plugged_in"} 2.0' in text
    assert 'csms_v2g_power_kw{direction="charge"} 7.4' in text
    assert 'csms_v2g_power_kw{direction="discharge"} 5.0' in text
    assert 'csms_v2g_energy_kwh{direction="export"} 33.25' in text
    assert "csms_connected_stations" in text
    assert "process_cpu_seconds_total" not in text  # process_metrics=False


def test_process_metrics_are_exported() -> None:
    text = generate_latest(Telemetry().registry).decode()
    for name in ("process_cpu_seconds_total", "process_resident_memory_bytes", "python_info"):
        assert name in text
