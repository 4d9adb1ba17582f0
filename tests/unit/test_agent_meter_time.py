"""Meter values from EvseStatus, OCPP timestamps, reconnect back-off."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest

from chargepoint_firmware.blocks.transactions.meter import DEFAULT_MEASURANDS, meter_value
from chargepoint_firmware.interfaces import EvseStatus, SessionState
from chargepoint_firmware.ocpp_edge.connection import backoff_delay
from chargepoint_firmware.ocpp_edge.timefmt import iso_ms, parse_iso


def test_timestamps_utc_with_milliseconds() -> None:
    moment = datetime(2026, 3, 1, 22, 0, 0, 123456, tzinfo=timezone(timedelta(hours=10)))
    assert iso_ms(moment) == "2026-03-01T12:00:00.123Z"
    assert parse_iso("2026-03-01T12:00:00.123Z") == datetime(2026, 3, 1, 12, 0, 0, 123000, UTC)
    assert parse_iso("2026-03-01T12:00:00") == datetime(2026, 3, 1, 12, tzinfo=UTC)
    with pytest.raises(ValueError):
        iso_ms(datetime(2026, 1, 1))


def test_discharge_is_export_and_import_measurands_are_zero() -> None:
    status = EvseStatus(
        1,
        SessionState.DISCHARGING,
        plugged=True,
        voltage_v=370.0,
        current_a=-10.0,
        power_w=-3700.0,
        soc_pct=64.5,
        energy_import_wh=100.0,
        energy_export_wh=2500.0,
    )
    mv = meter_value(
        status, DEFAULT_MEASURANDS, "Sample.Periodic", datetime(2026, 1, 1, tzinfo=UTC)
    )
    assert mv is not None
    values = {sv["measurand"]: sv["value"] for sv in mv["sampled_value"]}
    assert values == {
        "Energy.Active.Import.Register": 100.0,
        "Energy.Active.Export.Register": 2500.0,
        "Power.Active.Import": 0.0,
        "Power.Active.Export": 3700.0,
        "Current.Import": 0.0,
        "Current.Export": 10.0,
        "Voltage": 370.0,
        "SoC": 64.5,
    }
    units = {sv["measurand"]: sv["unit_of_measure"]["unit"] for sv in mv["sampled_value"]}
    assert units["SoC"] == "Percent" and units["Energy.Active.Export.Register"] == "Wh"
    assert {sv["context"] for sv in mv["sampled_value"]} == {"Sample.Periodic"}


def test_unknown_soc_is_left_out() -> None:
    status = EvseStatus(1, SessionState.IDLE, plugged=False)
    mv = meter_value(status, ["SoC"], "Trigger", datetime(2026, 1, 1, tzinfo=UTC))
    assert mv is None


def test_backoff_grows_exponentially_with_jitter_and_caps() -> None:
    rng = random.Random(1)
    delays = [backoff_delay(n, 1.0, 60.0, rng) for n in range(12)]
    for n, delay in enumerate(delays):
        ceiling = min(60.0, 2.0**n)
        assert ceiling / 2 <= delay <= ceiling
    assert len({round(d, 6) for d in delays}) == len(delays)  # jitter
    assert max(delays) <= 60.0
