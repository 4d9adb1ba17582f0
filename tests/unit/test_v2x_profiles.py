"""OCPP 2.1 V2X profiles built from a V2G plan (csms.v2g.v2x): the Q rules per operation mode,
the 2.1 schema, and the invariants (bounds hold, plan energy kept)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from importlib import resources

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csms.v2g.ev_v2x import (
    EvV2xLimits,
    SocWindow,
    apply_ev_limits,
    ev_v2x_limits,
    v2x_energy_window,
)
from csms.v2g.optimizer import VehiclePlan, to_tx_profile
from csms.v2g.v2x import (
    OperationMode,
    PowerBounds,
    V2xPeriod,
    afrr_period,
    central_frequency_period,
    check_periods,
    frequency_period,
    period_errors,
    plan_periods,
    plan_to_v21_profile,
    schedule_energy_wh,
    schedule_update,
    v2x_capabilities,
    v21_profile,
)

T0 = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
BOUNDS = PowerBounds(max_charge_w=7000.0, max_discharge_w=5000.0)


def _schema(name: str) -> dict:
    path = resources.files("ocpp") / "v21" / "schemas" / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8"))


def _valid_21(action: str, payload: dict) -> None:
    jsonschema.Draft6Validator(_schema(action)).validate(payload)


def _plan(power_kw: list[float], minutes: int = 30) -> VehiclePlan:
    starts = tuple(T0 + timedelta(minutes=minutes * k) for k in range(len(power_kw)))
    return VehiclePlan(
        vehicle_id="car",
        start=T0,
        departure=T0 + timedelta(minutes=minutes * len(power_kw)),
        interval_starts=starts,
        hours=tuple(minutes / 60 for _ in power_kw),
        power_kw=tuple(power_kw),
        soc_start=0.5,
        soc_after=tuple(0.5 for _ in power_kw),
        target_soc=0.5,
        target_met=True,
    )


def test_plan_becomes_central_setpoints_with_signed_setpoint_and_negative_discharge_limit():
    profile = plan_to_v21_profile(_plan([3.0, -4.0, 0.0]), 62_001, "tx-1", 1, BOUNDS)
    periods = profile["chargingSchedule"][0]["chargingSchedulePeriod"]
    assert periods[0] == {
        "startPeriod": 0,
        "operationMode": "CentralSetpoint",
        "limit": 7000.0,
        "setpoint": 3000.0,
        "dischargeLimit": -5000.0,
    }
    assert periods[1]["setpoint"] == -4000.0 and periods[1]["startPeriod"] == 1800
    assert periods[2] == {"startPeriod": 3600, "operationMode": "Idle"}
    assert all(p.get("limit", 0) >= 0 for p in periods)  # no negative limit on 2.1
    _valid_21("SetChargingProfileRequest", {"evseId": 1, "chargingProfile": profile})


def test_same_plan_keeps_the_201_negative_limit_convention():
    plan = _plan([3.0, -4.0])
    old = to_tx_profile(plan, 62_001, "tx-1", 1)
    limits = [p["limit"] for p in old["chargingSchedule"][0]["chargingSchedulePeriod"]]
    assert limits == [3000.0, -4000.0]
    assert "operationMode" not in old["chargingSchedule"][0]["chargingSchedulePeriod"][0]


def test_station_without_central_setpoint_gets_charging_only_and_refuses_discharge():
    modes = frozenset({OperationMode.CHARGING_ONLY, OperationMode.IDLE})
    periods = plan_periods((T0,), (3.0,), T0, BOUNDS, modes=modes)
    assert periods[0].mode is OperationMode.CHARGING_ONLY and periods[0].limit_w == 3000.0
    with pytest.raises(ValueError, match="cannot discharge"):
        plan_periods((T0,), (-3.0,), T0, BOUNDS, modes=modes)


@pytest.mark.parametrize(
    ("period", "message"),
    [
        (V2xPeriod(0, OperationMode.IDLE, limit_w=10.0), "Idle takes no"),
        (V2xPeriod(0, OperationMode.CENTRAL_SETPOINT), "needs a setpoint"),
        (V2xPeriod(0, OperationMode.CENTRAL_FREQUENCY, limit_w=5.0), "needs a setpoint"),
        (V2xPeriod(0, OperationMode.CHARGING_ONLY), "needs a limit"),
        (V2xPeriod(0, OperationMode.CHARGING_ONLY, limit_w=5, setpoint_w=1), "ChargingOnly"),
        (V2xPeriod(0, OperationMode.LOCAL_FREQUENCY), "needs a v2xFreqWattCurve"),
        (
            V2xPeriod(0, OperationMode.CENTRAL_SETPOINT, setpoint_w=-6000, discharge_limit_w=-5000),
            "below dischargeLimit",
        ),
        (V2xPeriod(0, OperationMode.CENTRAL_SETPOINT, setpoint_w=8, limit_w=7), "above limit"),
        (V2xPeriod(0, OperationMode.EXTERNAL_LIMITS, limit_w=-1.0), "must not be negative"),
        (V2xPeriod(0, OperationMode.EXTERNAL_LIMITS, discharge_limit_w=1.0), "<= 0"),
        (
            V2xPeriod(0, OperationMode.CENTRAL_SETPOINT, setpoint_w=1, freq_watt=((49, 1),)),
            "LocalFrequency only",
        ),
    ],
)
def test_q_rules_per_operation_mode(period: V2xPeriod, message: str):
    assert any(message in e for e in period_errors(period))


def test_every_mode_has_an_acceptable_shape():
    shapes = [
        V2xPeriod(0, OperationMode.IDLE),
        V2xPeriod(0, OperationMode.CHARGING_ONLY, limit_w=1000),
        V2xPeriod(0, OperationMode.CENTRAL_SETPOINT, setpoint_w=-1000, discharge_limit_w=-2000),
        V2xPeriod(0, OperationMode.EXTERNAL_SETPOINT, limit_w=1000, discharge_limit_w=-1000),
        V2xPeriod(0, OperationMode.EXTERNAL_LIMITS, limit_w=1000, discharge_limit_w=-1000),
        central_frequency_period(-2000, BOUNDS),
        frequency_period([(49.0, -5000), (50.0, 0), (51.0, 7000)], BOUNDS, baseline_w=500),
        V2xPeriod(0, OperationMode.LOCAL_LOAD_BALANCING, limit_w=7000),
    ]
    assert {p.mode for p in shapes} == set(OperationMode)
    for period in shapes:
        assert period_errors(period) == [], period
        profile = v21_profile(
            [period],
            profile_id=5,
            stack_level=3,
            start_schedule="2026-12-06T08:00:00.000Z",
            duration_s=600,
            transaction_id="tx",
        )
        _valid_21("SetChargingProfileRequest", {"evseId": 1, "chargingProfile": profile})


def test_local_frequency_curve_is_clamped_to_the_ev_and_carries_the_baseline():
    period = frequency_period([(49.0, -9000), (50.0, 0), (51.0, 9000)], BOUNDS, baseline_w=-100)
    out = period.as_ocpp()
    assert out["operationMode"] == "LocalFrequency"
    assert out["v2xFreqWattCurve"][0] == {"frequency": 49.0, "power": -5000.0}
    assert out["v2xFreqWattCurve"][-1]["power"] == 7000.0
    assert out["v2xBaseline"] == -100.0
    with pytest.raises(ValueError, match="strictly increase"):
        frequency_period([(50.0, 0), (49.0, 1)], BOUNDS)
    with pytest.raises(ValueError, match="at most 20"):
        frequency_period([(45 + k * 0.1, 0) for k in range(21)], BOUNDS)


def test_schedule_update_for_dynamic_profiles_is_schema_valid_and_bounded():
    update = schedule_update(-9000, BOUNDS, reactive_var=300)
    assert update == {
        "setpoint": -5000.0,
        "limit": 7000.0,
        "dischargeLimit": -5000.0,
        "setpointReactive": 300.0,
    }
    _valid_21("UpdateDynamicScheduleRequest", {"chargingProfileId": 1, "scheduleUpdate": update})


def test_check_periods_needs_increasing_starts_from_zero():
    with pytest.raises(ValueError, match="start at 0"):
        check_periods([V2xPeriod(5, OperationMode.IDLE)])
    with pytest.raises(ValueError, match="must increase"):
        check_periods([V2xPeriod(0, OperationMode.IDLE), V2xPeriod(0, OperationMode.IDLE)])


powers = st.lists(
    st.floats(min_value=-20.0, max_value=20.0, allow_nan=False), min_size=1, max_size=48
)


@given(powers, st.floats(0, 22_000), st.floats(0, 22_000))
@settings(max_examples=150, deadline=None)
def test_property_setpoints_stay_within_limit_and_discharge_limit(kw, charge_w, discharge_w):
    bounds = PowerBounds(charge_w, discharge_w)
    starts = tuple(T0 + timedelta(minutes=5 * k) for k in range(len(kw)))
    try:
        periods = plan_periods(starts, kw, T0, bounds)
    except ValueError as exc:  # discharge asked of an EV that cannot: refused, never sent
        assert discharge_w == 0 and "cannot discharge" in str(exc)
        return
    check_periods(periods)
    for period in periods:
        if period.setpoint_w is not None:
            assert period.discharge_limit_w is not None and period.limit_w is not None
            assert period.discharge_limit_w <= period.setpoint_w <= period.limit_w
            assert period.discharge_limit_w >= -discharge_w - 0.05
        if period.limit_w is not None:
            assert 0 <= period.limit_w <= charge_w + 0.05


@given(st.lists(st.floats(min_value=-5.0, max_value=7.0, allow_nan=False), min_size=1, max_size=48))
@settings(max_examples=150, deadline=None)
def test_property_plan_energy_is_preserved_within_bounds(kw):
    plan = _plan(kw, minutes=15)
    periods = plan_periods(plan.interval_starts, plan.power_kw, plan.start, BOUNDS)
    duration = (plan.departure - plan.start).total_seconds()
    planned_wh = sum(p * 1000.0 * 0.25 for p in kw)
    # 0.1 W rounding per period over 15 minutes at most 0.0125 Wh each
    assert schedule_energy_wh(periods, duration) == pytest.approx(planned_wh, abs=0.02 * len(kw))


def test_capabilities_from_the_v2x_controller_variables():
    caps = v2x_capabilities(
        [
            ("V2XChargingCtrlr", "Enabled", "true"),
            ("V2XChargingCtrlr", "SupportedOperationModes", "ChargingOnly,CentralSetpoint,Bogus"),
            ("V2XChargingCtrlr", "SupportedEnergyTransferModes", "DC,DC_BPT"),
            ("OtherCtrlr", "SupportedOperationModes", "LocalFrequency"),
        ]
    )
    assert caps.operation_modes == {OperationMode.CHARGING_ONLY, OperationMode.CENTRAL_SETPOINT}
    assert caps.can_discharge and caps.frequency_mode() is None
    local = v2x_capabilities(
        [
            ("V2XChargingCtrlr", "Enabled", "true"),
            ("V2XChargingCtrlr", "SupportedOperationModes", "CentralFrequency,LocalFrequency"),
        ]
    )
    assert local.frequency_mode() is OperationMode.LOCAL_FREQUENCY
    assert v2x_capabilities([]).frequency_mode() is None
    # a member list longer than any enum is cut, not walked
    long = v2x_capabilities([("V2XChargingCtrlr", "SupportedOperationModes", "Idle," * 10**5)])
    assert long.operation_modes == {OperationMode.IDLE}


def test_ev_v2x_parameters_narrow_the_vehicle_bounds():
    needs = {
        "requestedEnergyTransfer": "DC_BPT",
        "availableEnergyTransfer": ["DC", "DC_BPT"],
        "v2xChargingParameters": {
            "maxChargePower": 11000,
            "maxDischargePower": 4000,
            "evMinV2XEnergyRequest": -5000,
            "evMaxV2XEnergyRequest": 30000,
        },
    }
    limits = ev_v2x_limits(needs)
    assert limits.max_discharge_kw == 4.0 and limits.min_v2x_energy_kwh == -5.0
    assert apply_ev_limits(7.0, 6.0, limits) == (7.0, 4.0)
    assert apply_ev_limits(7.0, 6.0, ev_v2x_limits({"availableEnergyTransfer": ["DC"]})) == (
        7.0,
        0.0,
    )
    wild = ev_v2x_limits({"v2xChargingParameters": {"maxDischargePower": 1e300}})
    assert wild.max_discharge_kw is None  # out of range: ignored, as if not sent


@given(
    soc=st.floats(0, 1),
    capacity=st.floats(1, 200),
    min_kwh=st.none() | st.floats(-200, 200),
    max_kwh=st.none() | st.floats(-200, 200),
)
def test_q_v2x_energy_requests_give_a_window_inside_0_1_never_inverted(
    soc: float, capacity: float, min_kwh: float | None, max_kwh: float | None
) -> None:
    window = v2x_energy_window(
        soc, capacity, EvV2xLimits(min_v2x_energy_kwh=min_kwh, max_v2x_energy_kwh=max_kwh)
    )
    for value in (window.floor, window.ceiling):
        assert value is None or 0.0 <= value <= 1.0
    if window.floor is not None and window.ceiling is not None:
        assert window.floor <= window.ceiling
    if min_kwh is not None and 0 <= soc + min_kwh / capacity <= 1:
        assert window.floor == pytest.approx(soc + min_kwh / capacity)


def test_q_v2x_energy_window_examples() -> None:
    limits = EvV2xLimits(min_v2x_energy_kwh=-6.0, max_v2x_energy_kwh=12.0)
    window = v2x_energy_window(0.5, 60.0, limits)
    assert window.floor == pytest.approx(0.4) and window.ceiling == pytest.approx(0.7)
    assert v2x_energy_window(0.5, 60.0, EvV2xLimits()) == SocWindow(None, None)
    with pytest.raises(ValueError):
        v2x_energy_window(0.5, 0.0, limits)


def _v21_period_schema() -> dict[str, object]:
    path = resources.files("ocpp") / "v21" / "schemas" / "SetChargingProfileRequest.json"
    return dict(json.loads(path.read_text(encoding="utf-8")))


@given(
    curve=st.lists(
        st.tuples(st.integers(-(2**31), 2**31 - 1), st.floats(-50_000, 50_000)),
        min_size=1,
        max_size=20,
        unique_by=lambda p: p[0],
    ).map(lambda points: sorted(points)),
    baseline=st.floats(-50_000, 50_000),
)
def test_q_afrr_period_is_central_frequency_with_a_curve_inside_the_bounds(
    curve: list[tuple[int, float]], baseline: float
) -> None:
    period = afrr_period(curve, BOUNDS, baseline_w=baseline)
    assert period.mode is OperationMode.CENTRAL_FREQUENCY
    assert period_errors(period) == []
    wire = period.as_ocpp()
    assert [p["signal"] for p in wire["v2xSignalWattCurve"]] == [s for s, _ in curve]
    for point in wire["v2xSignalWattCurve"]:
        assert -BOUNDS.max_discharge_w <= point["power"] <= BOUNDS.max_charge_w
    assert wire["setpoint"] == wire["v2xBaseline"]
    assert -BOUNDS.max_discharge_w <= wire["v2xBaseline"] <= BOUNDS.max_charge_w
    profile = v21_profile(
        [period], profile_id=1, stack_level=6, start_schedule="2026-12-06T08:00:00.000Z",
        duration_s=600, transaction_id="T1",
    )  # fmt: skip
    jsonschema.Draft6Validator(_v21_period_schema()).validate(
        {"evseId": 1, "chargingProfile": profile}
    )


@pytest.mark.parametrize(
    ("curve", "reason"),
    [
        ([], "at least one point"),
        ([(0, 1.0), (0, 2.0)], "strictly increase"),
        ([(5, 1.0), (-5, 2.0)], "strictly increase"),
        ([(k, 0.0) for k in range(21)], "at most 20"),
        ([(2**31, 0.0)], "32-bit"),
        ([(True, 0.0)], "32-bit"),
        ([(1, float("nan"))], "finite"),
    ],
)
def test_q_afrr_curve_refused_with_the_reason(curve: list[tuple[int, float]], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        afrr_period(curve, BOUNDS)


def test_q_signal_watt_curve_only_on_central_frequency() -> None:
    period = V2xPeriod(0, OperationMode.CENTRAL_SETPOINT, setpoint_w=0.0, signal_watt=((0, 1.0),))
    assert any("CentralFrequency" in e for e in period_errors(period))
