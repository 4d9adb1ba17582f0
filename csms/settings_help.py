"""One line of help per CSMS setting: `csms serve --help` shows it beside each flag.

Kept beside csms/settings.py (whose comments say the why at length) so the settings file stays
readable; a field may instead carry `Field(description=...)`, which wins.
tests/integration/test_cli_csms.py checks that every setting has one or the other.
"""

from __future__ import annotations

SETTING_HELP: dict[str, str] = {
    "database_url": "database: sqlite+aiosqlite:///path/file.db or "
    "postgresql+asyncpg://user:password@host:5432/db",
    "ocpp_host": "address the OCPP websocket server listens on",
    "ocpp_port": "port of the OCPP websocket server (0: any free port)",
    "ocpp_path": "URL path before the station id: ws://host:port/<path>/<stationId>",
    "tls_cert_file": "server certificate (PEM, RSA or ECDSA) for wss:// (profiles 2 and 3)",
    "tls_key_file": "private key of --tls-cert-file (PEM, unencrypted)",
    "tls_client_ca_file": "CA certificates that sign station client certificates (profile 3)",
    "tls_rsa_cert_file": "RSA server certificate, beside an ECDSA one (A00.FR.318)",
    "tls_rsa_key_file": "private key of --tls-rsa-cert-file",
    "tls_ecdsa_cert_file": "ECDSA server certificate, beside an RSA one (A00.FR.318)",
    "tls_ecdsa_key_file": "private key of --tls-ecdsa-cert-file",
    "tls_min_version": "lowest TLS version accepted: 1.2 or 1.3",
    "csr_ca_cert_file": "CA certificate that signs station CSRs (SignCertificate)",
    "csr_ca_key_file": "private key of --csr-ca-cert-file",
    "api_host": "address the REST API listens on",
    "api_port": "port of the REST API (0: any free port)",
    "heartbeat_interval_s": "heartbeat interval sent to stations in BootNotification, seconds",
    "boot_retry_interval_s": "retry interval sent with a Pending/Rejected boot, seconds",
    "ping_interval_s": "websocket ping interval that detects dead connections, seconds",
    "ping_timeout_s": "seconds without a pong before a connection is closed",
    "command_timeout_s": "seconds an API command waits for the station's answer",
    "ocpp_versions": "OCPP versions accepted, in preference order (comma-separated, e.g. "
    "ocpp2.1,ocpp2.0.1); a station's own list replaces it for that station",
    "validate_messages": "check OCPP messages against the OCA JSON schemas",
    "negative_limit_is_discharge": "a negative charging-profile limit means discharge (2.0.1)",
    "ocpp_max_frame_bytes": "largest websocket frame accepted, bytes (larger closes with 1009)",
    "ocpp_max_json_depth": "deepest JSON nesting of a frame accepted",
    "ocpp_rate_per_s": "frames per second per station (token bucket; 0: no limit)",
    "ocpp_rate_burst": "burst of the per-station frame rate",
    "station_event_max_bytes": "largest free-form event a station may store, bytes",
    "station_storage_quota_bytes": "bytes of events a station may store per period (0: no quota)",
    "station_storage_quota_period_s": "period of the station storage quota, seconds",
    "station_max_evse_id": "highest EVSE id a station may report",
    "station_max_connector_id": "highest connector id a station may report",
    "report_max_open": "multi-part NotifyReports held open per connection",
    "report_max_parts": "parts per NotifyReport",
    "report_part_timeout_s": "seconds allowed between two parts of a NotifyReport",
    "broker_url": "broker for several CSMS nodes: nats://host:4222 or redis://host:6379/0 "
    "(none: one node)",
    "node_id": "this node's name among several (default host:pid)",
    "v2g_replan_interval_s": "re-plan V2G sessions every this many seconds (0: off)",
    "v2g_plan_max_age_s": "a V2G plan older than this is re-planned, seconds",
    "v2g_soc_tolerance": "a plan off the vehicle's SoC by more than this (0-1) is re-planned",
    "v2g_retail_margin_c_kwh": "NEM price uploads: retail margin added to RRP/10, c/kWh",
    "v2g_gst_rate": "NEM price uploads: GST rate on import (0.10 = 10 %%)",
    "v2g_export_offset_c_kwh": "NEM price uploads: added to RRP/10 for the export price, c/kWh",
    "v2g_grid_service_aud_per_kwh": "payment for delivered grid-service energy, AUD/kWh",
    "v2g_default_dwell_h": "hours a vehicle stays when no departure is known",
    "v2g_default_target_soc": "SoC (0-1) at departure when none is given",
    "v2g_house_load_kw": "house load assumed for the backup-duration estimate, kW",
    "v2g_frequency_rule_hold_s": "under-frequency rule: seconds below the threshold first",
    "v2g_frequency_rule_threshold_hz": "under-frequency rule: threshold, Hz",
    "v2g_frequency_discharge_kw": "under-frequency rule: discharge per vehicle, kW",
    "v2g_frequency_duration_s": "under-frequency rule: how long to discharge, seconds",
    "v2g_frequency_min_soc": "under-frequency rule: only vehicles above this SoC (0-1)",
    "v2g_max_horizon_h": "longest planning horizon, hours (departures further are refused)",
    "csip_enabled": "run the CSIP-AUS aggregator client for the csip-enabled sites",
    "csip_server_url": "CSIP-AUS server's DeviceCapability URL, e.g. https://dnsp.example/dcap",
    "csip_cert_file": "the aggregator's client certificate (PEM) for the CSIP-AUS server",
    "csip_key_file": "private key of --csip-cert-file (PEM, unencrypted)",
    "csip_ca_file": "CA bundle the CSIP-AUS server's certificate is checked against",
    "csip_cert_header_mode": "send the certificate in the ssl-client-cert header, no TLS "
    "(loopback test servers only)",
    "csip_pen": "the aggregator's IANA Private Enterprise Number (ends derived site LFDIs)",
    "csip_poll_min_s": "shortest poll interval, whatever the server's pollRate, seconds",
    "csip_poll_max_s": "longest poll interval, whatever the server's pollRate, seconds",
    "csip_retry_s": "seconds before a failed CSIP-AUS exchange is retried",
    "csip_tick_s": "seconds between the CSIP-AUS poller's rounds over its sites",
    "csip_lease_s": "seconds a node holds a site's CSIP-AUS polling lease",
    "csip_timeout_s": "timeout of one CSIP-AUS request, seconds",
    "csip_max_response_bytes": "largest CSIP-AUS answer read, bytes",
    "csip_comm_loss_timeout_s": "controls end this long after the last successful poll "
    "(none: followed as scheduled)",
    "csip_notify_base_url": "this CSMS's API URL as the CSIP-AUS server reaches it, for "
    "subscription notifications (none: poll only)",
    "station_rated_charge_w": "a station's charge rating when its device model reported none, W",
    "station_rated_discharge_w": "a station's discharge rating when it reported none, W",
    "site_meter_max_age_s": "a site's household meter reading older than this is stale (the "
    "chargers-alone rule, tightened only), s",
    "site_meter_hysteresis_w": "the site base must move this much before the stations get a "
    "new envelope profile; also the margin the bounds keep, W",
    "site_meter_min_resend_s": "at most one meter-driven re-send per site per this many s",
    "site_meter_check_s": "seconds between checks of the sites' meters (0: only on readings)",
    "site_meter_charger_sample_max_age_s": "a station's meter value counts this long for the "
    "site base, s",
    "mqtt_url": "Home Assistant over MQTT: mqtt://user:password@host:1883 (none: no bridge)",
    "mqtt_topic_prefix": "MQTT topic prefix of the CSMS's state and commands",
    "mqtt_discovery_prefix": "Home Assistant's MQTT discovery prefix",
    "mqtt_state_interval_s": "seconds between MQTT state publications",
    "log_level": "log level: DEBUG, INFO, WARNING or ERROR",
    "password_key_file": "key file of the fast station-password check (default: beside the "
    "SQLite file, or ./csms.password-key); several nodes share one",
    "log_ocpp_frames": "log every OCPP frame at DEBUG (costs throughput)",
    "auth_free_failures_per_station": "failed logins per station id before back-off",
    "auth_free_failures_per_address": "failed logins per source address (IPv6 /64) before back-off",
    "auth_backoff_base_s": "first login back-off after the free failures, seconds (doubles)",
    "auth_backoff_max_s": "longest login back-off, seconds",
    "auth_throttle_forget_s": "seconds without a failure after which a key starts over",
    "auth_throttle_table_size": "keys kept per login-throttle table",
    "unknown_station_status": "HTTP status for an unknown station id: 404 (OCPP-J) or 401 "
    "(no id enumeration)",
    "trusted_proxies": "reverse proxies (addresses or networks, comma-separated) whose "
    "X-Forwarded-For is believed",
    "v2g_ev_needs_default_power_kw": (
        "ISO 15118 charging needs: max power (kW) assumed when the EV gives none"
    ),
    "v2g_ev_needs_interval_s": (
        "ISO 15118 charging needs: interval (s) of the default flat-tariff plan when no "
        "prices are stored"
    ),
    "v2g_ev_needs_plan_timeout_s": (
        "ISO 15118 charging needs: time bound (s) of the plan; then one period at max power"
    ),
    "v2g_ev_needs_answer_budget_s": (
        "ISO 15118 charging needs: how long the answer waits for the plan (ready: "
        "Accepted, else Processing)"
    ),
    "v2g_ev_schedule_time_tolerance_s": (
        "NotifyEVChargingSchedule: seconds an EV may follow a limit change early or late"
    ),
    "v2g_ev_schedule_limit_tolerance": (
        "NotifyEVChargingSchedule: fraction by which an EV may exceed a limit"
    ),
    "v2g_ev_schedule_max_renegotiations": (
        "NotifyEVChargingSchedule: new profiles sent per transaction after a Rejected "
        "schedule, at most"
    ),
    "pnc_ocsp_responder_hosts": (
        "Plug & Charge: OCSP responder hosts the CSMS may ask (comma-separated, * = any; "
        "empty = OCSP off)"
    ),
    "pnc_ocsp_timeout_s": ("Plug & Charge: time bound (s) of one OCSP request"),
    "pnc_ocsp_max_response_bytes": ("Plug & Charge: largest OCSP response read (bytes)"),
    "pnc_ocsp_cache_max_s": (
        "Plug & Charge: OCSP answers cached until their nextUpdate, at most this long (s)"
    ),
    "pnc_ocsp_cache_entries": ("Plug & Charge: OCSP answers kept in the cache, at most"),
    "pnc_trust_anchors_file": (
        "Plug & Charge: PEM bundle of the V2G / Mobility Operator roots and sub-CAs "
        "trusted for contract chains"
    ),
    "pnc_certificate_provider_url": (
        "Plug & Charge: HTTP(S) URL of the certificate provider for Get15118EVCertificate"
        " (none = Failed)"
    ),
    "pnc_certificate_provider_timeout_s": (
        "Plug & Charge: time bound (s) of one certificate-provider request"
    ),
    "log_format": ("log format: text (one line per record) or json (one JSON object per line)"),
    "message_log_incoming": (
        "also log the messages stations send, and the answers, in /stations/{id}/messages"
        " (costs CPU per message)"
    ),
    "message_log_retention_days": ("message-log entries older than this many days are pruned"),
    "message_log_max_rows_per_station": (
        "message-log rows kept per station, newest first (0 = no limit)"
    ),
    "metrics_v2g_refresh_s": (
        "/metrics: how often (s) the V2G fleet gauges are read from the database (0 = off)"
    ),
}
