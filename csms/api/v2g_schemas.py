"""REST schemas of the V2G API (`XCreate` in, `XRead` out, `XUpdate` to change).

Units: SoC as a fraction 0..1, power in kW (signed: negative = discharge), energy in kWh,
prices in c/kWh (AUD cents), money in AUD. Times ISO 8601 with a timezone.

Every number in is finite and within the physical range of csms/v2g/bounds.py (the same the
CLI and the service use): capacity 1-1000 kWh, vehicle power 0-1000 kW, round-trip efficiency
0.5-1, prices +-20,000 c/kWh, site power +-100,000 kW, frequency 40-70 Hz, times in
2000-2099. Anything else is a 422 naming the field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict

from csms.api.schemas import JsonAwareDatetime, StationIdField, StrictModel
from csms.v2g import bounds as b

ChemistryName = Literal["LFP", "NMC", "NCM", "NCA"]


def _range(bound: b.Bound) -> Any:
    """Field constraints of a bound: finite, within [low, high] (or (low, high])."""
    if bound.low_open:
        return Field(gt=bound.low, le=bound.high, allow_inf_nan=False)
    return Field(ge=bound.low, le=bound.high, allow_inf_nan=False)


def _in_time_range(moment: datetime) -> datetime:
    return b.check_time(moment, "time")  # BoundError is a ValueError: a 422


Fraction = Annotated[float, _range(b.SOC_FRACTION)]
CapacityKwh = Annotated[float, _range(b.CAPACITY_KWH)]
VehicleKw = Annotated[float, _range(b.VEHICLE_POWER_KW)]
Efficiency = Annotated[float, _range(b.ROUND_TRIP_EFFICIENCY)]
WearCKwh = Annotated[float, _range(b.DEGRADATION_C_KWH)]
PriceCKwh = Annotated[float, _range(b.PRICE_C_KWH)]
SiteKw = Annotated[float, _range(b.SITE_POWER_KW)]
SiteLimitKw = Annotated[float, _range(b.SITE_LIMIT_KW)]
Hz = Annotated[float, _range(b.FREQUENCY_HZ)]
Watts = Annotated[float, _range(b.FREQ_WATT_W)]
Moment = Annotated[JsonAwareDatetime, AfterValidator(_in_time_range)]
IntervalS = Annotated[int, Field(ge=int(b.PRICE_INTERVAL_S.low), le=int(b.PRICE_INTERVAL_S.high))]
EvseId = Annotated[int, Field(ge=1, le=b.EVSE_ID_MAX)]


class _In(StrictModel):
    """Request bodies: strict JSON types (see StrictModel), unknown fields refused."""


class VehicleCreate(_In):
    id: str = StationIdField
    name: str | None = Field(None, max_length=100)
    capacity_kwh: CapacityKwh
    chemistry: ChemistryName = "NMC"
    soc_min: Fraction = Field(0.0, description="usable window, lower end")
    soc_max: Fraction = Field(1.0, description="usable window, upper end")
    max_charge_kw: VehicleKw
    max_discharge_kw: VehicleKw
    round_trip_efficiency: Efficiency = 0.9
    driving_reserve_soc: Fraction = 0.2
    backup_reserve_soc: Fraction = 0.0
    degradation_c_kwh: WearCKwh | None = Field(
        None, description="wear per kWh throughput; none = from the chemistry"
    )
    station_id: str | None = Field(None, max_length=48)
    evse_id: EvseId | None = None
    departure: Moment | None = Field(None, description="within the horizon (v2g_max_horizon_h)")
    target_soc: Fraction | None = None


class VehicleUpdate(_In):
    name: str | None = Field(None, max_length=100)
    capacity_kwh: CapacityKwh | None = None
    chemistry: ChemistryName | None = None
    soc_min: Fraction | None = None
    soc_max: Fraction | None = None
    max_charge_kw: VehicleKw | None = None
    max_discharge_kw: VehicleKw | None = None
    round_trip_efficiency: Efficiency | None = None
    driving_reserve_soc: Fraction | None = None
    backup_reserve_soc: Fraction | None = None
    degradation_c_kwh: WearCKwh | None = None
    departure: Moment | None = Field(None, description="within the horizon (v2g_max_horizon_h)")
    target_soc: Fraction | None = None


class VehicleLinkCreate(_In):
    station_id: str | None = Field(None, max_length=48, description="null = unlink")
    evse_id: EvseId | None = None


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
    v2g_enabled: bool = Field(
        True, description="V2G export allowed (Home Assistant's switch; off: plans never export)"
    )


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


class PriceIntervalCreate(_In):
    start: Moment
    interval_s: IntervalS
    import_c_kwh: PriceCKwh
    export_c_kwh: PriceCKwh


class PricesCreate(_In):
    intervals: list[PriceIntervalCreate] = Field(min_length=1, max_length=b.MAX_PRICE_INTERVALS)
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
    vehicle_id: str = Field(max_length=48)
    soc: Fraction | None = Field(None, description="none = last SoC meter value")
    departure: Moment | None = Field(None, description="within the horizon (v2g_max_horizon_h)")
    target_soc: Fraction | None = None
    arrival: Moment | None = None


class InlinePrices(_In):
    start: Moment
    interval_s: IntervalS
    import_c_kwh: list[PriceCKwh] = Field(min_length=1, max_length=b.MAX_PRICE_INTERVALS)
    export_c_kwh: list[PriceCKwh] = Field(min_length=1, max_length=b.MAX_PRICE_INTERVALS)


class PlanCreate(_In):
    vehicles: list[PlanVehicleCreate] = Field(min_length=1, max_length=500)
    import_limit_kw: SiteLimitKw | None = None
    export_limit_kw: SiteLimitKw | None = None
    site_base_kw: list[SiteKw] | None = Field(
        None,
        max_length=b.MAX_PRICE_INTERVALS,
        description="site load minus solar per price interval from the first one",
    )
    prices: InlinePrices | None = Field(None, description="none = the stored prices")
    now: Moment | None = Field(None, description="plan as if it were this time")


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
    target_kw: SiteKw = Field(description="fleet power, negative = discharge")
    duration_s: int = Field(1800, gt=0, le=86400)
    method: Literal["proportional", "water_filling"] = Field(
        "proportional",
        description="proportional: each vehicle's share proportional to its available power "
        "(the seed aggregator's rule); water_filling: equal shares. Either way what a vehicle "
        "cannot take is redistributed to the others",
    )


class DispatchRead(BaseModel):
    id: int
    kind: str = "dispatch"
    requested_kw: float
    allocated_kw: float = Field(
        description="what the vehicles' headroom and their stations' envelope shares allow"
    )
    accepted_kw: float = Field(description="sum over stations that answered Accepted")
    measured_kw: float | None = Field(None, description="from meter values during the window")
    started_at: datetime | None = None
    duration_s: int | None = None
    method: str | None = Field(None, description="split method of a fleet dispatch")
    per_vehicle: dict[str, dict[str, Any]]


# Frequency, backup -----------------------------------------------------------------------------


class FrequencySampleCreate(_In):
    hz: Hz
    at: Moment


class FrequencySampleRead(BaseModel):
    fired: list[dict[str, Any]] = Field(description="vehicles sent a discharge profile")
    restored: list[dict[str, Any]] = Field(description="early ends: frequency profile cleared")
    central: list[dict[str, Any]] = Field(
        default_factory=list,
        description="2.1 CentralFrequency stations: Dynamic profile set, moved or cleared",
    )


class FrequencyResponseCreate(_In):
    curve: list[Annotated[tuple[Hz, Watts], Strict(False)]] | None = Field(
        None,
        min_length=2,
        max_length=b.MAX_CURVE_POINTS,
        description="[[Hz, W], ...], W positive = charge; none = keep the station's",
    )
    enabled: bool


class FrequencyResponseRead(BaseModel):
    accepted: bool
    results: list[dict[str, Any]]
    mode: str = Field(
        "variables",
        description="LocalFrequency: a 2.1 LocalFrequency profile; variables: SetVariables "
        "V2XCtrlr (2.0.1 stations, 2.1 stations without LocalFrequency)",
    )


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
