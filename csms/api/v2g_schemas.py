"""REST schemas of the V2G API (`XCreate` in, `XRead` out, `XUpdate` to change).

Units: SoC as a fraction 0..1, power in kW (signed: negative = discharge), energy in kWh,
prices in c/kWh (AUD cents), money in AUD. Times ISO 8601 with a timezone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from csms.api.schemas import JsonAwareDatetime, JsonNumberPair, StationIdField, StrictModel

ChemistryName = Literal["LFP", "NMC", "NCM", "NCA"]
Fraction = Field(ge=0.0, le=1.0)


class _In(StrictModel):
    """Request bodies: strict JSON types (see StrictModel), unknown fields refused."""


class VehicleCreate(_In):
    id: str = StationIdField
    name: str | None = Field(None, max_length=100)
    capacity_kwh: float = Field(gt=0, le=1000)
    chemistry: ChemistryName = "NMC"
    soc_min: float = Field(0.0, ge=0.0, le=1.0, description="usable window, lower end")
    soc_max: float = Field(1.0, ge=0.0, le=1.0, description="usable window, upper end")
    max_charge_kw: float = Field(ge=0, le=1000)
    max_discharge_kw: float = Field(ge=0, le=1000)
    round_trip_efficiency: float = Field(0.9, gt=0.0, le=1.0)
    driving_reserve_soc: float = Field(0.2, ge=0.0, le=1.0)
    backup_reserve_soc: float = Field(0.0, ge=0.0, le=1.0)
    degradation_c_kwh: float | None = Field(
        None, ge=0, description="wear per kWh throughput; none = from the chemistry"
    )
    station_id: str | None = Field(None, max_length=48)
    evse_id: int | None = Field(None, ge=1)
    departure: JsonAwareDatetime | None = None
    target_soc: float | None = Field(None, ge=0.0, le=1.0)


class VehicleUpdate(_In):
    name: str | None = Field(None, max_length=100)
    capacity_kwh: float | None = Field(None, gt=0, le=1000)
    chemistry: ChemistryName | None = None
    soc_min: float | None = Field(None, ge=0.0, le=1.0)
    soc_max: float | None = Field(None, ge=0.0, le=1.0)
    max_charge_kw: float | None = Field(None, ge=0, le=1000)
    max_discharge_kw: float | None = Field(None, ge=0, le=1000)
    round_trip_efficiency: float | None = Field(None, gt=0.0, le=1.0)
    driving_reserve_soc: float | None = Field(None, ge=0.0, le=1.0)
    backup_reserve_soc: float | None = Field(None, ge=0.0, le=1.0)
    degradation_c_kwh: float | None = Field(None, ge=0)
    departure: JsonAwareDatetime | None = None
    target_soc: float | None = Field(None, ge=0.0, le=1.0)


class VehicleLinkCreate(_In):
    station_id: str | None = Field(None, max_length=48, description="null = unlink")
    evse_id: int | None = Field(None, ge=1)


class VehicleRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str | None
    capacity_kwh: float
    chemistry: str
    soc_min: float
    soc_max: float
    max_charge_kw: float
    max_discharge_kw: float
    round_trip_efficiency: float
    driving_reserve_soc: float
    backup_reserve_soc: float
    degradation_c_kwh: float | None
    station_id: str | None
    evse_id: int | None
    departure: datetime | None
    target_soc: float | None


class SessionContextRead(BaseModel):
    vehicle_id: str
    soc: float | None
    soc_source: str
    departure: datetime
    target_soc: float
    departure_source: str = Field(description="api / ev / predicted / default / request")
    confidence: float | None = None
    transaction_id: str | None = None


# Prices ----------------------------------------------------------------------------------------


class PriceInterval(BaseModel):
    start: JsonAwareDatetime
    interval_s: int = Field(gt=0, le=86400)
    import_c_kwh: float
    export_c_kwh: float


class PriceIntervalCreate(_In, PriceInterval):
    """A price interval in a request: strict types. (Answers stay lax, so that a price
    stored before a rule was tightened cannot make GET /prices fail.)"""


class PricesCreate(_In):
    intervals: list[PriceIntervalCreate] = Field(min_length=1, max_length=100_000)
    source: str = Field("api", max_length=100)


class PricesRead(BaseModel):
    intervals: list[PriceInterval]


class PricesStoredRead(BaseModel):
    stored: int
    start: datetime | None = None
    end: datetime | None = None
    interval_s: int | None = None


# Plans -----------------------------------------------------------------------------------------


class PlanVehicleCreate(_In):
    vehicle_id: str
    soc: float | None = Field(None, ge=0.0, le=1.0, description="none = last SoC meter value")
    departure: JsonAwareDatetime | None = None
    target_soc: float | None = Field(None, ge=0.0, le=1.0)
    arrival: JsonAwareDatetime | None = None


class InlinePrices(_In):
    start: JsonAwareDatetime
    interval_s: int = Field(gt=0, le=86400)
    import_c_kwh: list[float] = Field(min_length=1)
    export_c_kwh: list[float] = Field(min_length=1)


class PlanCreate(_In):
    vehicles: list[PlanVehicleCreate] = Field(min_length=1, max_length=500)
    import_limit_kw: float | None = Field(None, ge=0)
    export_limit_kw: float | None = Field(None, ge=0)
    site_base_kw: list[float] | None = Field(
        None, description="site load minus solar per price interval from the first one"
    )
    prices: InlinePrices | None = Field(None, description="none = the stored prices")
    now: JsonAwareDatetime | None = Field(None, description="plan as if it were this time")


class VehiclePlanRead(BaseModel):
    vehicle_id: str
    start: datetime
    departure: datetime
    interval_starts: list[datetime]
    hours: list[float]
    power_kw: list[float]
    soc_start: float
    soc_after: list[float]
    soc_at_departure: float
    target_soc: float
    target_met: bool
    warnings: list[str]


class PlanRead(BaseModel):
    now: datetime
    objective_c: float
    interval_starts: list[datetime]
    site_net_kw: list[float]
    vehicles: list[VehiclePlanRead]
    contexts: list[SessionContextRead]
    warnings: list[str]


class SentPlanRead(BaseModel):
    plan_id: int
    station_id: str
    evse_id: int
    transaction_id: str
    status: str = Field(description="the station's SetChargingProfile answer")
    status_info: dict[str, Any] | None
    charging_profile: dict[str, Any]
    plan: VehiclePlanRead


class StoredPlanRead(BaseModel):
    id: int | None
    vehicle_id: str
    station_id: str | None
    evse_id: int | None
    transaction_id: str | None
    planned_at: datetime
    status: str
    reason: str | None
    plan: dict[str, Any]


# Fleet -----------------------------------------------------------------------------------------


class FlexibilityItemRead(BaseModel):
    vehicle_id: str
    up_kw: float
    down_kw: float
    up_kwh: float
    down_kwh: float
    until: datetime


class FlexibilityRead(BaseModel):
    duration_s: float
    vehicles: list[FlexibilityItemRead]
    up_kw: float
    down_kw: float
    up_kwh: float
    down_kwh: float
    vehicle_count: int


class BidRead(BaseModel):
    direction: str
    capacity_kw: float
    energy_kwh: float
    duration_s: float
    response_time_s: float
    vehicles: int


class BidsRead(BaseModel):
    raise_bid: BidRead | None = Field(description="discharge offer; none below the minimum")
    lower_bid: BidRead | None = Field(description="charge offer; none below the minimum")
    fleet_down_kw: float
    fleet_up_kw: float


class DispatchCreate(_In):
    target_kw: float = Field(description="fleet power, negative = discharge")
    duration_s: int = Field(1800, gt=0, le=86400)


class DispatchRead(BaseModel):
    id: int
    kind: str = "dispatch"
    requested_kw: float
    allocated_kw: float = Field(description="what the vehicles' headroom allows")
    accepted_kw: float = Field(description="sum over stations that answered Accepted")
    measured_kw: float | None = Field(None, description="from meter values during the window")
    started_at: datetime | None = None
    duration_s: int | None = None
    per_vehicle: dict[str, dict[str, Any]]


# Frequency, backup -----------------------------------------------------------------------------


class FrequencySampleCreate(_In):
    hz: float = Field(ge=40.0, le=70.0)
    at: JsonAwareDatetime


class FrequencySampleRead(BaseModel):
    fired: list[dict[str, Any]] = Field(description="vehicles sent a discharge profile")
    restored: list[dict[str, Any]] = Field(description="early ends: frequency profile cleared")


class FrequencyResponseCreate(_In):
    curve: list[JsonNumberPair] | None = Field(
        None, description="[[Hz, W], ...], W positive = charge; none = keep the station's"
    )
    enabled: bool


class FrequencyResponseRead(BaseModel):
    accepted: bool
    results: list[dict[str, Any]]


class BackupRead(BaseModel):
    station_id: str
    grid_present: bool
    backup_active: bool
    emergency_backup: bool
    since: datetime | None
    vehicle_id: str | None
    soc: float | None
    house_load_kw: float
    backup_hours: float | None = Field(description="none = unknown SoC or no load")


class EmergencyBackupCreate(_In):
    enabled: bool


# Economics -------------------------------------------------------------------------------------


class EconomicsRead(BaseModel):
    vehicle_id: str
    start: datetime
    end: datetime
    days: float
    imported_kwh: float
    exported_kwh: float
    import_cost_aud: float
    export_revenue_aud: float
    grid_service_aud: float
    degradation_aud: float
    equivalent_full_cycles: float
    net_value_aud: float
    daily_net_aud: float
    annual_net_aud: float
    v2g_benefit_aud: float = Field(description="export revenue + grid services - cycle wear")
    annual_benefit_aud: float
    equipment_cost_aud: float
    payback_years: float | None = Field(description="none = never (no benefit)")
    unpriced_kwh: float = Field(description="energy with no stored price (counted at 0)")
