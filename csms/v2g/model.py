"""The one SoC and cost model that plans and baselines share (pure).

Energy through the meter for a vehicle over `hours` at signed power p (kW): p x hours.
Battery side: charging stores p x hours x eta_charge; discharging takes p x hours / eta_discharge.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from csms.v2g.vehicle import Vehicle


def simulate(
    vehicle: Vehicle,
    soc_start: float,
    requested_kw: Sequence[float] | np.ndarray,
    hours: Sequence[float] | np.ndarray,
    floor_soc: float | None = None,
    ceiling_soc: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Apply requested signed powers, clamped to the power limits and to [floor, ceiling] SoC.

    Returns (actual signed kW, SoC after each interval). The floor defaults to the vehicle's
    reserve (or the start SoC when below it), the ceiling to its soc_max.
    """
    cap = vehicle.capacity_kwh
    floor = min(vehicle.reserve_soc if floor_soc is None else floor_soc, soc_start) * cap
    ceiling = max(vehicle.soc_max if ceiling_soc is None else ceiling_soc, soc_start) * cap
    eta_c, eta_d = vehicle.charge_efficiency, vehicle.discharge_efficiency
    req = np.asarray(requested_kw, dtype=float)
    hrs = np.asarray(hours, dtype=float)
    actual = np.zeros(len(req))
    soc_after = np.zeros(len(req))
    energy = soc_start * cap
    for k, (p, h) in enumerate(zip(req, hrs, strict=True)):
        if h <= 0:
            soc_after[k] = energy / cap
            continue
        if p > 0:
            p = min(p, vehicle.max_charge_kw, max(0.0, (ceiling - energy) / (eta_c * h)))
            energy += p * h * eta_c
        elif p < 0:
            p = -min(-p, vehicle.max_discharge_kw, max(0.0, (energy - floor) * eta_d / h))
            energy += p * h / eta_d
        actual[k] = p
        soc_after[k] = energy / cap
    return actual, soc_after


def energy_cost_c(
    import_c_kwh: np.ndarray, export_c_kwh: np.ndarray, meter_kwh: np.ndarray
) -> float:
    """Cost (c) of signed energy through the meter per interval: imports pay the import price,
    exports earn the export price."""
    e = np.asarray(meter_kwh, dtype=float)
    return float(np.sum(np.where(e > 0, import_c_kwh * e, export_c_kwh * e)))


def wear_cost_c(power_kw: np.ndarray, hours: np.ndarray, wear_c_kwh: float) -> float:
    """Degradation charged per kWh of throughput (either direction, meter side)."""
    return float(np.sum(np.abs(power_kw) * hours) * wear_c_kwh)
