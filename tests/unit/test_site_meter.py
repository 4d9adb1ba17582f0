"""The household meter (issue 18, csms.domain.site_meter): readings, the site base, the
chargers' bounds under it. Properties: with a fresh meter the chargers' bounds keep the site
within the envelope for any load and solar (and any unknown station's power within its rating);
with a stale meter the bounds are never looser than the chargers-alone rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csms.domain.csip_telemetry import DerReadings, site_from_meter
from csms.domain.envelopes import (
    OperatingEnvelope,
    charger_bounds,
    envelope_timeline,
    station_timelines,
)
from csms.domain.site_meter import (
    CHARGERS_ALONE,
    MAX_METER_W,
    BaseInterval,
    ChargerPower,
    MeterReadingError,
    SiteBase,
    age_s,
    base_interval,
    changed_materially,
    is_fresh,
    metered_charger_bounds,
    metered_station_timelines,
    reading_from,
    site_base,
    tightens,
)

T0 = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
EPS = 1e-6


def envelope(**limits: float | bool | None) -> OperatingEnvelope:
    return OperatingEnvelope(
        site_id="home",
        source="operator",
        control_id=None,
        is_default=False,
        start=T0,
        end=None,
        received_at=T0,
        **limits,  # type: ignore[arg-type]
    )


# ---- readings -----------------------------------------------------------------------------


def test_reading_as_net_import_or_load_minus_solar() -> None:
    net = reading_from("home", measured_at=T0, received_at=T0, source="api", grid_import_w=-2500.0)
    assert net.grid_import_w == -2500.0 and net.load_w is None
    parts = reading_from(
        "home", measured_at=T0, received_at=T0, source="api", load_w=1800.0, solar_w=4300.0
    )
    assert parts.grid_import_w == -2500.0
    assert (parts.load_w, parts.solar_w) == (1800.0, 4300.0)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "both load_w and solar_w"),
        ({"solar_w": 100.0}, "both load_w and solar_w"),
        ({"grid_import_w": 1.0, "load_w": 1.0}, "not both"),
        ({"grid_import_w": float("nan")}, "finite"),
        ({"grid_import_w": float("inf")}, "finite"),
        ({"grid_import_w": MAX_METER_W * 2}, "W, got"),
        ({"load_w": -1.0, "solar_w": 0.0}, "load_w must be"),
        ({"load_w": 1.0, "solar_w": -5.0}, "solar_w must be"),
    ],
)
def test_bad_readings_are_refused(fields: dict[str, float], message: str) -> None:
    with pytest.raises(MeterReadingError, match=message):
        reading_from("home", measured_at=T0, received_at=T0, source="api", **fields)


def test_a_reading_from_the_future_or_without_a_zone_is_refused() -> None:
    with pytest.raises(MeterReadingError, match="future"):
        reading_from(
            "home",
            measured_at=T0 + timedelta(seconds=61),
            received_at=T0,
            source="api",
            grid_import_w=0.0,
        )
    with pytest.raises(MeterReadingError, match="timezone"):
        reading_from(
            "home",
            measured_at=T0.replace(tzinfo=None),
            received_at=T0,
            source="api",
            grid_import_w=0.0,
        )
    with pytest.raises(MeterReadingError, match="source"):
        reading_from("home", measured_at=T0, received_at=T0, source="x", grid_import_w=0.0)


def test_freshness_is_the_age_against_the_limit() -> None:
    r = reading_from("home", measured_at=T0, received_at=T0, source="api", grid_import_w=0.0)
    assert age_s(r, T0 + timedelta(seconds=30)) == 30.0
    assert age_s(r, T0 - timedelta(seconds=5)) == 0.0  # stamped slightly ahead
    assert is_fresh(r, T0 + timedelta(seconds=60), 60.0)
    assert not is_fresh(r, T0 + timedelta(seconds=60.5), 60.0)
    assert not is_fresh(None, T0, 60.0)


# ---- the base -------------------------------------------------------------------------------


def test_base_is_the_reading_minus_the_chargers() -> None:
    # The meter reads 5 kW import; the car charges at 7 kW: the house exports 2 kW (solar).
    found = base_interval(5000.0, [ChargerPower(7000.0, 7400.0, 7400.0)])
    assert found == BaseInterval(-2000.0, -2000.0, 7000.0, 0)


def test_an_unknown_station_widens_the_base_by_its_ratings() -> None:
    found = base_interval(
        1000.0, [ChargerPower(-3000.0, 7400.0, 7400.0), ChargerPower(None, 11000.0, 5000.0)]
    )
    # known: the first discharges 3 kW; the second anywhere in [-5000, +11000]
    assert found.low_w == 1000.0 + 3000.0 - 11000.0
    assert found.high_w == 1000.0 + 3000.0 + 5000.0
    assert found.chargers_w == -3000.0 and found.unknown_stations == 1


def test_fresh_base_keeps_the_margin_stale_only_tightens_none_is_chargers_alone() -> None:
    interval = BaseInterval(-1500.0, -1000.0, 0.0, 0)
    assert site_base(interval, fresh=True, margin_w=300.0) == SiteBase(-700.0, -1800.0, True)
    # Stale with solar exporting: import side back to chargers alone (solar may be gone),
    # export side keeps the tighter last base.
    assert site_base(interval, fresh=False, margin_w=300.0) == SiteBase(0.0, -1500.0, False)
    loaded = BaseInterval(2000.0, 2500.0, 0.0, 0)
    assert site_base(loaded, fresh=False, margin_w=300.0) == SiteBase(2500.0, 0.0, False)
    assert site_base(None, fresh=True, margin_w=300.0) == CHARGERS_ALONE


def test_solar_lets_the_chargers_charge_more_and_load_lets_them_discharge_more() -> None:
    e = envelope(import_limit_w=5000.0, export_limit_w=5000.0)
    solar = SiteBase(-3000.0, -3000.0, True)
    assert metered_charger_bounds(e, 20000.0, 20000.0, solar).max_charge_w == 8000.0
    assert metered_charger_bounds(e, 20000.0, 20000.0, solar).max_discharge_w == 2000.0
    load = SiteBase(4000.0, 4000.0, True)
    assert metered_charger_bounds(e, 20000.0, 20000.0, load).max_charge_w == 1000.0
    assert metered_charger_bounds(e, 20000.0, 20000.0, load).max_discharge_w == 9000.0
    assert metered_charger_bounds(e, 20000.0, 20000.0, None) == charger_bounds(e, 2e4, 2e4)


def test_changed_materially_is_the_hysteresis_in_either_direction() -> None:
    assert not changed_materially(None, (0.0, 0.0), 300.0)
    assert changed_materially(None, (10.0, 0.0), 300.0)
    assert not changed_materially((1000.0, 400.0), (1299.0, 101.0), 300.0)
    assert changed_materially((1000.0, 400.0), (1000.0, 100.0), 300.0)
    assert changed_materially((1000.0, 400.0), (700.0, 400.0), 300.0)


def test_tightens_is_any_direction_getting_tighter() -> None:
    assert tightens((100.0, -100.0), (101.0, -100.0))  # more charge base: less charge
    assert tightens((100.0, -100.0), (100.0, -101.0))  # lower discharge base: less discharge
    assert not tightens((100.0, -100.0), (0.0, 0.0))
    assert tightens(None, (1.0, 0.0)) and not tightens(None, (0.0, 0.0))


def test_metered_timelines_match_the_unmetered_ones_without_a_base() -> None:
    e = envelope(export_limit_w=5000.0, import_limit_w=6000.0)
    timeline = envelope_timeline([e], T0)
    ratings = [(7400.0, 7400.0), (11000.0, 11000.0)]
    assert metered_station_timelines(timeline, ratings, None) == station_timelines(
        timeline, ratings
    )
    same = SiteBase(800.0, 800.0, True)
    assert metered_station_timelines(timeline, ratings, same) == station_timelines(
        timeline, ratings, 800.0
    )


def test_csip_site_power_is_the_meters_when_known() -> None:
    der = DerReadings(watts=3000.0, vars=200.0, volts=240.0, stations=1)
    assert site_from_meter(der, None).watts == -3000.0  # the DER alone
    metered = site_from_meter(der, 1200.0)
    assert (metered.watts, metered.vars, metered.volts) == (1200.0, None, 240.0)


# ---- properties ---------------------------------------------------------------------------

watts = st.floats(min_value=0.0, max_value=50_000.0, allow_nan=False)
limits = st.one_of(st.none(), watts)
station = st.tuples(
    st.one_of(st.none(), st.floats(-1.0, 1.0)),  # power as a share of its rating; None unknown
    st.floats(1000.0, 22_000.0),
    st.floats(1000.0, 22_000.0),
)


@settings(max_examples=400, deadline=None)
@given(
    import_limit=limits,
    export_limit=limits,
    load=watts,
    solar=watts,
    stations=st.lists(station, min_size=1, max_size=4),
    actual_shares=st.lists(st.floats(-1.0, 1.0), min_size=4, max_size=4),
    margin=st.floats(0.0, 1000.0),
    drift=st.floats(-1.0, 1.0),
)
def test_fresh_meter_bounds_keep_the_site_within_the_envelope(
    import_limit: float | None,
    export_limit: float | None,
    load: float,
    solar: float,
    stations: list[tuple[float | None, float, float]],
    actual_shares: list[float],
    margin: float,
    drift: float,
) -> None:
    """Any household load and solar, any charger powers (an unknown one anywhere within its
    rating), the household moving by less than the margin since: the chargers at their bounds
    keep the site's import and export within the limits, unless the household alone already
    exceeds a limit (then the chargers are held at 0 in that direction)."""
    e = envelope(import_limit_w=import_limit, export_limit_w=export_limit)
    chargers = []
    actual_power = 0.0
    for (share_, rated_c, rated_d), actual in zip(stations, actual_shares, strict=False):
        known = share_ if share_ is not None else actual
        power = known * (rated_c if known >= 0 else rated_d)
        actual_power += power
        reported = None if share_ is None else power
        chargers.append(ChargerPower(reported, rated_c, rated_d))
    household = load - solar  # what the rest of the site draws
    reading = household + actual_power  # the meter sees the chargers too
    base = site_base(base_interval(reading, chargers), fresh=True, margin_w=margin)
    rated_c = sum(c.rated_charge_w for c in chargers)
    rated_d = sum(c.rated_discharge_w for c in chargers)
    bounds = metered_charger_bounds(e, rated_c, rated_d, base)
    now_household = household + drift * margin  # moved by at most the margin
    if import_limit is not None and bounds.max_charge_w > 0:
        assert now_household + bounds.max_charge_w <= import_limit + EPS
    if export_limit is not None and bounds.max_discharge_w > 0:
        assert bounds.max_discharge_w - now_household <= export_limit + EPS
    assert 0 <= bounds.max_charge_w <= rated_c + EPS
    assert 0 <= bounds.max_discharge_w <= rated_d + EPS


@settings(max_examples=400, deadline=None)
@given(
    import_limit=limits,
    export_limit=limits,
    generation_limit=limits,
    load_limit=limits,
    low=st.floats(-50_000.0, 50_000.0),
    width=st.floats(0.0, 20_000.0),
    rated_c=watts,
    rated_d=watts,
)
def test_stale_meter_bounds_are_never_looser_than_the_chargers_alone(
    import_limit: float | None,
    export_limit: float | None,
    generation_limit: float | None,
    load_limit: float | None,
    low: float,
    width: float,
    rated_c: float,
    rated_d: float,
) -> None:
    e = envelope(
        import_limit_w=import_limit,
        export_limit_w=export_limit,
        generation_limit_w=generation_limit,
        load_limit_w=load_limit,
    )
    stale = site_base(BaseInterval(low, low + width, 0.0, 0), fresh=False, margin_w=300.0)
    alone = charger_bounds(e, rated_c, rated_d)
    found = metered_charger_bounds(e, rated_c, rated_d, stale)
    assert found.max_charge_w <= alone.max_charge_w + EPS
    assert found.max_discharge_w <= alone.max_discharge_w + EPS
    # and the station shares under it are never looser either
    timeline = envelope_timeline([e], T0)
    ratings = [(rated_c / 2, rated_d / 2), (rated_c / 2, rated_d / 2)]
    for metered, plain in zip(
        metered_station_timelines(timeline, ratings, stale),
        station_timelines(timeline, ratings),
        strict=True,
    ):
        for m, p in zip(metered, plain, strict=True):
            assert m.bounds.max_charge_w <= p.bounds.max_charge_w + EPS
            assert m.bounds.max_discharge_w <= p.bounds.max_discharge_w + EPS
