"""Vehicle model: efficiencies, reserves, available V2G energy, backup time."""

from __future__ import annotations

import math
from datetime import datetime

import pytest

from csms.v2g.vehicle import (
    Chemistry,
    Vehicle,
    VehicleSession,
    available_v2g_energy_kwh,
    backup_hours,
    throughput_degradation_c_kwh,
)


def test_round_trip_efficiency_splits_evenly() -> None:
    v = Vehicle("ev", 40, 7, 7, round_trip_efficiency=0.81)
    assert v.charge_efficiency == pytest.approx(0.9)
    assert v.charge_efficiency * v.discharge_efficiency == pytest.approx(0.81)


def test_available_energy_above_reserve_and_departure_need() -> None:
    v = Vehicle("ev", 40, 7, 7)  # reserve 20 %
    assert available_v2g_energy_kwh(v, 0.7) == pytest.approx(40 * 0.5)
    assert available_v2g_energy_kwh(v, 0.1) == 0.0
    # Target 80 % with no time to recharge: only what is above 80 %.
    assert available_v2g_energy_kwh(v, 0.9, target_soc=0.8) == pytest.approx(4.0)
    # Two hours left at 7 kW x sqrt(0.9) can put back 31.9 % of 40 kWh.
    back = 7 * math.sqrt(0.9) * 2 / 40
    assert available_v2g_energy_kwh(v, 0.9, 0.8, hours_to_departure=2) == pytest.approx(
        40 * (0.9 - (0.8 - back))
    )
    backup = Vehicle("ev", 40, 7, 7, backup_reserve_soc=0.4)
    assert available_v2g_energy_kwh(backup, 0.7) == pytest.approx(40 * 0.3)


def test_backup_time_is_energy_above_backup_reserve_over_load() -> None:
    v = Vehicle("ev", 40, 7, 7, backup_reserve_soc=0.3, round_trip_efficiency=0.81)
    assert backup_hours(v, 0.8, house_load_kw=1.0) == pytest.approx(40 * 0.5 * 0.9)
    assert backup_hours(v, 0.2, 1.0) == 0.0
    assert math.isinf(backup_hours(v, 0.8, 0.0))
    assert backup_hours(v, 0.8, 9.0) == 0.0  # more than the car can supply


def test_chemistry_parse_and_wear_cost() -> None:
    assert Chemistry.parse("ncm") is Chemistry.NMC
    assert throughput_degradation_c_kwh(Chemistry.LFP) == pytest.approx(100 * 200 / 12000)
    assert Vehicle("a", 40, 7, 7, degradation_c_kwh=1.0).wear_c_kwh == 1.0


def test_validation() -> None:
    with pytest.raises(ValueError, match="capacity"):
        Vehicle("ev", 0, 7, 7)
    with pytest.raises(ValueError, match="round_trip"):
        Vehicle("ev", 40, 7, 7, round_trip_efficiency=1.2)
    with pytest.raises(ValueError, match="timezone"):
        VehicleSession(Vehicle("ev", 40, 7, 7), 0.5, datetime(2024, 1, 1), 0.8)
    with pytest.raises(ValueError, match="soc"):
        VehicleSession(Vehicle("ev", 40, 7, 7), 1.5, datetime(2024, 1, 1).astimezone(), 0.8)
