"""The demo's day: a real NEM price day as household prices, and the V2G plan in words (pure)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from csms.v2g.optimizer import VehiclePlan
from csms.v2g.prices import AEST, NemTariff, PriceSeries

# AEMO PRICE_AND_DEMAND_202408_VIC1.csv, RRP ($/MWh, excl. GST) of the 288 five-minute
# intervals ending 2024/08/05 12:05 ... 2024/08/06 12:00 (NEM time), unmodified. Data (c) AEMO,
# reused with attribution (see tests/data/v2g/README.md for the source of the file).
NEM_DAY_RRP = """
297 296.34 294.06 295.43 292.68 285.94 262.75 245.84 262.03 197.85 171.55
173.06 187.91 220.31 219.95 239.70 162.41 168.48 165.50 83.09 137.41 199.01
238.71 268.53 135.45 180.30 227.97 166.87 165.50 253.36 268.74 279.17 281.73
270.39 289.38 289.31 272.95 270.99 281.48 299.50 295.51 299.50 299.50 268.38
268.93 271.36 294.50 299.50 299.50 299.84 280.01 299.82 307.02 299.50 298
299.50 449.97 471.27 474.75 479.34 3898 3903.11 14450.01 14450.01 14935 16853.88
15159.51 16893.41 16656.93 14450.01 14450.01 14450.01 4283 3912.82 3912.82 4270 10144.22
14450.01 14096.68 13629.45 4448.07 4283 4069 4065.32 3898.45 10110.60 3945.71 3958.91
899.01 720.16 470.08 473.67 480.15 470.23 463.62 452.94 387.79 354.62 354.62
349.01 309.42 302.51 300.99 303.09 299.50 299.50 299.50 285.94 299.50 299.50
299.50 285.96 284 285.94 307.43 306.33 302.88 285.96 284 270.75 251.74
271.55 270.82 228.40 297.98 225.67 228.16 237.34 251.74 272.94 261.95 214.40
215.32 299.50 299.82 299.50 299.50 299.50 296.06 299.50 210.85 209.17 206.83
204.44 270.91 211.96 246.82 242.02 209.70 165.50 165.50 227.97 256.31 205.41
204.58 204.32 273.29 207.11 211.42 192.24 167.61 178.83 171.55 148.45 147.22
165.58 146.06 145 146.10 145.74 112.43 136.77 144.45 112.30 116.10 136.77
109 109 109 88.85 101.46 109 104.31 100.42 87.59 99.23 87.48
99.73 97.01 107.43 108.76 90.75 88.85 88.85 109.50 108.25 87.52 85.98
78.08 77.83 77.80 91.66 86.59 106.96 76 75.98 87.09 132.96 128.35
110.72 110.06 133 145 135.61 145 145 190.70 191.70 220.57 238.61
248.94 233 240 240 240 250.35 254.92 259.44 264.06 259.84 262.08
270.82 270.82 270.82 274.09 273.34 273.72 278.21 272.18 255.74 276.67 263.47
240 228.86 159.06 122.99 145 145 145 158.29 98.89 85 107.38
89.69 89.42 85 78.07 79.21 79.12 85 74.47 75.44 52.21 40.41
21.40 78.98 68.09 42.61 9.17 -19.99 -3.13 -19.98 -19.98 -30 -39.01
-30.01 -35.56 -32.98 -30.01 -39.01 -35.56 -30 -19.98 -31.80 8.95 0
-39.48 -35.57
"""
NEM_DAY_START = datetime(2024, 8, 5, 12, 0, tzinfo=AEST)
NEM_INTERVAL = timedelta(minutes=5)

STATION_PASSWORD = "demo-station-password"
DRIVER_TOKEN = "DEMO-DRIVER"
DAY = timedelta(hours=24)  # one plan per simulated day
TARGET_SOC = 0.8
# The simulated charger and car: up to 6 kW charging, 5 kW discharging (the car allows 15 A).
MAX_CHARGE_KW = 6.0
MAX_DISCHARGE_KW = 5.0
DRIVING_RESERVE_SOC = 0.3  # the agent's default driving reserve (safety.driving_reserve_soc_pct)


def nem_day_rrp() -> list[float]:
    return [float(value) for value in NEM_DAY_RRP.split()]


def demo_prices(sim_start: datetime, tariff: NemTariff | None = None) -> PriceSeries:
    """The NEM day as household prices (c/kWh), moved so that it begins at `sim_start`."""
    tariff = tariff or NemTariff()
    rrp = nem_day_rrp()
    return PriceSeries(
        start=sim_start,
        interval=NEM_INTERVAL,
        import_c_kwh=tuple(tariff.import_price(r) for r in rrp),
        export_c_kwh=tuple(tariff.export_price(r) for r in rrp),
    )


def plan_power_kw(plan: VehiclePlan | None, moment: datetime) -> float | None:
    """The plan's power for the interval containing `moment` (None outside the plan)."""
    if plan is None or moment < plan.start or moment >= plan.departure:
        return None
    index = 0
    for k, start in enumerate(plan.interval_starts):
        if start <= moment:
            index = k
    return plan.power_kw[index]


def plan_summary(plan: VehiclePlan, capacity_kwh: float) -> str:
    """The plan in words. Energy is at the meter (grid side) over the whole plan: what is
    discharged into the evening peak is charged again overnight, so the charge can exceed the
    battery's capacity; the rest of the difference is charger and battery losses."""
    charge = sum(max(0.0, p) * h for p, h in zip(plan.power_kw, plan.hours, strict=True))
    discharge = sum(max(0.0, -p) * h for p, h in zip(plan.power_kw, plan.hours, strict=True))
    stored = (plan.soc_at_departure - plan.soc_start) * capacity_kwh
    losses = charge - discharge - stored
    return (
        f"until departure, at the meter: charge {charge:.1f} kWh, discharge {discharge:.1f} kWh "
        f"at the peak (bought back later: net {charge - discharge:+.1f} kWh = "
        f"{stored:+.1f} kWh into the {capacity_kwh:g} kWh battery + {losses:.1f} kWh losses); "
        f"SoC {plan.soc_start * 100:.0f}% -> {plan.soc_at_departure * 100:.0f}% "
        f"(target {plan.target_soc * 100:.0f}%)"
    )


def plan_from_json(data: dict[str, Any]) -> VehiclePlan:
    """The `plan` of a SentPlanRead (POST /stations/{id}/v2g/optimize)."""

    def moment(text: str) -> datetime:
        return datetime.fromisoformat(text)

    return VehiclePlan(
        vehicle_id=str(data["vehicle_id"]),
        start=moment(data["start"]),
        departure=moment(data["departure"]),
        interval_starts=tuple(moment(t) for t in data["interval_starts"]),
        hours=tuple(float(h) for h in data["hours"]),
        power_kw=tuple(float(p) for p in data["power_kw"]),
        soc_start=float(data["soc_start"]),
        soc_after=tuple(float(v) for v in data["soc_after"]),
        target_soc=float(data["target_soc"]),
        target_met=bool(data["target_met"]),
        warnings=tuple(str(w) for w in data.get("warnings", ())),
    )


def iso(moment: datetime) -> str:
    return moment.isoformat()
