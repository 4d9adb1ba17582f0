"""Fleet flexibility, bids and dispatch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from csms.v2g.fleet import (
    Flexibility,
    aggregate,
    dispatch,
    make_bid,
    vehicle_flexibility,
    water_fill,
)
from csms.v2g.vehicle import Vehicle, VehicleSession

NOW = datetime(2024, 8, 5, 8, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def session(
    soc: float, departure_h: float = 10.0, target: float = 0.5, **kw: float
) -> VehicleSession:
    vehicle = Vehicle(
        "ev",
        capacity_kwh=kw.get("cap", 40.0),
        max_charge_kw=7.0,
        max_discharge_kw=kw.get("max_d", 7.0),
    )
    return VehicleSession(vehicle, soc, NOW + departure_h * HOUR, target)


def test_flexibility_is_limited_by_power_energy_and_reserve() -> None:
    # 40 kWh at 80 %, reserve 20 %, target 50 % rechargeable in 9 h: floor = 20 %.
    flex = vehicle_flexibility(session(0.8), NOW, HOUR)
    eta = 0.9**0.5
    assert flex.down_kwh == pytest.approx(40 * 0.6 * eta)
    assert flex.down_kw == pytest.approx(7.0)
    assert flex.up_kwh == pytest.approx(40 * 0.2 / eta)
    assert flex.up_kw == pytest.approx(7.0)
    # Near the reserve the energy, not the inverter, limits a 1-hour response.
    low = vehicle_flexibility(session(0.25), NOW, HOUR)
    assert low.down_kw == pytest.approx(40 * 0.05 * eta)


def test_flexibility_keeps_what_departure_needs() -> None:
    # Leaves in 1.5 h needing 80 %: after a 1 h response only 0.5 h of charging remains.
    flex = vehicle_flexibility(session(0.8, departure_h=1.5, target=0.8), NOW, HOUR)
    recharge = 7 * 0.9**0.5 * 0.5 / 40
    assert flex.down_kwh == pytest.approx(40 * recharge * 0.9**0.5)
    # Leaving before the response ends: no power offered.
    gone = vehicle_flexibility(session(0.8, departure_h=0.5), NOW, HOUR)
    assert gone.down_kw == gone.up_kw == 0.0


def test_bid_needs_ten_kw() -> None:
    one = aggregate([vehicle_flexibility(session(0.8), NOW, HOUR)])
    assert make_bid(one, "raise", response_time_s=6) is None
    two = aggregate([vehicle_flexibility(session(0.8), NOW, HOUR)] * 2)
    bid = make_bid(two, "raise", response_time_s=6)
    assert bid is not None
    assert bid.capacity_kw == pytest.approx(14.0)
    assert bid.energy_kwh == pytest.approx(14.0)
    assert bid.vehicles == 2 and bid.response_time_s == 6


def flex(vid: str, up: float, down: float) -> Flexibility:
    return Flexibility(vid, up, down, 0.0, 0.0, HOUR, NOW + HOUR)


def test_dispatch_redistributes_what_a_vehicle_near_reserve_cannot_take() -> None:
    fleet = [flex("a", 7, 7), flex("b", 7, 1), flex("c", 7, 7)]
    allocation = dispatch(-12.0, fleet, method="water_filling")
    assert allocation.per_vehicle_kw == pytest.approx({"a": -5.5, "b": -1.0, "c": -5.5})
    assert allocation.delivered_kw == pytest.approx(-12.0)
    assert allocation.shortfall_kw == pytest.approx(0.0)


def test_dispatch_reports_shortfall_when_fleet_is_too_small() -> None:
    allocation = dispatch(-20.0, [flex("a", 7, 7), flex("b", 7, 1)])
    assert allocation.delivered_kw == pytest.approx(-8.0)
    assert allocation.shortfall_kw == pytest.approx(12.0)
    charge = dispatch(10.0, [flex("a", 3, 7), flex("b", 7, 1)])
    assert charge.per_vehicle_kw == pytest.approx({"a": 3.0, "b": 7.0})


def test_weighted_water_fill() -> None:
    caps = np.array([10.0, 10.0, 1.0])
    weights = np.array([1.0, 3.0, 1.0])
    out = water_fill(9.0, caps, weights)
    # level L: min(10, L) + min(10, 3L) + min(1, L) = 9 -> L = 2: 2 + 6 + 1
    assert out == pytest.approx([2.0, 6.0, 1.0])


def test_dispatch_ten_thousand_vehicles_sums_to_target() -> None:
    rng = np.random.default_rng(1)
    fleet = [
        flex(f"v{i}", float(u), float(d))
        for i, (u, d) in enumerate(rng.uniform(0, 7, size=(10_000, 2)))
    ]
    total_down = sum(f.down_kw for f in fleet)
    allocation = dispatch(-0.6 * total_down, fleet)
    assert allocation.delivered_kw == pytest.approx(-0.6 * total_down)
    for f in fleet[:200]:
        assert -f.down_kw - 1e-9 <= allocation.per_vehicle_kw[f.vehicle_id] <= 0.0
