"""OCPP 2.1 on the agent, pure parts: DER controls (R) and the CHAdeMO car's charging needs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chargepoint_firmware.blocks.smart_charging.der import DerControls, control_from_request
from chargepoint_firmware.blocks.smart_charging.ev_needs import charging_needs
from chargepoint_firmware.interfaces import EvseStatus, SessionState, VehicleLimits
from v2g_shared.freq_watt import freq_watt

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


class MemoryStorage:
    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def put(self, key: str, value: Any) -> None:
        self.values[key] = value


def limit(control_id: str, pct: float, *, default: bool = False, **extra: Any) -> dict[str, Any]:
    return {
        "isDefault": default,
        "controlId": control_id,
        "controlType": "LimitMaxDischarge",
        "limitMaxDischarge": {"priority": 1, "pctMaxDischargePower": pct, **extra},
    }


def test_r_unsupported_control_types_answer_not_supported() -> None:
    assert control_from_request({"controlType": "FixedPFAbsorb", "isDefault": False}) == (
        "NotSupported"
    )
    bad_curve = {
        "isDefault": False,
        "controlId": "c",
        "controlType": "VoltWatt",
        "curve": {"priority": 1, "yUnit": "PctMaxW", "curveData": [{"x": 1, "y": 1}]},
    }
    assert control_from_request(bad_curve) == "Rejected"
    assert control_from_request(limit("x", 150)) == "Rejected"


def test_r_controls_persist_and_the_non_default_wins() -> None:
    storage = MemoryStorage()
    der = DerControls(storage)
    assert der.set(limit("base", 50, default=True)) == "Accepted"
    assert der.set(limit("now", 20)) == "Accepted"
    assert der.discharge_cap(NOW, 10000, None) == 2000
    again = DerControls(storage)  # read back from storage
    assert again.discharge_cap(NOW, 10000, None) == 2000
    assert again.clear(False, None, "now") == "Accepted"
    assert again.discharge_cap(NOW, 10000, None) == 5000
    assert again.clear(False, None, "now") == "NotFound"


def test_r_timed_control_applies_only_in_its_window() -> None:
    der = DerControls(MemoryStorage())
    start = (NOW + timedelta(minutes=10)).isoformat()
    der.set(limit("later", 10, startTime=start, duration=600))
    assert der.discharge_cap(NOW, 10000, None) is None
    assert der.discharge_cap(NOW + timedelta(minutes=15), 10000, None) == 1000
    assert der.discharge_cap(NOW + timedelta(minutes=25), 10000, None) is None


def test_r_volt_watt_caps_discharge_only_with_a_measured_voltage() -> None:
    der = DerControls(MemoryStorage())
    curve = {
        "isDefault": False,
        "controlId": "vw",
        "controlType": "VoltWatt",
        "curve": {
            "priority": 1,
            "yUnit": "PctMaxW",
            "curveData": [{"x": 106, "y": 100}, {"x": 110, "y": 20}],
        },
    }
    assert der.set(curve) == "Accepted"
    assert der.discharge_cap(NOW, 10000, None) is None
    assert der.discharge_cap(NOW, 10000, 100) == 10000
    assert der.discharge_cap(NOW, 10000, 108) == 6000


def test_r_freq_watt_curve_scales_percent_of_max_power() -> None:
    der = DerControls(MemoryStorage())
    der.set(
        {
            "isDefault": True,
            "controlId": "fw",
            "controlType": "FreqWatt",
            "curve": {
                "priority": 1,
                "yUnit": "PctMaxW",
                "curveData": [{"x": 49.0, "y": -100}, {"x": 49.8, "y": 0}, {"x": 51, "y": 50}],
            },
        }
    )
    curve = der.freq_watt_curve(NOW, 7000, 5000)
    assert curve is not None
    assert freq_watt(curve, 49.0) == -5000
    assert freq_watt(curve, 51.0) == 3500


def test_r_the_store_is_bounded() -> None:
    der = DerControls(MemoryStorage())
    answers = [der.set(limit(f"c{i}", 10)) for i in range(40)]
    assert answers.count("Accepted") == 24 and answers[-1] == "Rejected"


def status(vehicle: VehicleLimits, soc: float | None = 61.6) -> EvseStatus:
    return EvseStatus(1, SessionState.CHARGING, True, voltage_v=380, soc_pct=soc, vehicle=vehicle)


def test_q_charging_needs_carry_the_cars_discharge_capability() -> None:
    car = VehicleLimits(
        max_charge_current_a=120,
        max_discharge_current_a=30,
        max_voltage_v=410,
        min_discharge_voltage_v=300,
        discharge_compatible=True,
        battery_capacity_kwh=40,
    )
    needs = charging_needs(status(car))
    assert needs is not None
    assert needs["requestedEnergyTransfer"] == "DC_BPT"
    assert needs["dcChargingParameters"] == {
        "evMaxCurrent": 120,
        "evMaxVoltage": 410,
        "evEnergyCapacity": 40000,
        "stateOfCharge": 62,
    }
    assert needs["v2xChargingParameters"]["maxDischargePower"] == 30 * 380
    assert needs["v2xChargingParameters"]["minVoltage"] == 300


def test_q_charging_needs_wait_for_the_cars_limits_and_omit_v2x_without_discharge() -> None:
    assert charging_needs(status(VehicleLimits())) is None
    needs = charging_needs(status(VehicleLimits(max_charge_current_a=50, max_voltage_v=400)))
    assert needs is not None and needs["requestedEnergyTransfer"] == "DC"
    assert "v2xChargingParameters" not in needs


def test_r_peer_chosen_durations_are_bounded() -> None:
    der = DerControls(MemoryStorage())
    der.set(limit("huge", 10, startTime=NOW.isoformat(), duration=1e300))
    der.set(limit("nan", 20, startTime=NOW.isoformat(), duration=-5))
    assert der.discharge_cap(NOW + timedelta(days=365), 10000, None) == 1000


def test_r_ac_voltage_reading_bounded_before_the_volt_watt_curve_sees_it() -> None:
    from chargepoint_firmware.hardware.ports import ac_voltage_pct

    assert ac_voltage_pct(253.0, 230.0) == pytest.approx(110.0)
    assert ac_voltage_pct(None, 230.0) is None  # not measured: no volt-watt cap
    for bad in (float("nan"), float("inf"), -230.0, 0.0, 49.0, 401.0, 1e9):
        assert ac_voltage_pct(bad, 230.0) is None
