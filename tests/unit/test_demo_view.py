"""`csms demo`'s console view and closing summary (pure): the numbers explain themselves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from csms.v2g.optimizer import VehiclePlan, plan_vehicle
from csms.v2g.vehicle import Vehicle, VehicleSession
from v2g_demo.day import demo_prices, plan_summary
from v2g_demo.money import CarMoney, Departure, Metered, day_money, money_lines
from v2g_demo.view import LEGEND, Snapshot, StationRow, clock_line, render, shown_state, table

START = datetime(2030, 1, 1, 2, 0, tzinfo=UTC)


def _row(**changes: object) -> StationRow:
    values: dict[str, object] = {
        "station_id": "DEMO-4",
        "car": "Mitsubishi Outlander PHEV 12 kWh",
        "state": "charging",
        "setpoint_kw": 6.0,
        "commanded_a": 15.0,
        "limited_by": "safety:vehicle_charge_request",
        "current_a": 15.0,
        "power_kw": 5.77,
        "soc_pct": 61.0,
        "energy_in_kwh": 1.5,
        "energy_out_kwh": 0.0,
        "meter_values": 42,
    }
    values.update(changes)
    return StationRow(**values)  # type: ignore[arg-type]


def test_no_column_is_cut_limited_by_and_car_in_full() -> None:
    lines = table([_row(), _row(station_id="DEMO-1", car="Leaf", limited_by="request")])
    assert "safety:vehicle_charge_request" in lines[2]
    assert "Mitsubishi Outlander PHEV 12 kWh" in lines[2]
    # Every column starts where its header starts.
    at = lines[0].index("LIMITED BY")
    assert lines[2][at:].startswith("safety:vehicle_charge_request")
    assert lines[3][at:].startswith("request ")


def test_units_in_headers_and_a_legend_for_every_abbreviation() -> None:
    head = table([_row()])[0].split()
    assert "MV" not in head  # renamed: SAMPLES, explained in the legend
    for name in ("kW", "A", "SAMPLES", "SoC"):
        assert name in head
    legend = "\n".join(LEGEND)
    for column in ("PLAN kW", "CMD A", "LIMITED BY", "METER A/kW", "IN/OUT kWh", "SAMPLES"):
        assert column in legend


def test_suspended_beside_a_flowing_current_is_shown_as_ramping_down() -> None:
    # The row: "suspended +0.0kW" beside "+15.0 A +5.77 kW".
    row = _row(state="suspended", setpoint_kw=0.0, commanded_a=0.0, current_a=15.0)
    assert "ramping down" in table([row])[2]
    assert "suspended" not in table([row])[2]
    assert shown_state("suspended", 0.2) == "suspended"  # really suspended: said so
    assert shown_state("charging", 15.0) == "charging"


def test_clock_and_both_prices_in_the_live_view_and_in_the_plain_clock_line() -> None:
    moment = datetime(2024, 8, 5, 17, 20)
    line = clock_line(moment, 1642.9, 1493.5, day=2)
    assert line == (
        "Simulated NEM time Mon 05 Aug 17:20 AEST (day 2)   import price 1642.9 c/kWh, "
        "export 1493.5 c/kWh"
    )
    screen = render(Snapshot(["header"], moment, 1642.9, [_row()], ["event"], 1493.5, 2))
    assert line in screen and LEGEND[0] in screen and "Events (newest last):" in screen


def _plan_24kwh() -> tuple[Vehicle, VehiclePlan]:
    vehicle = Vehicle("DEMO-1-EV", 24.0, 6.0, 5.0, driving_reserve_soc=0.3)
    session = VehicleSession(
        vehicle, soc=0.8, departure=START + timedelta(hours=24), target_soc=0.8
    )
    return vehicle, plan_vehicle(session, demo_prices(START), START, backend="scipy")


def test_a_24_kwh_car_charging_30_kwh_is_explained_by_what_is_sold_and_the_losses() -> None:
    vehicle, plan = _plan_24kwh()
    text = plan_summary(plan, vehicle.capacity_kwh)
    charge = float(text.split("charge ")[1].split(" kWh")[0])
    discharge = float(text.split("discharge ")[1].split(" kWh")[0])
    assert charge > vehicle.capacity_kwh  # the "charge 30.6 kWh for a 24 kWh car"
    assert "at the meter" in text and "bought back later" in text
    stored = float(text.split("= ")[1].split(" kWh into")[0])
    losses = float(text.split("battery + ")[1].split(" kWh losses")[0])
    # Not a bug: charge - discharge = what the battery keeps + the losses, to 0.1 kWh.
    assert abs((charge - discharge) - (stored + losses)) <= 0.15
    assert 0 < losses < 0.1 * (charge + discharge)  # 90 % round trip: ~5 % each way
    assert "into the 24 kWh battery" in text and "SoC 80% -> 80%" in text


def test_money_lines_compare_the_plan_with_plain_charging_and_say_if_targets_were_met() -> None:
    vehicle, plan = _plan_24kwh()
    day = day_money(plan, vehicle, demo_prices(START))
    assert day.plain_aud == 0  # already at its 80 % target: plain charging does nothing
    assert day.plan_aud < 0  # the plan sells into the evening spike and buys back cheaper
    assert day.saved_aud == day.plain_aud - day.plan_aud
    met = CarMoney(
        "DEMO-1",
        "Nissan Leaf 24 kWh",
        days=[day],
        departures=[Departure("Tue 12:00", 0.8, 0.801)],
        metered=Metered(5.2, 8.1, 1.30, 14.10),
        window=("Mon 12:05", "Tue 12:00"),
    )
    missed = CarMoney(
        "DEMO-2",
        "Leaf 40",
        days=[day],
        departures=[Departure("Tue 12:00", 0.8, 0.7)],
        faults=["can_silence at Mon 23:10"],
    )
    due = CarMoney("DEMO-3", "Leaf e+", days=[day], soc_now=0.63)
    none = CarMoney("DEMO-4", "PHEV")
    text = "\n".join(money_lines([met, missed, due, none]))
    assert "+ = the owner pays, - = the owner earns" in text
    assert f"V2G plan {day.plan_aud:+.2f} AUD, plain charging {day.plain_aud:+.2f} AUD" in text
    assert f"V2G saves {day.saved_aud:.2f} AUD" in text
    assert "in 5.20 kWh for 1.30 AUD, out 8.10 kWh for 14.10 AUD: net -12.80 AUD" in text
    assert "target 80 % at departure Tue 12:00: met (80.1 %)" in text
    assert "target 80 % at departure Tue 12:00: NOT met (70.0 %)" in text
    # Why it was missed is said beside it.
    assert "safety trip: can_silence at Mon 23:10 (the station ended the session" in text
    assert "not due yet (now 63.0 %, the plan reaches 80.0 %)" in text
    assert "DEMO-4 PHEV\n    no plan was made" in text
