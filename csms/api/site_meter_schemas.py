"""Request/response schemas of a site's household meter (issue 18): a reading pushed by the
site's energy system (Home Assistant, an inverter's gateway, a script) and what the CSMS makes
of it."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from csms.api.schemas import JsonAwareDatetime, StrictModel
from csms.domain.site_meter import MAX_METER_W


class MeterReadingIn(StrictModel):
    """One reading: the net import at the connection point (`grid_import_w`), or the site's
    load and solar generation (`load_w`, `solar_w`), never both; W."""

    timestamp: JsonAwareDatetime = Field(description="when the meter measured (with its offset)")
    grid_import_w: float | None = Field(
        None,
        ge=-MAX_METER_W,
        le=MAX_METER_W,
        description="+ import from the grid, - export to it; the chargers included",
    )
    load_w: float | None = Field(
        None,
        ge=0,
        le=MAX_METER_W,
        description="everything the site consumes, the chargers included (whole-site load)",
    )
    solar_w: float | None = Field(None, ge=0, le=MAX_METER_W, description="solar generation")

    @field_validator("grid_import_w", "load_w", "solar_w", mode="before")
    @classmethod
    def _int_is_fine(cls, value: object) -> object:
        # Strict mode refuses 1500 for a float field; a whole number of watts is fine.
        if isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value

    @model_validator(mode="after")
    def _one_form(self) -> MeterReadingIn:
        net = self.grid_import_w is not None
        parts = (self.load_w is not None, self.solar_w is not None)
        if net and any(parts):
            raise ValueError("give grid_import_w, or load_w and solar_w, not both")
        if not net and not all(parts):
            raise ValueError("give grid_import_w, or both load_w and solar_w")
        return self


BaseRule = Literal["metered", "stale", "chargers-alone"]


class MeterRead(BaseModel):
    """The site's latest meter reading and the site base the chargers' bounds use."""

    site_id: str
    rule: BaseRule = Field(
        description="metered: a fresh reading counts; stale: the reading is older than "
        "max_age_s, the chargers-alone rule applies, tightened only; chargers-alone: no reading"
    )
    source: str | None = Field(None, description="api | mqtt | ocpp")
    measured_at: datetime | None = None
    received_at: datetime | None = None
    age_s: float | None = None
    max_age_s: float
    grid_import_w: float | None = None
    load_w: float | None = None
    solar_w: float | None = None
    chargers_w: float | None = Field(
        None, description="the chargers' own measured power at the reading (+ charging)"
    )
    unknown_stations: int | None = Field(
        None, description="stations charging whose power was not known (counted at their rating)"
    )
    base_low_w: float | None = Field(None, description="the reading minus the chargers, low end")
    base_high_w: float | None = Field(None, description="the reading minus the chargers, high end")
    charge_base_w: float = Field(description="the base the import limit (charge) is applied with")
    discharge_base_w: float = Field(
        description="the base the export limit (discharge) is applied with"
    )
