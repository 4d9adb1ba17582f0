"""Pure helpers of the V2G service layer (csms.services.v2g.rules): price runs, EV needs,
the SoC a plan expects, re-plan reasons, price lookup."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from csms.domain.errors import InvalidRequest
from csms.domain.models import Transaction, TransactionState
from csms.domain.v2g_records import PlanRecord, PriceRow, VehicleRecord
from csms.services.v2g import SessionContext, V2gSettings
from csms.services.v2g.rules import (
    departure_from_needs,
    expected_soc,
    price_lookup,
    replan_reasons,
    series_from_rows,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
VEHICLE = VehicleRecord(
    id="v1",
    capacity_kwh=40.0,
    chemistry="NMC",
    soc_min=0.0,
    soc_max=1.0,
    max_charge_kw=7.0,
    max_discharge_kw=7.0,
    round_trip_efficiency=0.9,
    driving_reserve_soc=0.2,
    backup_reserve_soc=0.0,
)


def rows(*specs: tuple[int, int, float]) -> list[PriceRow]:
    """(minutes from T0, interval s, price)."""
    return [PriceRow(T0 + timedelta(minutes=m), s, p, p) for m, s, p in specs]


def test_price_run_starts_at_the_interval_holding_now_and_stops_at_a_gap() -> None:
    stored = rows((0, 1800, 1.0), (30, 1800, 2.0), (60, 1800, 3.0), (120, 1800, 4.0))
    series = series_from_rows(stored, T0 + timedelta(minutes=40))
    assert series.start == T0 + timedelta(minutes=30)
    assert series.import_c_kwh == (2.0, 3.0)  # the 90-minute gap ends the run


def test_price_run_stops_where_the_interval_length_changes() -> None:
    stored = rows((0, 1800, 1.0), (30, 300, 2.0))
    assert series_from_rows(stored, T0).import_c_kwh == (1.0,)


def test_no_price_at_now_is_an_invalid_request() -> None:
    with pytest.raises(InvalidRequest, match="no stored price"):
        series_from_rows(rows((0, 300, 1.0)), T0 + timedelta(hours=1))


def test_k15_needs_give_departure_and_target_from_energy_amount() -> None:
    payload = {
        "evseId": 1,
        "chargingNeeds": {
            "requestedEnergyTransfer": "DC",
            "departureTime": "2026-01-01T07:00:00Z",
            "dcChargingParameters": {
                "evMaxCurrent": 100,
                "evMaxVoltage": 400,
                "energyAmount": 8000,
                "stateOfCharge": 50,
                "evEnergyCapacity": 40000,
            },
        },
    }
    departure, target = departure_from_needs(payload, 40.0, None)
    assert departure == T0 + timedelta(hours=7)
    assert target == pytest.approx(0.7)


def test_k15_needs_fall_back_to_full_soc_and_cap_at_one() -> None:
    payload = {"chargingNeeds": {"dcChargingParameters": {"fullSoC": 90}}}
    assert departure_from_needs(payload, 40.0, 0.5) == (None, 0.9)
    over = {"chargingNeeds": {"dcChargingParameters": {"energyAmount": 90000}}}
    assert departure_from_needs(over, 40.0, 0.5)[1] == 1.0


PLAN = {
    "start": (T0 + timedelta(minutes=10)).isoformat(),
    "departure": (T0 + timedelta(hours=2)).isoformat(),
    "interval_starts": [T0.isoformat(), (T0 + timedelta(hours=1)).isoformat()],
    "hours": [50 / 60, 1.0],
    "soc_start": 0.5,
    "soc_after": [0.6, 0.8],
    "target_soc": 0.8,
    "power_kw": [5.0, 9.0],
}


def test_expected_soc_interpolates_within_the_planned_interval() -> None:
    assert expected_soc(PLAN, T0 + timedelta(minutes=10)) == pytest.approx(0.5)
    assert expected_soc(PLAN, T0 + timedelta(minutes=35)) == pytest.approx(0.55)
    assert expected_soc(PLAN, T0 + timedelta(minutes=90)) == pytest.approx(0.7)
    assert expected_soc(PLAN, T0 + timedelta(hours=3)) == pytest.approx(0.8)


def _context(
    soc: float, departure: datetime, target: float = 0.8, tx: str = "t1"
) -> SessionContext:
    transaction = Transaction("CS1", tx, TransactionState.ACTIVE, evse_id=1)
    return SessionContext(VEHICLE, soc, "meter", departure, target, "api", transaction)


def test_replan_reasons() -> None:
    settings = V2gSettings(plan_max_age_s=900, soc_tolerance=0.03)
    record = PlanRecord("v1", T0 + timedelta(minutes=10), "Accepted", PLAN, transaction_id="t1")
    departure = T0 + timedelta(hours=2)
    at = T0 + timedelta(minutes=20)
    assert replan_reasons(None, _context(0.5, departure), at, None, settings) == ["no plan yet"]
    on_track = expected_soc(PLAN, at)
    assert replan_reasons(record, _context(on_track, departure), at, None, settings) == []
    assert replan_reasons(record, _context(on_track + 0.05, departure), at, None, settings) == [
        "SoC moved beyond tolerance"
    ]
    assert "departure changed" in replan_reasons(
        record, _context(on_track, departure + timedelta(hours=1)), at, None, settings
    )
    assert "target SoC changed" in replan_reasons(
        record, _context(on_track, departure, target=0.9), at, None, settings
    )
    assert "new transaction" in replan_reasons(
        record, _context(on_track, departure, tx="t2"), at, None, settings
    )
    assert replan_reasons(record, _context(on_track, departure), at, at, settings) == [
        "prices changed"
    ]
    late = T0 + timedelta(minutes=30)
    assert "cadence" in replan_reasons(
        record, _context(expected_soc(PLAN, late), departure), late, None, settings
    )


def test_price_lookup_prices_energy_by_the_interval_it_flowed_in() -> None:
    lookup = price_lookup(rows((0, 1800, 10.0), (30, 1800, 20.0)))
    assert lookup(T0 + timedelta(minutes=30)) == (10.0, 10.0)  # measured at the end of the first
    assert lookup(T0 + timedelta(minutes=31)) == (20.0, 20.0)
    assert lookup(T0) is None
    assert lookup(T0 + timedelta(hours=2)) is None
