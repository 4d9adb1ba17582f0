"""Economics of V2G (pure): energy, money, battery wear and payback.

Battery wear = calendar ageing + cycle ageing. Cycle ageing counts the cycles of a real SoC
trace with rainflow counting (ASTM E1049-85, the `rainflow` package) and charges each cycle
(depth d, 0..1) d^k / cycle_life of the battery's life, k = `dod_exponent` (> 1: shallow
cycles wear less per kWh than deep ones). Both ageing rates double every `doubling_c` degrees
above 25 C. One battery life (damage 1.0) ends at 80 % state of health and costs the pack.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import rainflow

from csms.v2g.vehicle import (
    AGEING_BY_CHEMISTRY,
    DEFAULT_PACK_COST_AUD_PER_KWH,
    Chemistry,
    Vehicle,
)

DEFAULT_EQUIPMENT_COST_AUD = 15_000.0
DAYS_PER_YEAR = 365.25


@dataclass(frozen=True)
class DegradationModel:
    cycle_life: float  # full (100 % depth) cycles to end of life
    calendar_life_years: float
    dod_exponent: float = 1.3
    end_of_life_capacity_loss: float = 0.20
    reference_temp_c: float = 25.0
    doubling_c: float = 10.0

    @classmethod
    def for_chemistry(cls, chemistry: Chemistry) -> DegradationModel:
        ageing = AGEING_BY_CHEMISTRY[chemistry]
        return cls(cycle_life=ageing.cycle_life, calendar_life_years=ageing.calendar_life_years)

    def temperature_factor(self, temp_c: float) -> float:
        return float(2.0 ** (max(0.0, temp_c - self.reference_temp_c) / self.doubling_c))


@dataclass(frozen=True)
class Degradation:
    cycle_damage: float  # fraction of one battery life
    calendar_damage: float
    equivalent_full_cycles: float  # sum of count x depth
    capacity_loss_kwh: float
    cost_aud: float

    @property
    def damage(self) -> float:
        return self.cycle_damage + self.calendar_damage


def count_cycles(soc_trace: Sequence[float] | np.ndarray) -> list[tuple[float, float]]:
    """Rainflow cycles of a SoC trace (fractions 0..1): (depth, count), count 1.0 or 0.5."""
    trace = [float(s) for s in soc_trace]
    if len(trace) < 2:
        return []
    return [(rng, count) for rng, _mean, count, _i, _j in rainflow.extract_cycles(trace)]


def battery_degradation(
    soc_trace: Sequence[float] | np.ndarray,
    days: float,
    vehicle: Vehicle,
    temperature_c: float = 25.0,
    model: DegradationModel | None = None,
    pack_cost_aud_per_kwh: float = DEFAULT_PACK_COST_AUD_PER_KWH,
) -> Degradation:
    model = model or DegradationModel.for_chemistry(vehicle.chemistry)
    factor = model.temperature_factor(temperature_c)
    cycles = count_cycles(soc_trace)
    cycle_damage = factor * sum(c * d**model.dod_exponent for d, c in cycles) / model.cycle_life
    calendar_damage = factor * days / (model.calendar_life_years * DAYS_PER_YEAR)
    total = cycle_damage + calendar_damage
    return Degradation(
        cycle_damage=cycle_damage,
        calendar_damage=calendar_damage,
        equivalent_full_cycles=sum(c * d for d, c in cycles),
        capacity_loss_kwh=total * model.end_of_life_capacity_loss * vehicle.capacity_kwh,
        cost_aud=total * pack_cost_aud_per_kwh * vehicle.capacity_kwh,
    )


@dataclass(frozen=True)
class Economics:
    imported_kwh: float
    exported_kwh: float
    import_cost_aud: float
    export_revenue_aud: float
    grid_service_aud: float
    degradation_aud: float
    days: float

    @property
    def net_value_aud(self) -> float:
        """Money in minus money out, wear included (negative = the session cost money)."""
        return (
            self.export_revenue_aud
            + self.grid_service_aud
            - self.import_cost_aud
            - self.degradation_aud
        )

    @property
    def daily_net_aud(self) -> float:
        return self.net_value_aud / self.days if self.days > 0 else 0.0

    @property
    def annual_net_aud(self) -> float:
        return self.daily_net_aud * DAYS_PER_YEAR


def session_economics(
    vehicle: Vehicle,
    power_kw: Sequence[float] | np.ndarray,
    hours: Sequence[float] | np.ndarray,
    import_c_kwh: Sequence[float] | np.ndarray,
    export_c_kwh: Sequence[float] | np.ndarray,
    soc_trace: Sequence[float] | np.ndarray,
    grid_service_aud: float = 0.0,
    days: float | None = None,
    temperature_c: float = 25.0,
) -> Economics:
    """One session, the vehicle alone on its meter. `soc_trace` includes the start SoC."""
    p = np.asarray(power_kw, dtype=float)
    h = np.asarray(hours, dtype=float)
    energy = p * h
    imported = np.where(energy > 0, energy, 0.0)
    exported = np.where(energy < 0, -energy, 0.0)
    span_days = float(h.sum()) / 24.0 if days is None else days
    wear = battery_degradation(soc_trace, span_days, vehicle, temperature_c)
    return Economics(
        imported_kwh=float(imported.sum()),
        exported_kwh=float(exported.sum()),
        import_cost_aud=float(np.dot(imported, import_c_kwh)) / 100.0,
        export_revenue_aud=float(np.dot(exported, export_c_kwh)) / 100.0,
        grid_service_aud=grid_service_aud,
        degradation_aud=wear.cost_aud,
        days=span_days,
    )


def combine(parts: Sequence[Economics], days: float | None = None) -> Economics:
    """Per vehicle (or fleet): the sum of its sessions over `days` (default: their days)."""
    return Economics(
        imported_kwh=sum(e.imported_kwh for e in parts),
        exported_kwh=sum(e.exported_kwh for e in parts),
        import_cost_aud=sum(e.import_cost_aud for e in parts),
        export_revenue_aud=sum(e.export_revenue_aud for e in parts),
        grid_service_aud=sum(e.grid_service_aud for e in parts),
        degradation_aud=sum(e.degradation_aud for e in parts),
        days=sum(e.days for e in parts) if days is None else days,
    )


def payback_years(
    annual_benefit_aud: float, equipment_cost_aud: float = DEFAULT_EQUIPMENT_COST_AUD
) -> float:
    """Years to earn back the equipment; infinite when there is no benefit."""
    if annual_benefit_aud <= 0:
        return math.inf
    return equipment_cost_aud / annual_benefit_aud


def annual_benefit_aud(with_v2g: Economics, without_v2g: Economics) -> float:
    """What V2G adds per year over the same days without it (e.g. plain charging)."""
    return with_v2g.annual_net_aud - without_v2g.annual_net_aud
