"""The agent's local V2X glue (chargepoint_firmware.blocks.smart_charging.v2x_local):
frequency-watt response on the measured grid frequency, and the emergency-backup DataTransfer."""

from __future__ import annotations

import asyncio
import json

import pytest

from chargepoint_firmware.blocks.smart_charging.v2x_local import (
    BACKUP_MESSAGE_ID,
    BACKUP_VENDOR_ID,
    LocalV2x,
    frequency_adjusted,
    parse_curve,
)
from chargepoint_firmware.interfaces import EvseSetpoint, EvseStatus, SessionState
from chargepoint_firmware.station.config import ConfigView

# The agent's default V2XCtrlr.FreqWattCurve.
CURVE_TEXT = "[[49.0, -7000], [49.85, 0], [50.15, 0], [51.0, 7000]]"
CURVE = parse_curve(CURVE_TEXT)


class Variables:
    """A device model stand-in: (component, variable) -> value."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str], str] = {}

    def value(self, component: str, variable: str) -> str | None:
        return self.values.get((component, variable))


def status(hz: float | None, grid: bool = True, volts: float = 380.0) -> EvseStatus:
    return EvseStatus(
        1,
        SessionState.CHARGING,
        plugged=True,
        voltage_v=volts,
        grid_present=grid,
        grid_frequency_hz=hz,
    )


def adjusted(limit: float | None, hz: float | None, **kw: object) -> float | None:
    assert CURVE is not None
    unit = str(kw.pop("unit", "W"))
    allowed = bool(kw.pop("discharge_allowed", True))
    grid = bool(kw.pop("grid", True))
    setpoint = EvseSetpoint(1, limit, unit)  # type: ignore[arg-type]
    return frequency_adjusted(setpoint, CURVE, status(hz, grid), 400.0, allowed).limit


def test_curve_reads_the_device_model_json() -> None:
    assert CURVE is not None
    assert CURVE.points[0] == (49.0, -7000.0)
    assert parse_curve("not json") is None
    assert parse_curve("[[50, 0]]") is None  # fewer than two points
    assert parse_curve("[[51, 0], [50, 1]]") is None  # Hz must increase


def test_inside_the_normal_band_the_schedule_rules() -> None:
    assert adjusted(3000.0, 50.0) == 3000.0
    assert adjusted(None, 49.9) is None
    assert adjusted(3000.0, None) == 3000.0  # no measurement


def test_under_frequency_discharges_at_least_the_curve_power() -> None:
    expected = -7000.0 * (49.85 - 49.5) / (49.85 - 49.0)
    assert adjusted(3000.0, 49.5) == pytest.approx(expected)
    assert adjusted(None, 49.5) == pytest.approx(expected)
    assert adjusted(-6000.0, 49.5) == -6000.0  # the schedule already gives more
    assert adjusted(3000.0, 48.0) == -7000.0  # flat beyond the curve's end


def test_over_frequency_charges_at_least_the_curve_power() -> None:
    expected = 7000.0 * (50.6 - 50.15) / (51.0 - 50.15)
    assert adjusted(-3000.0, 50.6) == pytest.approx(expected)
    assert adjusted(7000.0, 50.6) == 7000.0
    assert adjusted(None, 50.6) == pytest.approx(expected)


def test_amps_schedule_gets_the_response_in_amps() -> None:
    got = adjusted(10.0, 49.0, unit="A")
    assert got == pytest.approx(-7000.0 / 380.0)


def test_no_grid_or_no_discharge_convention_means_no_export() -> None:
    assert adjusted(3000.0, 49.5, grid=False) == 3000.0
    assert adjusted(3000.0, 49.5, discharge_allowed=False) == 3000.0


async def test_local_v2x_follows_freq_watt_enabled_and_rewakes() -> None:
    variables = Variables()
    variables.values[("V2XCtrlr", "FreqWattCurve")] = CURVE_TEXT
    variables.values[("V2XCtrlr", "FreqWattEnabled")] = "false"
    config = ConfigView(variables)
    woken = asyncio.Event()
    local = LocalV2x(config, wake=woken.set, poll_s=0.01)
    setpoint = EvseSetpoint(1, 3000.0, "W")
    assert local.adjust(setpoint, status(49.5), 400.0) == setpoint
    variables.values[("V2XCtrlr", "FreqWattEnabled")] = "true"
    out = local.adjust(setpoint, status(49.5), 400.0)
    assert out.limit is not None and out.limit < 0
    assert out.source == "freq_watt"
    await asyncio.wait_for(woken.wait(), 1.0)  # frequency moves on its own: look again
    local.close()


def test_emergency_backup_data_transfer_holds_the_battery() -> None:
    variables = Variables()
    variables.values[("V2XCtrlr", "FreqWattCurve")] = CURVE_TEXT
    variables.values[("V2XCtrlr", "FreqWattEnabled")] = "true"
    local = LocalV2x(ConfigView(variables))
    assert local.data_transfer("other", BACKUP_MESSAGE_ID, "{}")[0] == "UnknownVendorId"
    assert local.data_transfer(BACKUP_VENDOR_ID, "Other", "{}")[0] == "UnknownMessageId"
    assert local.data_transfer(BACKUP_VENDOR_ID, BACKUP_MESSAGE_ID, "{")[0] == "Rejected"
    assert (
        local.data_transfer(BACKUP_VENDOR_ID, BACKUP_MESSAGE_ID, '{"enabled": "yes"}')[0]
        == "Rejected"
    )
    status_, info = local.data_transfer(
        BACKUP_VENDOR_ID, BACKUP_MESSAGE_ID, json.dumps({"enabled": True})
    )
    assert (status_, info) == ("Accepted", None)
    held = local.adjust(EvseSetpoint(1, -5000.0, "W"), status(49.0), 400.0)
    assert held.limit == 0.0
    charge = local.adjust(EvseSetpoint(1, 2000.0, "W"), status(49.0), 400.0)
    assert charge.limit == 2000.0  # no frequency discharge either, charging stays
    local.data_transfer(BACKUP_VENDOR_ID, BACKUP_MESSAGE_ID, {"enabled": False})
    assert local.adjust(EvseSetpoint(1, -5000.0, "W"), status(50.0), 400.0).limit == -5000.0
