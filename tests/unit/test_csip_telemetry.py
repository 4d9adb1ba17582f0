"""CSIP-AUS telemetry from meter values (csms.domain.csip_telemetry): sign conventions, units,
phases, locations, freshness, bounds, reporting periods, mRIDs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from csms.domain import csip_telemetry as ct
from csms.domain.csip_telemetry import Quantity, Role, Sample

END = datetime(2026, 12, 6, 22, 0, tzinfo=UTC)
START = END - timedelta(minutes=1)


def s(measurand: str, value: float, age_s: float = 30, **kw: object) -> Sample:
    return Sample(
        station_id=str(kw.pop("station", "cp1")),
        timestamp=END - timedelta(seconds=age_s),
        measurand=measurand,
        value=value,
        **kw,  # type: ignore[arg-type]
    )


def der(samples: list[Sample], max_age_s: float = 300) -> ct.DerReadings:
    by_station: dict[str, list[Sample]] = {}
    for x in samples:
        by_station.setdefault(x.station_id, []).append(x)
    return ct.der_readings(by_station, START, END, max_age_s)


def test_discharging_car_is_positive_der_power_and_site_export() -> None:
    # OCPP Power.Active.Export = from the EV; the DER (generator convention) is positive, the
    # site (load convention, flowDirection forward) negative: it exports.
    readings = der([s(ct.POWER_ACTIVE_EXPORT, 3000), s(ct.POWER_ACTIVE_IMPORT, 0)])
    assert readings.watts == 3000
    site = ct.site_from_der(readings)
    assert site.watts == -3000


def test_charging_car_is_negative_der_power_and_site_import() -> None:
    readings = der([s(ct.POWER_ACTIVE_IMPORT, 7, unit="kW")])
    assert readings.watts == -7000
    assert ct.site_from_der(readings).watts == 7000


def test_signed_import_only_station() -> None:
    # A station that sends only Power.Active.Import, negative while discharging.
    assert der([s(ct.POWER_ACTIVE_IMPORT, -2500)]).watts == 2500


def test_reactive_power_and_voltage() -> None:
    readings = der(
        [
            s(ct.POWER_REACTIVE_IMPORT, 400, unit="var"),
            s(ct.POWER_REACTIVE_EXPORT, 1, unit="kvar"),
            s(ct.VOLTAGE, 231.5, unit="V"),
        ]
    )
    assert readings.vars == 600
    assert readings.volts == 231.5
    site = ct.site_from_der(readings)
    assert (site.vars, site.volts) == (-600, 231.5)


def test_values_are_averaged_over_the_period() -> None:
    readings = der(
        [
            s(ct.POWER_ACTIVE_EXPORT, 1000, age_s=50),
            s(ct.POWER_ACTIVE_EXPORT, 3000, age_s=10),
            s(ct.POWER_ACTIVE_EXPORT, 9999, age_s=0),  # stamped at END: next period
        ]
    )
    assert readings.watts == 2000


def test_a_quiet_station_holds_its_latest_value_while_fresh() -> None:
    assert der([s(ct.POWER_ACTIVE_EXPORT, 1500, age_s=200)], max_age_s=300).watts == 1500
    stale = der([s(ct.POWER_ACTIVE_EXPORT, 1500, age_s=400)], max_age_s=300)
    assert stale.watts is None and stale.empty and stale.stations == 0


def test_future_stamped_samples_are_dropped() -> None:
    assert der([s(ct.POWER_ACTIVE_EXPORT, 1500, age_s=-3600)]).empty


def test_phases_sum_for_power_and_average_for_voltage() -> None:
    readings = der(
        [
            s(ct.POWER_ACTIVE_EXPORT, 1000, phase="L1"),
            s(ct.POWER_ACTIVE_EXPORT, 1100, phase="L2"),
            s(ct.POWER_ACTIVE_EXPORT, 1200, phase="L3"),
            s(ct.VOLTAGE, 230, phase="L1-N"),
            s(ct.VOLTAGE, 240, phase="L2-N"),
            s(ct.VOLTAGE, 400, phase="L1-L2"),  # line to line: another quantity
        ]
    )
    assert readings.watts == 3300
    assert readings.volts == 235


def test_phase_less_total_wins_over_phases() -> None:
    readings = der([s(ct.POWER_ACTIVE_EXPORT, 3000), s(ct.POWER_ACTIVE_EXPORT, 999, phase="L1")])
    assert readings.watts == 3000


def test_ev_side_measurements_are_not_the_connection_point() -> None:
    readings = der(
        [
            s(ct.POWER_ACTIVE_EXPORT, 5000, location="EV"),
            s(ct.POWER_ACTIVE_EXPORT, 4800, location="Outlet"),
        ]
    )
    assert readings.watts == 4800
    inlet = der(
        [
            s(ct.POWER_ACTIVE_EXPORT, 4800, location="Outlet"),
            s(ct.POWER_ACTIVE_EXPORT, 4700, location="Inlet"),
        ]
    )
    assert inlet.watts == 4700


def test_unknown_units_are_dropped() -> None:
    assert der([s(ct.POWER_ACTIVE_EXPORT, 3000, unit="A")]).empty
    assert der([s(ct.VOLTAGE, 0.23, unit="kV")]).empty


@pytest.mark.parametrize(
    "sample",
    [
        s(ct.POWER_ACTIVE_EXPORT, 2e6),  # 2 MW from one station
        s(ct.POWER_ACTIVE_IMPORT, float("nan")),
        s(ct.POWER_ACTIVE_EXPORT, float("inf")),
        s(ct.VOLTAGE, 0),  # a dead meter
        s(ct.VOLTAGE, 20_000),
    ],
)
def test_absurd_values_are_dropped_not_clipped(sample: Sample) -> None:
    assert der([sample]).empty


def test_stations_are_summed_voltage_averaged() -> None:
    readings = der(
        [
            s(ct.POWER_ACTIVE_EXPORT, 3000, station="a"),
            s(ct.POWER_ACTIVE_IMPORT, 1000, station="b"),
            s(ct.VOLTAGE, 230, station="a"),
            s(ct.VOLTAGE, 236, station="b"),
            s(ct.VOLTAGE, 236, station="c", age_s=4000),  # stale: not counted
        ]
    )
    assert (readings.watts, readings.volts, readings.stations) == (2000, 233, 2)


def test_period_must_end_after_start() -> None:
    with pytest.raises(ValueError):
        ct.der_readings({}, END, END, 60)


def test_reading_values_per_role() -> None:
    d = ct.DerReadings(watts=3000, vars=None, volts=230.04, stations=1)
    site = ct.site_from_der(d)
    assert ct.reading_values(Role.DER, site, d) == {
        Quantity.ACTIVE_POWER: 3000,
        Quantity.VOLTAGE: 230.04,
    }
    assert ct.reading_values(Role.SITE, site, d)[Quantity.ACTIVE_POWER] == -3000


def test_reading_specs_are_csip_aus_annex_a() -> None:
    # uom 38 W, 63 var, 29 V; kind 37 power; dataQualifier 2 average (CACTUS readings-* checks)
    assert {(x.quantity, x.uom) for x in ct.READING_SPECS} == {
        (Quantity.ACTIVE_POWER, 38),
        (Quantity.REACTIVE_POWER, 63),
        (Quantity.VOLTAGE, 29),
    }
    assert {(x.kind, x.data_qualifier) for x in ct.READING_SPECS} == {(37, 2)}
    # roleFlags: site = isMirror|isPremisesAggregationPoint, DER = isMirror|isDER|isSubmeter
    assert (Role.SITE.role_flags, Role.DER.role_flags) == (0x03, 0x49)
    assert (Role.SITE.flow_direction, Role.DER.flow_direction) == (1, 19)


def test_scaled_value_uses_the_power_of_ten() -> None:
    volts = next(x for x in ct.READING_SPECS if x.quantity is Quantity.VOLTAGE)
    assert ct.scaled_value(230.04, volts) == 2300  # 0.1 V resolution
    watts = next(x for x in ct.READING_SPECS if x.quantity is Quantity.ACTIVE_POWER)
    assert ct.scaled_value(-1499.6, watts) == -1500
    with pytest.raises(ValueError):
        ct.scaled_value(2.0**48, watts)


def test_mrid_is_stable_128_bit_hex_ending_in_the_pen() -> None:
    lfdi = "ab" * 20
    one = ct.mrid(lfdi, Role.SITE, Quantity.ACTIVE_POWER, 12345)
    assert one == ct.mrid(lfdi.upper(), Role.SITE, Quantity.ACTIVE_POWER, 12345)
    assert len(one) == 32 and int(one, 16) >= 0
    assert int(one[-8:]) == 12345  # what CACTUS reads back as the PEN (decimal)
    others = {
        ct.mrid(lfdi, Role.DER, Quantity.ACTIVE_POWER, 12345),
        ct.mrid(lfdi, Role.SITE, Quantity.VOLTAGE, 12345),
        ct.mrid(lfdi, Role.SITE, None, 12345),
        ct.mrid("cd" * 20, Role.SITE, Quantity.ACTIVE_POWER, 12345),
    }
    assert one not in others and len(others) == 4
    with pytest.raises(ValueError):
        ct.mrid(lfdi, Role.SITE, None, 10**8)


@pytest.mark.parametrize(
    ("server", "bounded"),
    [(None, 300), (0, 300), (-5, 300), (1, 60), (60, 60), (61, 120), (300, 300), (10**9, 3600)],
)
def test_post_rate_is_bounded_to_whole_minutes(server: int | None, bounded: int) -> None:
    assert ct.bounded_post_rate(server) == bounded


def test_next_period_covers_whole_minutes_since_the_last_one() -> None:
    now = END + timedelta(seconds=7, microseconds=5)
    assert ct.next_period(now, None, 60) == (END - timedelta(minutes=1), END)
    assert ct.next_period(now, None, 300) == (END - timedelta(minutes=5), END)
    # Already reported up to END: nothing due until a post rate later.
    assert ct.next_period(now, END, 60) is None
    assert ct.next_period(now + timedelta(minutes=1), END, 60) == (
        END,
        END + timedelta(minutes=1),
    )
    assert ct.next_period(now + timedelta(minutes=2), END, 300) is None
    # After a gap the period is one post rate long, not the whole gap.
    assert ct.next_period(now, END - timedelta(hours=5), 60) == (END - timedelta(minutes=1), END)
    # The rate fell from 300 to 60: periods of one minute from now on.
    assert ct.next_period(now, END - timedelta(minutes=2), 300) is None
    assert ct.next_period(now, END - timedelta(minutes=2), 60) == (END - timedelta(minutes=1), END)
