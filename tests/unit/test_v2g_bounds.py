"""Finding 11: the shared V2G bounds (csms/v2g/bounds.py), the pure model refusing what is
outside them, and the planner meeting every reachable target for any price in range."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from csms.v2g import bounds as b
from csms.v2g.departure import SessionRecord, days_by_weekday, predict_departure
from csms.v2g.optimizer import PlanError, PlanInputs, SiteLimits, optimize, plan_vehicle
from csms.v2g.prices import (
    NemTariff,
    PriceFileError,
    PriceSeries,
    parse_ausgrid_household,
    parse_nem_price_and_demand,
    parse_simple_prices,
)
from csms.v2g.vehicle import Vehicle, VehicleSession

START = datetime(2024, 8, 5, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 5e-324, 0.0, 1001.0, True])
def test_finding11_finite_in_range_refuses_and_names_the_input(value: float) -> None:
    with pytest.raises(b.BoundError, match="capacity_kwh"):
        b.finite_in_range(value, b.CAPACITY_KWH, "capacity_kwh")


def test_finding11_finite_in_range_accepts_the_edges() -> None:
    assert b.finite_in_range(1, b.CAPACITY_KWH, "x") == 1.0
    assert b.finite_in_range(1000.0, b.CAPACITY_KWH, "x") == 1000.0
    with pytest.raises(b.BoundError):
        b.finite_in_range(0.0, b.RESPONSE_TIME_S, "x")  # open at the low end


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("capacity_kwh", 5e-324),
        ("capacity_kwh", math.nan),
        ("max_charge_kw", math.inf),
        ("max_discharge_kw", math.nan),
        ("round_trip_efficiency", math.nan),
        ("round_trip_efficiency", 1e-9),
        ("degradation_c_kwh", math.nan),
        ("driving_reserve_soc", math.nan),
        ("soc_max", math.nan),
    ],
)
def test_finding11_vehicle_refuses_non_finite_and_near_zero(field: str, value: float) -> None:
    """The pure model itself refuses what would divide by ~0 or poison the LP, whoever calls."""
    args: dict[str, object] = {
        "vehicle_id": "ev",
        "capacity_kwh": 40.0,
        "max_charge_kw": 7.0,
        "max_discharge_kw": 7.0,
    }
    args[field] = value
    with pytest.raises(ValueError, match=field):
        Vehicle(**args)  # type: ignore[arg-type]


def test_finding11_session_refuses_nan_soc() -> None:
    with pytest.raises(ValueError, match="soc"):
        VehicleSession(Vehicle("ev", 40, 7, 7), math.nan, START + HOUR, 0.8)


@pytest.mark.parametrize("price", [math.nan, math.inf, 1e12, -1e12, 20_000.5])
def test_finding11_price_series_refuses_out_of_range_prices(price: float) -> None:
    with pytest.raises(ValueError, match=r"import_c_kwh\[1\]"):
        PriceSeries(START, HOUR, (1.0, price), (1.0, 1.0))


@pytest.mark.parametrize(
    ("field", "value"),
    [("retail_margin_c_kwh", math.nan), ("gst_rate", -2.0), ("export_offset_c_kwh", math.inf)],
)
def test_finding11_tariff_refuses_bad_parameters(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        NemTariff(**{field: value})


def test_finding11_widest_tariff_on_widest_rrp_stays_within_the_price_range() -> None:
    """The bounds are consistent: any RRP and tariff accepted give prices the planner takes."""
    tariff = NemTariff(b.TARIFF_ADDER_C_KWH.high, b.GST_RATE.high, b.TARIFF_ADDER_C_KWH.high)
    for rrp in (b.RRP_PER_MWH.low, b.RRP_PER_MWH.high):
        for price in (tariff.import_price(rrp), tariff.export_price(rrp)):
            b.PRICE_C_KWH.check(price, "price")


NEM_HEAD = "REGION,SETTLEMENTDATE,TOTALDEMAND,RRP,PERIODTYPE"


@pytest.mark.parametrize("rrp", ["nan", "inf", "-inf", "1e12", "-100001"])
def test_finding11_nem_parser_refuses_bad_rrp_with_line_and_column(rrp: str) -> None:
    text = "\n".join(
        [
            NEM_HEAD,
            "VIC1,2024/08/05 00:05:00,5000,80.5,TRADE",
            f"VIC1,2024/08/05 00:10:00,5000,{rrp},TRADE",
            "VIC1,2024/08/05 00:15:00,5000,81,TRADE",
        ]
    )
    with pytest.raises(PriceFileError, match=r"line 3, column RRP"):
        parse_nem_price_and_demand(text)


def test_finding11_simple_prices_refuse_far_times_and_tiny_intervals() -> None:
    far = "start,import_c_kwh\n9999-12-31T22:00Z,1\n9999-12-31T23:00Z,1\n"
    with pytest.raises(PriceFileError, match="outside 2000-2099"):
        parse_simple_prices(far)
    tiny = "start,import_c_kwh\n2024-08-05T00:00:00Z,1\n2024-08-05T00:00:01Z,1\n"
    with pytest.raises(PriceFileError, match="interval of 1 s"):
        parse_simple_prices(tiny)


def test_finding11_household_file_refuses_nan_with_line_and_column() -> None:
    text = ",GC,GG\n2024-08-05T00:00,0.5,0\n2024-08-05T00:30,nan,0\n"
    with pytest.raises(PriceFileError, match="line 3, column GC"):
        parse_ausgrid_household(text)


def test_finding11_plan_size_is_capped() -> None:
    """An LP bigger than MAX_PLAN_CELLS is refused at once, not left to run for minutes."""
    n = b.MAX_PLAN_CELLS + 1
    prices = PriceSeries(START, timedelta(minutes=1), (10.0,) * n, (5.0,) * n)
    session = VehicleSession(Vehicle("ev", 40, 7, 7), 0.5, START + n * timedelta(minutes=1), 0.8)
    with pytest.raises(PlanError, match="plan too large"):
        optimize(PlanInputs(START, prices, (session,)))


def test_finding11_weekday_counts_are_arithmetic() -> None:
    """predict_departure counted the days of each weekday by looping over every day between
    the first and last session (timestamps a station sends: up to 100 years); the count is
    now arithmetic and matches the loop."""
    for first in (date(2024, 8, 5), date(2024, 8, 10)):
        for span in range(0, 30):
            looped = {
                w: sum(1 for k in range(span) if (first + timedelta(days=k)).weekday() == w)
                for w in range(7)
            }
            assert days_by_weekday(first, span) == looped
    century = days_by_weekday(date(2000, 1, 1), 36_525)
    assert sum(century.values()) == 36_525


def test_finding11_departure_prediction_over_a_century_of_history() -> None:
    first = datetime(2000, 1, 3, 7, 0, tzinfo=UTC)  # a Monday
    records = [
        SessionRecord(first + timedelta(days=k, hours=-10), first + timedelta(days=k))
        for k in range(10)
    ]
    records.append(
        SessionRecord(datetime(2099, 12, 1, tzinfo=UTC), datetime(2099, 12, 31, 7, tzinfo=UTC))
    )
    # Rarely leaves on any weekday over such a span: no prediction, and an answer at once.
    assert predict_departure(records, datetime(2099, 12, 31, 8, tzinfo=UTC)) is None


# ---- the planner meets every reachable target for any price the bounds accept ----------------

price_st = st.floats(b.PRICE_C_KWH.low, b.PRICE_C_KWH.high, allow_nan=False)


@st.composite
def reachable_sessions(draw: st.DrawFn) -> tuple[VehicleSession, PriceSeries]:
    n = draw(st.integers(min_value=2, max_value=24))
    step = timedelta(minutes=draw(st.sampled_from([5, 30, 60])))
    imports = draw(
        st.lists(price_st | st.sampled_from([-20_000.0, 20_000.0]), min_size=n, max_size=n)
    )
    exports = draw(
        st.lists(price_st | st.sampled_from([-20_000.0, 20_000.0]), min_size=n, max_size=n)
    )
    capacity = draw(st.floats(b.CAPACITY_KWH.low, b.CAPACITY_KWH.high))
    charge = draw(st.floats(0.5, b.VEHICLE_POWER_KW.high))
    vehicle = Vehicle(
        "ev",
        capacity_kwh=capacity,
        max_charge_kw=charge,
        max_discharge_kw=draw(st.floats(0.0, b.VEHICLE_POWER_KW.high)),
        round_trip_efficiency=draw(st.floats(b.ROUND_TRIP_EFFICIENCY.low, 1.0)),
        driving_reserve_soc=draw(st.floats(0.0, 0.5)),
        soc_max=draw(st.floats(0.8, 1.0)),
        degradation_c_kwh=draw(st.none() | st.floats(0.0, b.DEGRADATION_C_KWH.high)),
    )
    soc = draw(st.floats(0.0, 1.0))
    hours = n * step.total_seconds() / 3600.0
    # The most SoC charging at full power from now to departure can give (the ceiling too).
    # (A target above soc_max is planned to soc_max with a warning: not drawn here.)
    best = min(vehicle.soc_max, soc + vehicle.charge_efficiency * charge * hours / capacity)
    target = draw(st.floats(0.0, 1.0)) * max(0.0, best - 1e-4)
    session = VehicleSession(vehicle, soc, START + n * step, target)
    return session, PriceSeries(START, step, tuple(imports), tuple(exports))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reachable_sessions())
def test_finding11_reachable_target_is_met_for_any_price_in_range(
    case: tuple[VehicleSession, PriceSeries],
) -> None:
    session, prices = case
    plan = plan_vehicle(session, prices, START)
    assert plan.target_met, plan.warnings
    assert plan.soc_at_departure >= session.target_soc - 1e-5


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("v2g_retail_margin_c_kwh", "nan"),
        ("v2g_export_offset_c_kwh", "inf"),
        ("v2g_gst_rate", "-2"),
        ("v2g_default_dwell_h", "inf"),
        ("v2g_house_load_kw", "nan"),
        ("v2g_frequency_discharge_kw", "inf"),
        ("v2g_max_horizon_h", "0"),
        ("v2g_max_horizon_h", "inf"),
        ("v2g_max_horizon_h", "100000"),
    ],
)
def test_finding11_v2g_settings_refuse_non_finite_and_out_of_range(name: str, value: str) -> None:
    from pydantic import ValidationError

    from csms.settings import Settings

    with pytest.raises(ValidationError, match=name):
        Settings(**{name: value})  # type: ignore[arg-type]


def test_finding11_settings_defaults_match_the_bounds() -> None:
    from csms.services.v2g import V2gSettings
    from csms.settings import Settings

    settings = Settings()
    assert settings.v2g_max_horizon_h == b.DEFAULT_MAX_HORIZON_H
    assert V2gSettings.from_settings(settings).max_horizon_h == b.DEFAULT_MAX_HORIZON_H
    assert V2gSettings().max_horizon_h == b.DEFAULT_MAX_HORIZON_H
    fields = Settings.model_fields
    limits = {
        type(m).__name__: getattr(m, type(m).__name__.lower())
        for m in fields["v2g_gst_rate"].metadata
    }
    assert limits["Le"] == b.GST_RATE.high


def test_finding11_ev_needs_from_a_station_are_bounded() -> None:
    """NotifyEVChargingNeeds is station data: far or naive times and out-of-range numbers are
    ignored and the target stays within 0..1 (they used to reach VehicleSession: a 500)."""
    from csms.services.v2g.rules import departure_from_needs

    def needs(**dc: object) -> dict[str, object]:
        return {
            "chargingNeeds": {"departureTime": "2024-08-05T10:00:00Z", "dcChargingParameters": dc}
        }

    departure, target = departure_from_needs(needs(stateOfCharge=40, energyAmount=-1e9), 40.0, None)
    assert departure == datetime(2024, 8, 5, 10, tzinfo=UTC) and target is None
    assert departure_from_needs(needs(fullSoC=1000), 40.0, None)[1] is None
    assert departure_from_needs(needs(stateOfCharge=90, energyAmount=1e6), 40.0, None)[1] == 1.0
    assert departure_from_needs(needs(stateOfCharge=50, energyAmount=4000), 40.0, None)[1] == 0.6
    far = {"chargingNeeds": {"departureTime": "9999-12-31T00:00:00Z"}}
    naive = {"chargingNeeds": {"departureTime": "2024-08-05T10:00:00"}}
    assert departure_from_needs(far, 40.0, 0.5) == (None, None)
    assert departure_from_needs(naive, 40.0, 0.5) == (None, None)


def test_finding11_site_limits_and_base_load_are_bounded() -> None:
    with pytest.raises(ValueError, match="import_limit_kw"):
        SiteLimits(import_limit_kw=math.inf)
    with pytest.raises(ValueError, match="export_limit_kw"):
        SiteLimits(export_limit_kw=math.nan)
    prices = PriceSeries(START, HOUR, (10.0, 20.0), (5.0, 5.0))
    session = VehicleSession(Vehicle("ev", 40, 7, 7), 0.5, START + 2 * HOUR, 0.8)
    with pytest.raises(ValueError, match=r"site_base_kw\[1\]"):
        PlanInputs(START, prices, (session,), site_base_kw=(1.0, math.nan))


def test_finding11_a_nan_that_slips_past_the_bounds_is_refused_not_solved() -> None:
    """HiGHS given a NaN wear cost spun without end (`--degradation-c-kwh nan` never
    returned). Inputs are bounded first; should one slip through, the model is refused."""
    vehicle = Vehicle("ev", 40, 7, 7, degradation_c_kwh=2.0)
    object.__setattr__(vehicle, "degradation_c_kwh", math.nan)  # what the bounds now stop
    prices = PriceSeries(START, HOUR, (10.0, 20.0), (5.0, 5.0))
    session = VehicleSession(vehicle, 0.5, START + 2 * HOUR, 0.8)
    with pytest.raises(PlanError, match="non-finite"):
        plan_vehicle(session, prices, START)
