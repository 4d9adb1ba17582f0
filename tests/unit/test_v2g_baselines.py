"""The baselines themselves: plain charging and the seed's threshold rules."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from csms.v2g.baselines import ThresholdRules, plain_charging, threshold_rules
from csms.v2g.prices import AEST, PriceSeries
from csms.v2g.vehicle import Vehicle, VehicleSession

START = datetime(2024, 3, 1, 0, 0, tzinfo=AEST)
HOUR = timedelta(hours=1)
EV = Vehicle("ev", 40, 8, 8, round_trip_efficiency=1.0)  # lossless: easy numbers


def hourly(imports: list[float], exports: list[float] | None = None) -> PriceSeries:
    return PriceSeries(START, HOUR, tuple(imports), tuple(exports or imports))


def test_plain_charging_charges_at_full_power_until_the_target() -> None:
    prices = hourly([30.0] * 10)
    session = VehicleSession(EV, 0.5, START + 10 * HOUR, 0.9)
    s = plain_charging(session, prices, START)
    assert s.power_kw[:2] == (8.0, 8.0)
    assert s.power_kw[2] == pytest.approx(0.0)  # 16 kWh = 40 % in two hours
    assert s.soc_at_departure == pytest.approx(0.9)
    assert s.energy_cost_c == pytest.approx(16 * 30.0)
    assert s.wear_cost_c == pytest.approx(16 * EV.wear_c_kwh)


def test_threshold_rules_charge_cheap_and_discharge_in_the_evening() -> None:
    prices = [20.0] * 24
    prices[2] = prices[3] = 5.0  # cheap night
    prices[17] = prices[18] = 60.0  # evening peak
    prices[10] = 60.0  # expensive but outside 16:00-21:00: no discharge
    session = VehicleSession(EV, 0.6, START + 23 * HOUR, 0.2)
    s = threshold_rules(session, hourly(prices), START)
    assert s.power_kw[2] == 8.0
    assert s.power_kw[3] == pytest.approx(4.0)  # stops at 90 %
    assert s.power_kw[10] == 0.0
    assert s.power_kw[17] == -8.0
    assert s.power_kw[18] == pytest.approx(-4.0)  # stops at 60 %
    assert s.soc_after[18] == pytest.approx(0.6)
    assert all(p == 0.0 for k, p in enumerate(s.power_kw) if k not in (2, 3, 17, 18))


def test_threshold_rules_departure_guard_meets_the_target() -> None:
    # Never cheap: the rules alone would not charge; the guard charges just in time.
    session = VehicleSession(EV, 0.5, START + 6 * HOUR, 0.9)
    s = threshold_rules(session, hourly([30.0] * 6), START)
    assert s.soc_at_departure == pytest.approx(0.9)
    assert s.power_kw[:3] == (0.0, 0.0, 0.0)
    assert s.power_kw[3] == pytest.approx(0.0)
    assert s.power_kw[4:] == (8.0, 8.0)


def test_threshold_rules_are_configurable() -> None:
    rules = ThresholdRules(charge_below_c_kwh=25.0, charge_up_to_soc=0.8)
    session = VehicleSession(EV, 0.5, START + 4 * HOUR, 0.5)
    s = threshold_rules(session, hourly([20.0] * 4), START, rules)
    assert s.soc_at_departure == pytest.approx(0.8)
