"""The household meter fed from Home Assistant over MQTT (issue 18): what a payload on
`<prefix>/sites/<node>/set/grid_power` means, and what is refused (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from csms.domain.site_meter import MeterReadingError
from csms.integrations.home_assistant_sites import (
    MAX_METER_PAYLOAD,
    parse_meter_command,
    site_meter_topic,
)

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def test_the_topic_home_assistant_publishes_to() -> None:
    assert site_meter_topic("home.1") == "openv2g/sites/site_home_1/set/grid_power"


def test_a_plain_number_is_the_net_import_now() -> None:
    found = parse_meter_command("home.1", b" -2350.5 ", NOW)
    assert (found.grid_import_w, found.measured_at, found.source) == (-2350.5, NOW, "mqtt")


def test_a_json_object_with_load_solar_and_timestamp() -> None:
    at = NOW - timedelta(seconds=4)
    body = b'{"load_w": 900, "solar_w": 3100, "timestamp": "' + at.isoformat().encode() + b'"}'
    found = parse_meter_command("home.1", body, NOW)
    assert (found.grid_import_w, found.load_w, found.solar_w) == (-2200.0, 900.0, 3100.0)
    assert found.measured_at == at


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"unavailable", "not a number"),  # Home Assistant's state of a sensor that is down
        (b"NaN", "finite"),
        (b"1e400", "finite"),
        (b"true", "boolean"),
        (b"[1, 2]", "JSON object"),
        (b'{"grid_import_w": "12"}', "number of W"),
        (b'{"grid_import_w": 1, "watts": 2}', "unknown fields"),
        (b'{"load_w": 5}', "both load_w and solar_w"),
        (b'{"grid_import_w": 1e9}', "W, got"),
        (b'{"grid_import_w": 1, "timestamp": "noon"}', "timestamp"),
        (b'{"grid_import_w": 1, "timestamp": "2026-12-07T09:00:00"}', "timezone"),
        (b'{"grid_import_w": 1, "timestamp": "2026-12-07T10:00:00+00:00"}', "future"),
        (b"1" * (MAX_METER_PAYLOAD + 1), "at most"),
    ],
)
def test_refused_payloads(payload: bytes, message: str) -> None:
    with pytest.raises(MeterReadingError, match=message):
        parse_meter_command("home.1", payload, NOW)
