"""V2G services, pure logic: vehicles, prices, the site optimizer (HiGHS), baselines, fleet
flexibility and dispatch, frequency response, economics and departure prediction.

Nothing here does I/O or reads the clock: `now` is always an argument.
"""

from csms.v2g.baselines import Schedule, ThresholdRules, cost_plan, plain_charging, threshold_rules
from csms.v2g.departure import DeparturePrediction, SessionRecord, predict_departure
from csms.v2g.economics import (
    Economics,
    battery_degradation,
    count_cycles,
    payback_years,
    session_economics,
)
from csms.v2g.fleet import (
    Allocation,
    Bid,
    Flexibility,
    aggregate,
    dispatch,
    make_bid,
    vehicle_flexibility,
)
from csms.v2g.frequency import UnderFrequencyEvent, UnderFrequencyRule
from csms.v2g.optimizer import (
    PlanError,
    PlanInputs,
    SiteLimits,
    SitePlan,
    VehiclePlan,
    needs_replan,
    optimize,
    plan_vehicle,
    to_tx_profile,
)
from csms.v2g.prices import NemTariff, PriceSeries, parse_nem_price_and_demand, parse_price_file
from csms.v2g.vehicle import (
    Chemistry,
    Vehicle,
    VehicleSession,
    available_v2g_energy_kwh,
    backup_hours,
)
from v2g_shared.freq_watt import FreqWattCurve, freq_watt

__all__ = [
    "Allocation",
    "Bid",
    "Chemistry",
    "DeparturePrediction",
    "Economics",
    "Flexibility",
    "FreqWattCurve",
    "NemTariff",
    "PlanError",
    "PlanInputs",
    "PriceSeries",
    "Schedule",
    "SessionRecord",
    "SiteLimits",
    "SitePlan",
    "ThresholdRules",
    "UnderFrequencyEvent",
    "UnderFrequencyRule",
    "Vehicle",
    "VehiclePlan",
    "VehicleSession",
    "aggregate",
    "available_v2g_energy_kwh",
    "backup_hours",
    "battery_degradation",
    "cost_plan",
    "count_cycles",
    "dispatch",
    "freq_watt",
    "make_bid",
    "needs_replan",
    "optimize",
    "parse_nem_price_and_demand",
    "parse_price_file",
    "payback_years",
    "plain_charging",
    "plan_vehicle",
    "predict_departure",
    "session_economics",
    "threshold_rules",
    "to_tx_profile",
    "vehicle_flexibility",
]
