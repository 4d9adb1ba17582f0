"""V2G service settings (the `v2g_*` fields of csms.settings.Settings)."""

from __future__ import annotations

from pydantic import BaseModel

from csms.settings import Settings


class V2gSettings(BaseModel):
    """V2G service settings: the `v2g_*` fields of `csms.settings.Settings`
    (`CSMS_V2G_<NAME>` / `--v2g-<name>`), read once with the rest."""

    # Background re-planning: every this many seconds look at each plugged-in vehicle and
    # re-plan when prices, SoC, departure changed or the plan is older than `plan_max_age_s`.
    # 0 = off (the default, and in tests).
    replan_interval_s: float = 0.0
    plan_max_age_s: float = 900.0
    soc_tolerance: float = 0.03
    # NEM uploads: import = (RRP/10 + margin) x (1 + GST); export = RRP/10 + export offset.
    retail_margin_c_kwh: float = 0.0
    gst_rate: float = 0.10
    export_offset_c_kwh: float = 0.0
    # Grid-service payment per kWh of accepted dispatch/frequency response (AUD).
    grid_service_aud_per_kwh: float = 0.50
    # Without a departure from the API, the EV or a prediction: plug-in + this, to this SoC.
    default_dwell_h: float = 12.0
    default_target_soc: float = 0.80
    house_load_kw: float = 1.0  # backup time estimate
    frequency_rule_hold_s: float = 5.0
    frequency_rule_threshold_hz: float = 49.8
    frequency_discharge_kw: float = 5.0
    frequency_duration_s: float = 600.0
    frequency_min_soc: float = 0.5
    # Plans look at most this far ahead (csms/v2g/bounds.py DEFAULT_MAX_HORIZON_H).
    max_horizon_h: float = 168.0
    # ISO 15118 charging needs and the EV's schedule (csms/services/v2g/charging_needs.py).
    ev_needs_default_power_kw: float = 11.0
    ev_needs_interval_s: float = 900.0
    ev_needs_plan_timeout_s: float = 5.0
    ev_needs_answer_budget_s: float = 1.0
    ev_schedule_time_tolerance_s: float = 60.0
    ev_schedule_limit_tolerance: float = 0.01
    ev_schedule_max_renegotiations: int = 3

    @classmethod
    def from_settings(cls, settings: Settings) -> V2gSettings:
        return cls(**{name: getattr(settings, f"v2g_{name}") for name in cls.model_fields})
