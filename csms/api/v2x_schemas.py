"""Request/response schemas of the OCPP 2.1 V2X, DER, aFRR and periodic-stream API."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, Strict

from csms.api.schemas import StationIdField, StrictModel
from csms.api.v2g_schemas import Moment

# A station's power in W (both directions), far past any EVSE, well inside float precision.
PowerW = Annotated[float, Field(ge=-1_000_000, le=1_000_000, allow_inf_nan=False)]
MagnitudeW = Annotated[float, Field(ge=0, le=1_000_000, allow_inf_nan=False)]
Int32 = Annotated[int, Field(ge=-(2**31), le=2**31 - 1)]
UInt32 = Annotated[int, Field(ge=0, le=2**31 - 1)]
CurveNumber = Annotated[float, Field(ge=-1000, le=1000, allow_inf_nan=False)]


class _In(StrictModel):
    """Request bodies: strict JSON types, unknown fields refused."""


class V2xStationRead(BaseModel):
    station_id: str
    ocpp_version: str
    v2x_enabled: bool
    operation_modes: list[str]
    energy_transfer_modes: list[str]
    frequency_mode: str | None = Field(
        description="LocalFrequency / CentralFrequency the frequency response runs as (None: "
        "the setpoint or 2.0.1 convention)"
    )


class DynamicSetpointCreate(_In):
    profile_id: Int32 = Field(description="the 2.1 charging profile the station holds")
    setpoint_w: PowerW = Field(description="+ charge, - discharge; clamped into the bounds")
    max_charge_w: MagnitudeW
    max_discharge_w: MagnitudeW
    setpoint_reactive_var: PowerW | None = None


class AllowedTransferCreate(_In):
    vehicle_id: str | None = Field(None, max_length=48)


class DerCurveCreate(_In):
    region: Literal["australia_a", "australia_b", "australia_c"] | None = Field(
        None, description="the region's AS/NZS 4777.2:2020 defaults (or give `points`)"
    )
    points: list[Annotated[tuple[CurveNumber, CurveNumber], Strict(False)]] | None = Field(
        None, min_length=2, max_length=10, description="[[x, y], ...] (V or Hz, %)"
    )
    nominal_v: float = Field(230.0, ge=100, le=500, allow_inf_nan=False)
    priority: int = Field(10, ge=0, le=1000)
    response_time_s: float | None = Field(None, gt=0, le=3600, allow_inf_nan=False)


class AfrrCreate(_In):
    signal: Int32
    timestamp: Moment | None = None
    station_ids: list[Annotated[str, StationIdField]] | None = Field(
        None, min_length=1, max_length=1000, description="none: every 2.1 station of the fleet"
    )


class SignalWattPoint(_In):
    signal: Int32
    power_w: float = Field(
        ge=-1_000_000, le=1_000_000, allow_inf_nan=False, description="+ charge, - discharge"
    )


class AfrrCurveCreate(_In):
    """Arm aFRR on 2.1 stations: a CentralFrequency profile with this signal-watt curve (the
    fleet's aFRR bid), moved by AFRRSignal."""

    curve: list[SignalWattPoint] = Field(
        min_length=1, max_length=20, description="signals strictly increasing"
    )
    baseline_w: float = Field(
        0.0, ge=-1_000_000, le=1_000_000, allow_inf_nan=False, description="v2xBaseline"
    )
    duration_s: int = Field(3600, ge=1, le=86_400)
    station_ids: list[Annotated[str, StationIdField]] | None = Field(
        None, min_length=1, max_length=1000, description="none: every 2.1 station of the fleet"
    )


class LocalControlCreate(_In):
    """Hand the running session to the station's side (OCPP 2.1 operation modes)."""

    mode: Literal["ExternalSetpoint", "ExternalLimits", "LocalLoadBalancing"]
    duration_s: int = Field(3600, ge=1, le=86_400)
    max_charge_w: float | None = Field(None, ge=0, le=1_000_000, allow_inf_nan=False)
    max_discharge_w: float | None = Field(None, ge=0, le=1_000_000, allow_inf_nan=False)


class StreamRequestCreate(_In):
    """A monitor on one variable whose events the station streams (SetVariableMonitoring with
    `periodicEventStream`)."""

    component: str = Field(min_length=1, max_length=50)
    variable: str = Field(min_length=1, max_length=50)
    evse_id: int | None = Field(None, ge=1, le=1000)
    monitor_type: Literal["Periodic", "PeriodicClockAligned", "Delta"] = "Periodic"
    value: float = Field(1.0, ge=0, le=86400, allow_inf_nan=False)
    severity: int = Field(8, ge=0, le=9)
    interval_s: UInt32 | None = None
    values: UInt32 | None = None


class StreamAdjustCreate(_In):
    interval_s: UInt32 | None = None
    values: UInt32 | None = None
