"""Vehicles and charging sessions as the V2G services see them (pure).

State of charge (SoC) is a fraction 0..1 everywhere in this package; percent only at the edges.
Power is in kW, signed where one number is given: positive = charge, negative = discharge.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from csms.v2g import bounds as b


class Chemistry(StrEnum):
    LFP = "LFP"
    NMC = "NMC"  # also written NCM
    NCA = "NCA"

    @classmethod
    def parse(cls, text: str) -> Chemistry:
        upper = text.strip().upper()
        if upper == "NCM":
            return cls.NMC
        return cls(upper)


@dataclass(frozen=True)
class ChemistryAgeing:
    """End of life (80 % state of health) in full cycles and in calendar years."""

    cycle_life: float
    calendar_life_years: float


# The seed's table (cycles at 100 % depth of discharge to 80 % SoH / years of calendar life).
AGEING_BY_CHEMISTRY: dict[Chemistry, ChemistryAgeing] = {
    Chemistry.LFP: ChemistryAgeing(cycle_life=6000, calendar_life_years=15),
    Chemistry.NMC: ChemistryAgeing(cycle_life=3000, calendar_life_years=10),
    Chemistry.NCA: ChemistryAgeing(cycle_life=2500, calendar_life_years=8),
}

DEFAULT_PACK_COST_AUD_PER_KWH = 200.0


def throughput_degradation_c_kwh(
    chemistry: Chemistry, pack_cost_aud_per_kwh: float = DEFAULT_PACK_COST_AUD_PER_KWH
) -> float:
    """Wear cost per kWh through the battery (charge or discharge), in c/kWh.

    One full cycle moves 2 x capacity kWh; a pack lasts `cycle_life` full cycles, so each kWh
    of throughput uses pack_cost / (2 x cycle_life) of the pack's value per kWh of capacity.
    """
    cycles = AGEING_BY_CHEMISTRY[chemistry].cycle_life
    return 100.0 * pack_cost_aud_per_kwh / (2.0 * cycles)


@dataclass(frozen=True)
class Vehicle:
    vehicle_id: str
    capacity_kwh: float
    max_charge_kw: float
    max_discharge_kw: float
    chemistry: Chemistry = Chemistry.NMC
    soc_min: float = 0.0  # usable window
    soc_max: float = 1.0
    round_trip_efficiency: float = 0.90
    driving_reserve_soc: float = 0.20
    backup_reserve_soc: float = 0.0
    # Wear cost per kWh of throughput (c/kWh); None = from the chemistry's cycle life.
    degradation_c_kwh: float | None = None

    def __post_init__(self) -> None:
        # Bounded here so that no caller (CLI, API, stored record) can hand the planner a
        # capacity near 0, a non-finite power or an efficiency that blows up 1/eta.
        b.CAPACITY_KWH.check(self.capacity_kwh, "capacity_kwh")
        b.VEHICLE_POWER_KW.check(self.max_charge_kw, "max_charge_kw")
        b.VEHICLE_POWER_KW.check(self.max_discharge_kw, "max_discharge_kw")
        b.SOC_FRACTION.check(self.soc_min, "soc_min")
        b.SOC_FRACTION.check(self.soc_max, "soc_max")
        if not self.soc_min < self.soc_max:
            raise ValueError(
                f"need 0 <= soc_min < soc_max <= 1, got {self.soc_min}..{self.soc_max}"
            )
        b.ROUND_TRIP_EFFICIENCY.check(self.round_trip_efficiency, "round_trip_efficiency")
        for name in ("driving_reserve_soc", "backup_reserve_soc"):
            b.SOC_FRACTION.check(getattr(self, name), name)
        if self.degradation_c_kwh is not None:
            b.DEGRADATION_C_KWH.check(self.degradation_c_kwh, "degradation_c_kwh")

    @property
    def charge_efficiency(self) -> float:
        """Grid -> battery. The round trip is split evenly between the two directions."""
        return math.sqrt(self.round_trip_efficiency)

    @property
    def discharge_efficiency(self) -> float:
        """Battery -> grid."""
        return math.sqrt(self.round_trip_efficiency)

    @property
    def reserve_soc(self) -> float:
        """The lowest SoC that V2G may discharge to."""
        return max(self.soc_min, self.driving_reserve_soc, self.backup_reserve_soc)

    @property
    def wear_c_kwh(self) -> float:
        if self.degradation_c_kwh is not None:
            return self.degradation_c_kwh
        return throughput_degradation_c_kwh(self.chemistry)


@dataclass(frozen=True)
class PowerCap:
    """A bound on the vehicle's power from `start` to `end` (None: open-ended), meter side:
    its station's share of the site's operating envelope (csms.domain.envelopes)."""

    start: datetime
    end: datetime | None
    max_charge_kw: float
    max_discharge_kw: float

    def __post_init__(self) -> None:
        b.VEHICLE_POWER_KW.check(self.max_charge_kw, "max_charge_kw")
        b.VEHICLE_POWER_KW.check(self.max_discharge_kw, "max_discharge_kw")
        if self.start.tzinfo is None or (self.end is not None and self.end.tzinfo is None):
            raise ValueError("cap times must be timezone-aware")


def tightest(
    caps: Sequence[PowerCap], start: datetime, end: datetime
) -> tuple[float, float] | None:
    """(charge kW, discharge kW): the tightest caps overlapping [start, end); None: none."""
    found: tuple[float, float] | None = None
    for cap in caps:
        if cap.start < end and (cap.end is None or cap.end > start):
            pair = (cap.max_charge_kw, cap.max_discharge_kw)
            found = pair if found is None else (min(found[0], pair[0]), min(found[1], pair[1]))
    return found


@dataclass(frozen=True)
class VehicleSession:
    """A plugged-in vehicle: where it is now and what it needs at departure."""

    vehicle: Vehicle
    soc: float
    departure: datetime
    target_soc: float
    arrival: datetime | None = None  # None = already plugged in
    # The site's envelope for its station: the plan stays within each cap it overlaps.
    power_caps: tuple[PowerCap, ...] = ()

    def __post_init__(self) -> None:
        b.SOC_FRACTION.check(self.soc, "soc")
        b.SOC_FRACTION.check(self.target_soc, "target_soc")
        if self.departure.tzinfo is None:
            raise ValueError("departure must be timezone-aware")
        if self.arrival is not None and self.arrival.tzinfo is None:
            raise ValueError("arrival must be timezone-aware")

    @property
    def vehicle_id(self) -> str:
        return self.vehicle.vehicle_id


def available_v2g_energy_kwh(
    vehicle: Vehicle,
    soc: float,
    target_soc: float | None = None,
    hours_to_departure: float | None = None,
) -> float:
    """Energy (battery side, kWh) that V2G may take now.

    capacity x max(0, SoC - floor), where the floor is the reserve and, if a departure target is
    given, the SoC from which the target can still be reached at the vehicle's charge rate in
    the time left (the whole target when no time is given).
    """
    floor = vehicle.reserve_soc
    if target_soc is not None:
        rechargeable = 0.0
        if hours_to_departure is not None and hours_to_departure > 0:
            rechargeable = (
                vehicle.max_charge_kw
                * vehicle.charge_efficiency
                * hours_to_departure
                / vehicle.capacity_kwh
            )
        floor = max(floor, target_soc - rechargeable)
    return vehicle.capacity_kwh * max(0.0, soc - floor)


def backup_hours(vehicle: Vehicle, soc: float, house_load_kw: float) -> float:
    """Estimated backup time (hours): energy above the backup reserve, delivered, / house load.

    A house load above the vehicle's max discharge power cannot be carried at all: 0 hours.
    """
    if house_load_kw <= 0:
        return math.inf
    if house_load_kw > vehicle.max_discharge_kw:
        return 0.0
    floor = max(vehicle.soc_min, vehicle.backup_reserve_soc)
    energy = vehicle.capacity_kwh * max(0.0, soc - floor) * vehicle.discharge_efficiency
    return energy / house_load_kw
