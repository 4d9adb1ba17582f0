"""A station's evse-0 Inlet meter as the site's household meter (issue 18,
csms.domain.inlet_meter): Import minus Export is the net import; units, phases, registers; only
evse 0 at the Inlet counts; out of bounds is dropped, never clipped. And the other side:
evse-0 values are never counted as the station's own (charger) power
(csms.domain.csip_telemetry)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csms.domain import csip_telemetry as ct
from csms.domain.csip_telemetry import Sample
from csms.domain.inlet_meter import (
    ENERGY_EXPORT,
    ENERGY_IMPORT,
    REGISTER_MAX_INTERVAL_S,
    REGISTER_MIN_INTERVAL_S,
    inlet_reading,
    power_from_registers,
)
from csms.domain.site_meter import MAX_METER_W
from csms.domain.sites import Site

T = datetime(2026, 12, 7, 18, 0, tzinfo=UTC)
IMPORT, EXPORT = ct.POWER_ACTIVE_IMPORT, ct.POWER_ACTIVE_EXPORT


def inlet(measurand: str, value: float, at: datetime = T, **kw: object) -> Sample:
    fields: dict[str, object] = {"evse_id": 0, "location": "Inlet", **kw}
    return Sample("CS1", at, measurand, value, **fields)  # type: ignore[arg-type]


watts = st.floats(min_value=0, max_value=MAX_METER_W / 4, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(imported=watts, exported=watts)
def test_import_minus_export_is_grid_import(imported: float, exported: float) -> None:
    reading = inlet_reading([inlet(IMPORT, imported), inlet(EXPORT, exported)])
    assert reading is not None and not reading.from_registers
    assert reading.measured_at == T
    assert reading.grid_import_w == imported - exported


@settings(max_examples=200, deadline=None)
@given(phases=st.lists(watts, min_size=1, max_size=3), exported_kw=st.floats(0, 100))
def test_phases_are_summed_and_kw_scaled(phases: list[float], exported_kw: float) -> None:
    samples = [inlet(IMPORT, w, phase=f"L{k + 1}") for k, w in enumerate(phases)]
    samples.append(inlet(EXPORT, exported_kw, unit="kW"))
    reading = inlet_reading(samples)
    assert reading is not None
    assert reading.grid_import_w == pytest.approx(sum(phases) - exported_kw * 1000.0)


def test_the_newest_timestamp_is_the_reading() -> None:
    older = T - timedelta(seconds=10)
    reading = inlet_reading([inlet(IMPORT, 500, at=older), inlet(IMPORT, 1200), inlet(EXPORT, 0)])
    assert reading is not None and (reading.measured_at, reading.grid_import_w) == (T, 1200)


@pytest.mark.parametrize(
    "other",
    [
        {"evse_id": 1},  # a charger's own meter
        {"evse_id": None},
        {"location": "Outlet"},
        {"location": None},  # OCPP's default location is the Outlet
        {"location": "EV"},
    ],
)
def test_only_evse_0_at_the_inlet_counts(other: dict[str, object]) -> None:
    assert inlet_reading([inlet(IMPORT, 3000, **other)]) is None
    mixed = inlet_reading([inlet(IMPORT, 3000, **other), inlet(IMPORT, 800)])
    assert mixed is not None and mixed.grid_import_w == 800


@settings(max_examples=200, deadline=None)
@given(
    value=st.one_of(
        st.floats(min_value=MAX_METER_W * 1.0001, max_value=1e15),
        st.just(float("inf")),
        st.just(float("nan")),
    ),
    measurand=st.sampled_from([IMPORT, EXPORT]),
)
def test_out_of_bounds_is_dropped_not_clipped(value: float, measurand: str) -> None:
    assert inlet_reading([inlet(measurand, value)]) is None


def test_unknown_unit_is_no_value() -> None:
    assert inlet_reading([inlet(IMPORT, 3, unit="MW")]) is None


# ---- energy registers ---------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    power_w=st.floats(min_value=-MAX_METER_W / 2, max_value=MAX_METER_W / 2),
    interval_s=st.floats(min_value=REGISTER_MIN_INTERVAL_S, max_value=REGISTER_MAX_INTERVAL_S),
    start_wh=st.floats(min_value=0, max_value=1e9),
)
def test_registers_give_the_mean_power(power_w: float, interval_s: float, start_wh: float) -> None:
    energy_wh = abs(power_w) * interval_s / 3600.0
    later = T + timedelta(seconds=interval_s)
    interval_s = (later - T).total_seconds()  # what a datetime holds (microseconds)
    imported = energy_wh if power_w >= 0 else 0.0
    exported = energy_wh if power_w < 0 else 0.0
    samples = [
        inlet(ENERGY_IMPORT, start_wh),
        inlet(ENERGY_EXPORT, start_wh),
        inlet(ENERGY_IMPORT, start_wh + imported, at=later),
        inlet(ENERGY_EXPORT, start_wh + exported, at=later),
    ]
    reading = inlet_reading(samples)
    assert reading is not None and reading.from_registers and reading.measured_at == later
    expected = ((start_wh + imported - start_wh) - (start_wh + exported - start_wh)) * 3600
    assert reading.grid_import_w == pytest.approx(expected / interval_s, rel=1e-6, abs=1e-3)


def test_registers_in_kwh() -> None:
    later = T + timedelta(seconds=60)
    reading = inlet_reading(
        [inlet(ENERGY_IMPORT, 10, unit="kWh"), inlet(ENERGY_IMPORT, 10.05, at=later, unit="kWh")]
    )
    assert reading is not None and reading.grid_import_w == pytest.approx(3000.0)


@pytest.mark.parametrize(
    ("earlier", "later"),
    [
        ((T, 1000.0, None), (T + timedelta(seconds=60), 900.0, None)),  # import went backwards
        ((T, 1000.0, 50.0), (T + timedelta(seconds=60), 1100.0, 40.0)),  # export did
        ((T, 1000.0, 50.0), (T + timedelta(seconds=60), 1100.0, None)),  # export vanished
        ((T, 1000.0, None), (T + timedelta(seconds=0.5), 1001.0, None)),  # too close
        ((T, 1000.0, None), (T + timedelta(seconds=REGISTER_MAX_INTERVAL_S + 1), 1001.0, None)),
        ((T, 0.0, None), (T + timedelta(seconds=1), 1e9, None)),  # 3.6 GW: no meter reading
    ],
)
def test_registers_that_give_no_power(
    earlier: tuple[datetime, float, float | None], later: tuple[datetime, float, float | None]
) -> None:
    assert power_from_registers(earlier, later) is None


def test_one_register_reading_is_no_power_and_power_wins_over_registers() -> None:
    assert inlet_reading([inlet(ENERGY_IMPORT, 1000)]) is None
    later = T + timedelta(seconds=60)
    reading = inlet_reading(
        [
            inlet(ENERGY_IMPORT, 1000),
            inlet(ENERGY_IMPORT, 1050, at=later),
            inlet(IMPORT, 2500, at=later),
        ]
    )
    assert reading is not None and not reading.from_registers and reading.grid_import_w == 2500


# ---- evse 0 is not a charger --------------------------------------------------------------


END = T + timedelta(minutes=1)


def charger(measurand: str, value: float, evse_id: int | None = 1, **kw: object) -> Sample:
    return Sample("CS1", T + timedelta(seconds=30), measurand, value, evse_id=evse_id, **kw)  # type: ignore[arg-type]


main_meter = st.builds(
    lambda m, v, loc, sec: Sample("CS1", T + timedelta(seconds=sec), m, v, location=loc, evse_id=0),
    st.sampled_from(ct.MEASURANDS),
    st.floats(min_value=0, max_value=1e5),
    st.sampled_from([None, "Inlet", "Outlet"]),
    st.integers(0, 59),
)


@settings(max_examples=300, deadline=None)
@given(extra=st.lists(main_meter, max_size=12), charging_w=st.floats(0, 22_000))
def test_evse_0_samples_do_not_change_the_stations_own_power(
    extra: list[Sample], charging_w: float
) -> None:
    own = [charger(IMPORT, charging_w), charger(EXPORT, 0.0), charger(ct.VOLTAGE, 230.0)]
    alone = ct.station_der_readings(own, T, END, 300)
    assert alone[0] == -charging_w
    assert ct.station_der_readings([*own, *extra], T, END, 300) == alone


def test_a_main_meter_inlet_does_not_replace_the_chargers_outlet() -> None:
    # Before: an evse-0 Inlet sample was preferred over the charger's Outlet one (Inlet wins
    # in csip_telemetry._series), reporting the household's 9 kW as the car's.
    own = [charger(IMPORT, 4000.0, location="Outlet")]
    house = [Sample("CS1", T + timedelta(seconds=30), IMPORT, 9000.0, location="Inlet", evse_id=0)]
    assert ct.station_der_readings([*own, *house], T, END, 300)[0] == -4000.0
    assert ct.station_der_readings(house, T, END, 300) == (None, None, None)


# ---- the site's choice --------------------------------------------------------------------


def test_the_meter_station_must_be_one_of_the_sites() -> None:
    assert Site("home", "Home", station_ids=("CS1",), meter_station_id="CS1").meter_station_id
    with pytest.raises(ValueError, match=r"meter_source\.station_id"):
        Site("home", "Home", station_ids=("CS1",), meter_station_id="CS2")
    with pytest.raises(ValueError, match=r"meter_source\.station_id"):
        Site("home", "Home", meter_station_id="CS1")
