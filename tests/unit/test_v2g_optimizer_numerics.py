"""Regressions for falsifying examples of test_plan_never_breaks_a_power_soc_or_site_limit:
tiny site powers near the solver's tolerance, and the LP charging and discharging at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from csms.v2g.optimizer import PlanInputs, SiteLimits, optimize
from csms.v2g.prices import PriceSeries
from csms.v2g.vehicle import Vehicle, VehicleSession

START = datetime(2024, 8, 5, tzinfo=UTC)
STEP = timedelta(minutes=30)
BACKENDS = ["highspy", "scipy"]


def tiny_base_load_zero_import_limit(base_kw: float) -> PlanInputs:
    """Found by the property test: HiGHS called this feasible model infeasible (base 1e-7)."""
    vehicle = Vehicle(
        "ev0",
        capacity_kwh=48.41387083690266,
        max_charge_kw=12.951010916209412,
        max_discharge_kw=17.494846472790446,
        round_trip_efficiency=0.7197600525580825,
        driving_reserve_soc=0.3035757608232236,
        soc_max=0.958174492084497,
    )
    session = VehicleSession(
        vehicle,
        soc=0.9987565168726059,
        departure=START + timedelta(minutes=24),
        target_soc=0.790878236469853,
        arrival=START + timedelta(minutes=23),
    )
    return PlanInputs(
        START + timedelta(minutes=10),
        PriceSeries(START, STEP, (-1.0, -1.0), (-1.0, -17.565732124667836)),
        (session,),
        SiteLimits(import_limit_kw=0.0, export_limit_kw=0.0),
        (base_kw, -4.4459391489086135),
    )


def full_battery_before_a_negative_price() -> PlanInputs:
    """Found by the property test: export limit 0, a full battery plugged in for one minute
    of a last interval at -24 c/kWh. The LP charged and discharged 0.1 kW at once at 00:00
    to burn room for that minute; the plan sent 0 kW and claimed the SoC fell."""
    vehicle = Vehicle(
        "ev0",
        capacity_kwh=10.0,
        max_charge_kw=1.0,
        max_discharge_kw=1.0,
        round_trip_efficiency=0.75,
        driving_reserve_soc=0.0,
    )
    session = VehicleSession(
        vehicle, soc=1.0, departure=START + timedelta(hours=6, minutes=1), target_soc=0.0
    )
    prices = (0.0,) * 12 + (-24.0,)
    return PlanInputs(
        START,
        PriceSeries(START, STEP, prices, prices),
        (session,),
        SiteLimits(export_limit_kw=0.0),
        (0.0,) * 13,
    )


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("base_kw", [1e-7, 5e-324, 9e-7, -1e-7])
def test_base_load_below_the_solver_tolerance_with_zero_import_limit_is_planned(
    backend: str, base_kw: float
) -> None:
    inputs = tiny_base_load_zero_import_limit(base_kw)
    plan = optimize(inputs, backend)  # type: ignore[arg-type]
    # The vehicle may not charge (nothing to import, the price is negative: no discharge).
    assert plan.vehicles["ev0"].power_kw == (0.0,)
    assert plan.site_net_kw[0] <= max(0.0, base_kw) + 1e-9
    assert plan.site_net_kw[0] >= -1e-9


@pytest.mark.parametrize("backend", BACKENDS)
def test_base_load_just_above_the_negligible_threshold_is_kept(backend: str) -> None:
    plan = optimize(tiny_base_load_zero_import_limit(2e-6), backend)  # type: ignore[arg-type]
    assert plan.site_net_kw[0] == pytest.approx(2e-6, abs=1e-9)


@pytest.mark.parametrize("backend", BACKENDS)
def test_plan_never_charges_and_discharges_at_once_to_burn_energy(backend: str) -> None:
    inputs = full_battery_before_a_negative_price()
    plan = optimize(inputs, backend)  # type: ignore[arg-type]
    vp = plan.vehicles["ev0"]
    vehicle = inputs.sessions[0].vehicle
    # The SoC the plan reports follows from the powers it sends, and stays within soc_max.
    energy = inputs.sessions[0].soc * vehicle.capacity_kwh
    for power, hours, soc in zip(vp.power_kw, vp.hours, vp.soc_after, strict=True):
        if power > 0:
            energy += power * hours * vehicle.charge_efficiency
        else:
            energy += power * hours / vehicle.discharge_efficiency
        assert abs(energy / vehicle.capacity_kwh - soc) <= 1e-7
        assert soc <= vehicle.soc_max + 1e-9
    net = np.asarray(plan.site_net_kw)
    assert net.min() >= -1e-9  # export limit 0
