"""Economics: rainflow cycle ageing, calendar ageing by chemistry, money, payback."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from csms.v2g.baselines import plain_charging
from csms.v2g.economics import (
    DegradationModel,
    annual_benefit_aud,
    battery_degradation,
    combine,
    count_cycles,
    payback_years,
    session_economics,
)
from csms.v2g.optimizer import plan_vehicle
from csms.v2g.prices import AEST, NemTariff, parse_nem_price_and_demand
from csms.v2g.vehicle import Chemistry, Vehicle, VehicleSession

DATA = Path(__file__).parents[1] / "data" / "v2g"


def ev(chemistry: Chemistry = Chemistry.NMC) -> Vehicle:
    return Vehicle("ev", 40, 7, 7, chemistry=chemistry)


def test_rainflow_counts_the_full_and_the_small_cycle() -> None:
    # ASTM E1049 example shape: a small 0.5-0.6 cycle nested in a 0.4-0.9 swing.
    cycles = count_cycles([0.5, 0.9, 0.5, 0.6, 0.4, 0.9, 0.2])
    full = [(d, c) for d, c in cycles if c == 1.0]
    assert full == [(pytest.approx(0.1), 1.0)]
    assert sum(c * d for d, c in cycles) == pytest.approx(0.5 * (0.4 + 0.5 + 0.5 + 0.7) + 0.1)


def test_cycle_ageing_of_repeated_deep_cycles_matches_the_table() -> None:
    # 100 full 0 -> 100 % cycles = 100/3000 of an NMC life and 100/6000 of an LFP life.
    trace = [0.0, 1.0] * 100 + [0.0]
    nmc = battery_degradation(trace, days=0, vehicle=ev(Chemistry.NMC))
    lfp = battery_degradation(trace, days=0, vehicle=ev(Chemistry.LFP))
    nca = battery_degradation(trace, days=0, vehicle=ev(Chemistry.NCA))
    assert nmc.cycle_damage == pytest.approx(100 / 3000)
    assert lfp.cycle_damage == pytest.approx(100 / 6000)
    assert nca.cycle_damage == pytest.approx(100 / 2500)
    assert nmc.equivalent_full_cycles == pytest.approx(100)


def test_shallow_cycles_wear_less_per_kwh_than_deep_ones() -> None:
    deep = battery_degradation([0.2, 0.8] * 10 + [0.2], 0, ev())
    shallow = battery_degradation([0.5, 0.8] * 20 + [0.5], 0, ev())
    assert deep.equivalent_full_cycles == pytest.approx(shallow.equivalent_full_cycles)
    assert shallow.cycle_damage < deep.cycle_damage


def test_calendar_ageing_by_chemistry_and_temperature() -> None:
    one_year = 365.25
    assert battery_degradation([0.5], one_year, ev(Chemistry.NMC)).calendar_damage == (
        pytest.approx(1 / 10)
    )
    assert battery_degradation([0.5], one_year, ev(Chemistry.LFP)).calendar_damage == (
        pytest.approx(1 / 15)
    )
    hot = battery_degradation([0.5], one_year, ev(Chemistry.NCA), temperature_c=35)
    assert hot.calendar_damage == pytest.approx(2 / 8)
    d = battery_degradation([0.5], one_year, ev(Chemistry.NMC))
    assert d.capacity_loss_kwh == pytest.approx(0.1 * 0.2 * 40)
    assert d.cost_aud == pytest.approx(0.1 * 200 * 40)
    assert DegradationModel.for_chemistry(Chemistry.LFP).cycle_life == 6000


def test_v2g_on_a_real_price_day_pays_and_wears_more_than_plain_charging() -> None:
    prices = parse_nem_price_and_demand(
        (DATA / "PRICE_AND_DEMAND_20240805-06_VIC1.csv").read_text(),
        NemTariff(retail_margin_c_kwh=15),
    )
    now = datetime(2024, 8, 5, 6, 0, tzinfo=AEST)
    session = VehicleSession(ev(), 0.6, datetime(2024, 8, 6, 6, 0, tzinfo=AEST), 0.8)
    plan = plan_vehicle(session, prices, now)
    i0 = prices.index_at(plan.interval_starts[0])
    n = len(plan.power_kw)
    imports = prices.import_array()[i0 : i0 + n]
    exports = prices.export_array()[i0 : i0 + n]
    v2g = session_economics(
        session.vehicle,
        plan.power_kw,
        plan.hours,
        imports,
        exports,
        [session.soc, *plan.soc_after],
        grid_service_aud=1.5,
    )
    plain = plain_charging(session, prices, now)
    base = session_economics(
        session.vehicle,
        plain.power_kw,
        plain.hours,
        imports,
        exports,
        [session.soc, *plain.soc_after],
    )
    assert v2g.days == pytest.approx(1.0)
    assert v2g.exported_kwh > 20 and base.exported_kwh == 0
    energy = np.asarray(plan.power_kw) * np.asarray(plan.hours)
    assert v2g.imported_kwh - v2g.exported_kwh == pytest.approx(energy.sum())
    assert v2g.export_revenue_aud == pytest.approx(
        float(np.dot(np.clip(-energy, 0, None), exports)) / 100
    )
    assert v2g.degradation_aud > base.degradation_aud  # more cycling
    assert v2g.net_value_aud > base.net_value_aud  # but worth it on a spike day
    assert v2g.annual_net_aud == pytest.approx(v2g.net_value_aud * 365.25)
    benefit = annual_benefit_aud(v2g, base)
    assert payback_years(benefit) == pytest.approx(15_000 / benefit)
    both = combine([v2g, base])
    assert both.days == pytest.approx(2.0)
    assert both.grid_service_aud == 1.5


def test_payback_without_benefit_is_never() -> None:
    assert math.isinf(payback_years(0.0))
    assert math.isinf(payback_years(-10.0))
    assert payback_years(1500.0, equipment_cost_aud=12_000) == pytest.approx(8.0)
