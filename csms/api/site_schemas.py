"""Request/response schemas of the sites API (issue 18; the contract is sites_api.md, mirrored
in the README): sites, their operating envelopes and what each station was sent."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from csms.api.schemas import JsonAwareDatetime, StrictModel
from csms.api.site_meter_schemas import MeterRead
from csms.domain.envelopes import MAX_ENVELOPE_W, MAX_RAMP_PCT_PER_S, MAX_RAMP_TIME_S
from csms.domain.sites import MAX_SFDI, MAX_STATIONS_PER_SITE, nmi_problem

SiteIdField = Field(
    min_length=1,
    max_length=64,
    pattern=r"^[A-Za-z0-9._-]+$",
    description="1-64 of letters, digits, '.', '_', '-'",
)
LimitW = float | None


class MeterSource(StrictModel):
    """Where the site's household meter reading comes from besides a push: one of its
    stations' own main meter (OCPP MeterValues with evseId 0, location Inlet)."""

    station_id: str = Field(min_length=1, max_length=48, description="one of the site's stations")


class SiteIn(StrictModel):
    """A site: a home or depot behind one grid connection point, holding stations."""

    id: str = SiteIdField
    name: str = Field(min_length=1, max_length=200)
    nmi: str | None = Field(
        None, description="National Metering Identifier: 10 characters + optional checksum"
    )
    lfdi: str | None = Field(
        None, pattern=r"^[0-9A-Fa-f]{40}$", description="the site EndDevice's LFDI (40 hex)"
    )
    sfdi: int | None = Field(None, ge=1, le=MAX_SFDI)
    registration_pin: int | None = Field(
        None, ge=0, le=999_999, description="the DNSP's registration PIN (write-only)"
    )
    csip_enabled: bool = Field(False, description="register and poll with the CSIP-AUS server")
    station_ids: list[str] = Field(default_factory=list, max_length=MAX_STATIONS_PER_SITE)
    meter_source: MeterSource | None = Field(
        None,
        description="each evse-0 Inlet MeterValues of this station is a household meter reading",
    )

    @field_validator("nmi")
    @classmethod
    def _nmi(cls, value: str | None) -> str | None:
        if value is not None and (problem := nmi_problem(value)):
            raise ValueError(problem)
        return value

    @field_validator("station_ids")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a station is listed twice")
        return value


class SiteRead(BaseModel):
    id: str
    name: str
    nmi: str | None
    lfdi: str | None
    sfdi: int | None
    csip_enabled: bool
    station_ids: list[str]
    has_registration_pin: bool
    meter_source: MeterSource | None = None


SourceName = Literal["csip-aus", "operator"]


class EnvelopeIn(StrictModel):
    """An operator envelope: limits in W (magnitudes), all optional."""

    control_id: str | None = Field(None, min_length=1, max_length=64)
    is_default: bool = Field(False, description="applies only when no other envelope does")
    start: JsonAwareDatetime
    end: JsonAwareDatetime | None = Field(None, description="null: open-ended")
    export_limit_w: LimitW = Field(None, ge=0, le=MAX_ENVELOPE_W)
    import_limit_w: LimitW = Field(None, ge=0, le=MAX_ENVELOPE_W)
    generation_limit_w: LimitW = Field(None, ge=0, le=MAX_ENVELOPE_W)
    load_limit_w: LimitW = Field(None, ge=0, le=MAX_ENVELOPE_W)
    energize: bool | None = None
    connect: bool | None = None
    ramp_rate_pct_per_s: float | None = Field(None, gt=0, le=MAX_RAMP_PCT_PER_S)
    ramp_time_s: float | None = Field(
        None,
        gt=0,
        le=MAX_RAMP_TIME_S,
        description="the stations' bounds move from the previous ones to these over this time",
    )

    @field_validator(
        "export_limit_w", "import_limit_w", "generation_limit_w", "load_limit_w", mode="before"
    )
    @classmethod
    def _int_is_fine(cls, value: object) -> object:
        # Strict mode refuses 5000 for a float field; a whole number of watts is fine.
        if isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value

    @model_validator(mode="after")
    def _ends_after_start(self) -> EnvelopeIn:
        if self.end is not None and self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class OperatorEnvelopesIn(StrictModel):
    envelopes: list[EnvelopeIn] = Field(max_length=100)


class EnvelopeRead(BaseModel):
    source: str
    control_id: str | None
    is_default: bool
    start: datetime
    end: datetime | None
    received_at: datetime
    export_limit_w: float | None
    import_limit_w: float | None
    generation_limit_w: float | None
    load_limit_w: float | None
    energize: bool | None
    connect: bool | None
    ramp_rate_pct_per_s: float | None
    ramp_time_s: float | None


class ChargerBoundsRead(BaseModel):
    max_charge_w: float
    max_discharge_w: float


class StationEnforcementRead(BaseModel):
    station_id: str
    max_charge_w: float = Field(description="this station's charge bound now")
    max_discharge_w: float = Field(description="this station's discharge bound now")
    enforced: bool = Field(
        description="the station accepted the profile for the site's current envelopes"
    )
    sent_at: datetime | None
    status: str = Field(
        description="the station's answer (Accepted, Rejected) or Pending (nothing sent yet), "
        "Offline, Timeout, CallError, Invalid, Error"
    )
    action: str | None = Field(None, description="SetChargingProfile or ClearChargingProfile")
    detail: str | None = None


class EnvelopeViewRead(BaseModel):
    site_id: str
    now: datetime
    in_force: EnvelopeRead | None
    charger_bounds: ChargerBoundsRead = Field(description="the site's chargers together")
    stations: list[StationEnforcementRead]
    upcoming: list[EnvelopeRead] = Field(description="the next 24 h, in start order")
    meter: MeterRead | None = Field(
        None, description="the household meter: its latest reading, its age, the base used"
    )
