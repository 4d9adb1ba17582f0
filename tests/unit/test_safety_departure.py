"""departure_floor_pct: the SoC below which discharge would miss the departure target."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chargepoint_firmware.safety import SafetyConfig, SafetyInputs, discharge_soc_floor
from chargepoint_firmware.safety.departure import departure_floor_pct

NOW = datetime(2026, 11, 26, 18, 0, tzinfo=UTC)

targets = st.floats(min_value=0.0, max_value=100.0)
capacities = st.floats(min_value=5.0, max_value=200.0)
powers = st.floats(min_value=0.0, max_value=350_000.0)
efficiencies = st.floats(min_value=0.5, max_value=1.0)
remaining = st.floats(min_value=0.0, max_value=48 * 3600.0)


def test_leaf_one_hour_before_departure() -> None:
    # 24 kWh Leaf, 80 % wanted in 1 h, 7 kW at 90 %: 6.3 kWh = 26.25 % can still be charged.
    floor = departure_floor_pct(NOW, NOW + timedelta(hours=1), 80.0, 24.0, 7_000.0, 0.9)
    assert floor == pytest.approx(53.75)


def test_far_departure_gives_no_floor_above_zero() -> None:
    floor = departure_floor_pct(NOW, NOW + timedelta(hours=12), 90.0, 24.0, 7_000.0, 0.9)
    assert floor == 0.0


def test_at_departure_the_floor_is_the_target() -> None:
    assert departure_floor_pct(NOW, NOW, 70.0, 40.0, 7_000.0, 0.9) == pytest.approx(70.0)


def test_zero_charge_power_keeps_the_floor_at_the_target() -> None:
    assert departure_floor_pct(NOW, NOW + timedelta(hours=3), 60.0, 40.0, 0.0, 0.9) == 60.0


@pytest.mark.parametrize(
    ("departure", "target"),
    [(None, 80.0), (NOW + timedelta(hours=1), None), (None, None)],
)
def test_no_floor_without_departure_or_target(
    departure: datetime | None, target: float | None
) -> None:
    assert departure_floor_pct(NOW, departure, target, 24.0, 7_000.0, 0.9) is None


def test_no_floor_once_the_departure_has_passed() -> None:
    past = NOW - timedelta(seconds=1)
    assert departure_floor_pct(NOW, past, 80.0, 24.0, 7_000.0, 0.9) is None


def test_time_zones_are_respected() -> None:
    # 19:00 at UTC+1 is 18:00 UTC: the departure is now, not an hour away.
    plus_one = datetime.fromisoformat("2026-11-26T19:00:00+01:00")
    assert departure_floor_pct(NOW, plus_one, 70.0, 40.0, 7_000.0, 0.9) == pytest.approx(70.0)


@pytest.mark.parametrize(
    ("capacity", "power", "efficiency", "target"),
    [
        (0.0, 7_000.0, 0.9, 80.0),
        (-1.0, 7_000.0, 0.9, 80.0),
        (math.nan, 7_000.0, 0.9, 80.0),
        (24.0, -1.0, 0.9, 80.0),
        (24.0, math.inf, 0.9, 80.0),
        (24.0, 7_000.0, 0.0, 80.0),
        (24.0, 7_000.0, 1.5, 80.0),
        (24.0, 7_000.0, 0.9, 101.0),
        (24.0, 7_000.0, 0.9, -1.0),
        (24.0, 7_000.0, 0.9, math.nan),
    ],
)
def test_bad_inputs_are_rejected(
    capacity: float, power: float, efficiency: float, target: float
) -> None:
    with pytest.raises(ValueError):
        departure_floor_pct(NOW, NOW + timedelta(hours=1), target, capacity, power, efficiency)


def test_the_floor_raises_the_supervisors_discharge_floor() -> None:
    config = SafetyConfig(
        max_charge_current_a=15,
        max_discharge_current_a=15,
        max_charge_power_w=7_000,
        max_discharge_power_w=7_000,
        min_voltage_v=150,
        max_voltage_v=500,
        driving_reserve_soc_pct=20,
    )
    floor = departure_floor_pct(NOW, NOW + timedelta(hours=1), 80.0, 24.0, 7_000.0, 0.9)
    inputs = SafetyInputs(
        now=0.0,
        requested_current_a=-10.0,
        measured_voltage_v=380.0,
        measured_current_a=0.0,
        soc_pct=60.0,
        vehicle_last_frame_at=0.0,
        vehicle_charge_request_a=0.0,
        vehicle_max_discharge_current_a=15.0,
        vehicle_min_discharge_voltage_v=250.0,
        vehicle_max_voltage_v=435.0,
        vehicle_discharge_compatible=True,
        vehicle_min_soc_for_discharge_pct=20.0,
        vehicle_max_soc_for_charge_pct=95.0,
        vehicle_faults=frozenset(),
        departure_soc_floor_pct=floor,
        grid_present=True,
        islanded=False,
        csms_connected=True,
        csms_last_seen=0.0,
        emergency_stop=False,
        insulation_fault=False,
    )
    assert discharge_soc_floor(config, inputs) == pytest.approx(53.75)


@given(targets, capacities, powers, efficiencies, remaining, remaining)
def test_floor_is_monotone_in_remaining_time(
    target: float, capacity: float, power: float, efficiency: float, a_s: float, b_s: float
) -> None:
    shorter, longer = sorted((a_s, b_s))
    near = departure_floor_pct(
        NOW, NOW + timedelta(seconds=shorter), target, capacity, power, efficiency
    )
    far = departure_floor_pct(
        NOW, NOW + timedelta(seconds=longer), target, capacity, power, efficiency
    )
    assert near is not None and far is not None
    assert far <= near


@given(targets, capacities, powers, efficiencies, remaining)
def test_floor_is_never_above_the_target_nor_below_zero(
    target: float, capacity: float, power: float, efficiency: float, seconds: float
) -> None:
    floor = departure_floor_pct(
        NOW, NOW + timedelta(seconds=seconds), target, capacity, power, efficiency
    )
    assert floor is not None
    assert 0.0 <= floor <= target


@given(targets, capacities, powers, efficiencies, remaining)
def test_charging_at_full_power_from_the_floor_reaches_the_target(
    target: float, capacity: float, power: float, efficiency: float, seconds: float
) -> None:
    departure = NOW + timedelta(seconds=seconds)
    floor = departure_floor_pct(NOW, departure, target, capacity, power, efficiency)
    assert floor is not None
    # Simulate the charge in steps (the battery stops gaining at 100 %).
    soc, steps = floor, 100
    step_s = (departure - NOW).total_seconds() / steps
    for _ in range(steps):
        soc = min(100.0, soc + 100.0 * power * efficiency * step_s / 3600.0 / (capacity * 1000.0))
    assert soc >= target - 1e-6


@given(targets, capacities, powers, efficiencies, remaining)
def test_starting_any_lower_than_the_floor_misses_a_reachable_target(
    target: float, capacity: float, power: float, efficiency: float, seconds: float
) -> None:
    # The floor is the lowest such SoC: from 1 % below it (when it is above 1 %) the target
    # is missed, so the floor is not needlessly high.
    departure = NOW + timedelta(seconds=seconds)
    floor = departure_floor_pct(NOW, departure, target, capacity, power, efficiency)
    assert floor is not None
    if floor >= 1.0:
        gained = 100.0 * power * efficiency * seconds / 3600.0 / (capacity * 1000.0)
        assert floor - 1.0 + gained < target
