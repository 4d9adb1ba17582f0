"""`csms v2g plan`: JSON out on a real NEM file and the simple CSV; clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from csms.v2g_cli import main

DATA = Path(__file__).parents[1] / "data" / "v2g"
AUG = str(DATA / "PRICE_AND_DEMAND_20240805-06_VIC1.csv")
BASE = [
    "plan",
    "--prices",
    AUG,
    "--capacity-kwh",
    "40",
    "--soc",
    "50",
    "--target-soc",
    "80",
    "--departure",
    "2024-08-06T07:30",
    "--max-charge-kw",
    "7",
    "--max-discharge-kw",
    "7",
    "--start",
    "2024-08-05T15:00",
    "--retail-margin",
    "15",
]


def run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_plan_on_real_nem_day_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, BASE)
    assert code == 0, err
    result = json.loads(out)  # nothing but JSON on stdout
    intervals, summary = result["intervals"], result["summary"]
    # Printed in the input's zone: NEM time, UTC+10 (finding 6 of issue 15).
    assert intervals[0]["start"] == "2024-08-05T15:00:00+10:00"
    assert intervals[-1]["start"] == "2024-08-06T07:25:00+10:00"  # last 5 min before 07:30
    assert len(intervals) == 198
    assert min(i["power_kw"] for i in intervals) == -7.0  # sells the evening spike
    assert summary["soc_at_departure"] == pytest.approx(80.0, abs=1e-3)
    assert summary["target_met"] is True
    assert summary["plan_cost_aud"] <= summary["threshold_rules_cost_aud"]
    assert summary["plan_cost_aud"] <= summary["plain_charging_cost_aud"]
    assert summary["currency"] == "AUD"
    assert all(20.0 - 1e-6 <= i["soc_after"] <= 100.0 for i in intervals)


def test_plan_on_simple_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prices = tmp_path / "tou.csv"
    rows = ["start,import_c_kwh,export_c_kwh"]
    for hour in range(24):
        peak = 16 <= hour < 21
        rows.append(f"2024-03-01T{hour:02d}:00+10:00,{45 if peak else 12},{30 if peak else 5}")
    prices.write_text("\n".join(rows))
    code, out, err = run(
        capsys,
        [
            "plan",
            "--prices",
            str(prices),
            "--capacity-kwh",
            "60",
            "--soc",
            "70",
            "--target-soc",
            "60",
            "--departure",
            "2024-03-01T23:00",
            "--max-charge-kw",
            "11",
            "--max-discharge-kw",
            "10",
            "--efficiency",
            "0.9",
        ],
    )
    assert code == 0, err
    result = json.loads(out)
    powers = [i["power_kw"] for i in result["intervals"]]
    assert len(powers) == 23
    assert min(powers[16:21]) < 0  # discharges at the 30 c export peak
    assert result["summary"]["plan_cost_aud"] < result["summary"]["plain_charging_cost_aud"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("--prices", "/nonexistent/prices.csv"), "no such file"),
        (("--departure", "2024-08-05T14:00"), "not after the start"),
        (("--soc", "150"), "SoC is a percentage"),
        (("--target-soc", "-1"), "SoC is a percentage"),
        (("--departure", "tomorrow"), "not an ISO 8601 time"),
        (("--start", "2024-08-01T00:00"), "outside the prices"),
        (("--efficiency", "1.5"), "round-trip efficiency"),
        (("--capacity-kwh", "0"), "--capacity-kwh"),
    ],
)
def test_bad_input_is_a_clear_error(
    capsys: pytest.CaptureFixture[str], change: tuple[str, str], message: str
) -> None:
    argv = list(BASE)
    if change[0] in argv:
        argv[argv.index(change[0]) + 1] = change[1]
    else:
        argv += list(change)
    code, out, err = run(capsys, argv)
    assert code == 2
    assert out == ""
    assert message in err


def test_missing_argument_and_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, ["plan", "--prices", AUG])
    assert code == 2 and "required" in err
    bad = tmp_path / "bad.csv"
    bad.write_text("start,import_c_kwh\n2024-01-01T00:00Z,1\n2024-01-01T00:30Z,x\n")
    argv = list(BASE)
    argv[argv.index("--prices") + 1] = str(bad)
    code, _, err = run(capsys, argv)
    assert code == 2 and "line 3" in err


def test_help_returns_zero(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, ["plan", "--help"])
    assert code == 0
    assert "--max-discharge-kw" in out


def test_output_piped_into_a_reader_that_leaves_early_is_not_a_traceback(
    tmp_path: Path,
) -> None:
    import subprocess
    import sys
    from datetime import datetime, timedelta

    # Ten days of 5-minute prices: far more JSON than a pipe buffer holds.
    start = datetime(2024, 8, 5)
    rows = ["start,import_c_kwh"] + [
        f"{(start + timedelta(minutes=5 * k)).isoformat()},{10 + (k % 288) / 10}"
        for k in range(2880)
    ]
    prices = tmp_path / "prices.csv"
    prices.write_text("\n".join(rows) + "\n")
    command = [sys.executable, "-m", "csms", "v2g", "plan", "--prices", str(prices)]
    command += ["--capacity-kwh", "40", "--soc", "50", "--target-soc", "80"]
    command += ["--departure", "2024-08-14T07:30", "--max-charge-kw", "7"]
    command += ["--max-discharge-kw", "7", "--max-horizon-h", "240"]  # 9 days: above 7 days
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        assert process.stdout is not None and process.stderr is not None
        assert process.stdout.read(10)  # like `| head -c 10`
        process.stdout.close()
        err = process.stderr.read().decode()
        assert process.wait(timeout=60) == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err


# ---- finding 11: non-finite and out-of-range numbers on every option -------------------------


def _with(change: tuple[str, str]) -> list[str]:
    argv = list(BASE)
    if change[0] in argv:
        argv[argv.index(change[0]) + 1] = change[1]
    else:
        argv += list(change)
    return argv


# Every numeric option of `csms v2g plan`, with a value that must be refused.
NUMERIC_OPTION_ERRORS = [
    ("--retail-margin", "nan"),
    ("--retail-margin", "inf"),
    ("--retail-margin", "5000"),
    ("--gst", "nan"),
    ("--gst", "-2"),
    ("--gst", "0.9"),
    ("--export-offset", "nan"),
    ("--export-offset", "-inf"),
    ("--degradation-c-kwh", "nan"),
    ("--degradation-c-kwh", "-1"),
    ("--max-charge-kw", "nan"),
    ("--max-charge-kw", "inf"),
    ("--max-charge-kw", "-7"),
    ("--max-discharge-kw", "nan"),
    ("--max-discharge-kw", "1e6"),
    ("--capacity-kwh", "1e-9"),
    ("--capacity-kwh", "nan"),
    ("--capacity-kwh", "5e-324"),
    ("--soc", "nan"),
    ("--target-soc", "inf"),
    ("--reserve-soc", "nan"),
    ("--reserve-soc", "101"),
    ("--efficiency", "nan"),
    ("--efficiency", "1e-9"),
    ("--max-horizon-h", "nan"),
    ("--max-horizon-h", "0"),
    ("--max-horizon-h", "1e9"),
]


@pytest.mark.parametrize(("option", "value"), NUMERIC_OPTION_ERRORS)
def test_finding11_every_numeric_option_refuses_non_finite_and_out_of_range(
    capsys: pytest.CaptureFixture[str], option: str, value: str
) -> None:
    code, out, err = run(capsys, _with((option, value)))
    assert code == 2
    assert out == ""
    assert option in err  # the error names the option
    assert "Traceback" not in err and err.count("\n") == 1  # one line


def test_finding11_capacity_1e_9_was_target_met_at_20_percent(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The old plan called a 1e-9 kWh battery at 20 % 'target met' against 80 %: now the
    capacity is refused, and the smallest accepted battery (1 kWh) really reaches 80 %."""
    code, _, err = run(capsys, _with(("--capacity-kwh", "1e-9")))
    assert code == 2 and "--capacity-kwh" in err
    code, out, err = run(capsys, _with(("--capacity-kwh", "1")))
    assert code == 0, err
    summary = json.loads(out)["summary"]
    assert summary["target_met"] is True
    assert summary["soc_at_departure"] >= 80.0 - 1e-3


def test_finding11_target_met_is_judged_on_the_soc_not_on_absolute_kwh() -> None:
    """A target the charger cannot reach is never reported as met, for the smallest and the
    largest battery accepted (met is now SoC >= target - 1e-6, not shortfall <= 1e-6 kWh)."""
    from datetime import UTC, datetime, timedelta

    from csms.v2g.optimizer import plan_vehicle
    from csms.v2g.prices import PriceSeries
    from csms.v2g.vehicle import Vehicle, VehicleSession

    now = datetime(2024, 8, 5, tzinfo=UTC)
    prices = PriceSeries(now, timedelta(hours=1), (10.0,) * 4, (5.0,) * 4)
    for capacity in (1.0, 40.0, 1000.0):
        vehicle = Vehicle("ev", capacity, capacity / 100.0, 0.0)  # 1 % of capacity per hour
        session = VehicleSession(vehicle, 0.2, now + timedelta(hours=4), 0.8)
        plan = plan_vehicle(session, prices, now)
        assert plan.target_met is False, capacity
        assert plan.soc_at_departure < 0.8
        assert "cannot be reached" in " ".join(plan.warnings)


def test_finding11_nan_and_inf_prices_name_file_line_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for bad, column in (("nan,5", "import_c_kwh"), ("12,inf", "export_c_kwh")):
        prices = tmp_path / "prices.csv"
        rows = ["start,import_c_kwh,export_c_kwh"]
        rows += [f"2024-08-05T{h:02d}:00+10:00,12,5" for h in range(24)]
        rows[5] = f"2024-08-05T04:00+10:00,{bad}"  # file line 6
        prices.write_text("\n".join(rows))
        argv = _with(("--start", "2024-08-05T00:00"))
        argv[argv.index("--prices") + 1] = str(prices)
        argv[argv.index("--departure") + 1] = "2024-08-05T20:00"
        code, out, err = run(capsys, argv)
        assert code == 2 and out == ""
        assert str(prices) in err and "line 6" in err and column in err, err


def test_finding11_nan_rrp_in_a_nem_file_names_line_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = Path(AUG).read_text(encoding="utf-8-sig").splitlines()
    cells = lines[3].split(",")
    header = [h.strip().upper() for h in lines[0].split(",")]
    cells[header.index("RRP")] = "NaN"
    lines[3] = ",".join(cells)
    bad = tmp_path / "nem.csv"
    bad.write_text("\n".join(lines))
    code, _, err = run(capsys, _with(("--prices", str(bad))))
    assert code == 2
    assert str(bad) in err and "line 4" in err and "RRP" in err, err


def test_finding11_prices_beyond_the_physical_range_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """+-1e12 $/MWh (1e11 c/kWh) made the plan miss a reachable target and blame 'site
    limits'; beyond +-20,000 c/kWh (+-200,000 $/MWh) a price is now a clear error."""
    prices = tmp_path / "prices.csv"
    rows = ["start,import_c_kwh,export_c_kwh"]
    rows += [f"2024-08-05T{h:02d}:00+10:00,{1e11 * (-1) ** h},0" for h in range(24)]
    prices.write_text("\n".join(rows))
    argv = _with(("--start", "2024-08-05T00:00"))
    argv[argv.index("--prices") + 1] = str(prices)
    argv[argv.index("--departure") + 1] = "2024-08-05T20:00"
    code, _, err = run(capsys, argv)
    assert code == 2 and "line 2" in err and "import_c_kwh" in err and "20000" in err, err


def test_finding11_extreme_prices_within_range_still_meet_a_reachable_target(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prices = tmp_path / "prices.csv"
    rows = ["start,import_c_kwh,export_c_kwh"]
    rows += [
        f"2024-08-05T{h:02d}:00+10:00,{20000 * (-1) ** h},{-20000 * (-1) ** h}" for h in range(24)
    ]
    prices.write_text("\n".join(rows))
    argv = _with(("--start", "2024-08-05T00:00"))
    argv[argv.index("--prices") + 1] = str(prices)
    argv[argv.index("--departure") + 1] = "2024-08-05T20:00"
    argv[argv.index("--soc") + 1] = "20"
    code, out, err = run(capsys, argv)
    assert code == 0, err
    summary = json.loads(out)["summary"]
    assert summary["target_met"] is True
    assert summary["soc_at_departure"] >= 80.0 - 1e-3


def test_finding11_departure_beyond_the_horizon_is_a_clear_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A departure ten years out ran for over a minute; now it names the horizon limit."""
    code, out, err = run(capsys, _with(("--departure", "2034-08-06T07:30")))
    assert code == 2 and out == ""
    assert "--departure" in err and "168 h" in err and "--max-horizon-h" in err
    code, _, err = run(capsys, _with(("--departure", "9999-12-31T23:59")))
    assert code == 2 and "--departure" in err
    # A departure within a raised limit is planned (prices end first: a warning).
    code, out, err = run(
        capsys, [*_with(("--departure", "2024-08-12T07:30")), "--max-horizon-h", "240"]
    )
    assert code == 0, err
    assert any("prices end" in w for w in json.loads(out)["summary"]["warnings"])


def test_finding6_plan_summary_is_in_aud_dollars_and_times_in_nem_time(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from datetime import datetime, timedelta, timezone

    from csms.v2g.baselines import plain_charging, threshold_rules
    from csms.v2g.prices import NemTariff, parse_nem_price_and_demand
    from csms.v2g.vehicle import Chemistry, Vehicle, VehicleSession

    code, out, err = run(capsys, BASE)
    assert code == 0, err
    result = json.loads(out)
    summary = result["summary"]
    assert summary["currency"] == "AUD"
    assert summary["unit"].startswith("AUD (dollars")
    assert summary["timezone"] == "+10:00"
    assert not any(key.endswith("_cost") for key in summary)  # every cost names its unit
    # The README's figures for this real day, in dollars.
    assert summary["plan_cost_aud"] == pytest.approx(-145.34, abs=0.005)
    assert summary["plain_charging_cost_aud"] == pytest.approx(6.73, abs=0.005)
    assert summary["threshold_rules_cost_aud"] == pytest.approx(5.67, abs=0.005)
    # Dollars are the baselines' cents / 100, to the cent.
    nem = timezone(timedelta(hours=10))
    prices = parse_nem_price_and_demand(Path(AUG).read_text(), NemTariff(15.0, 0.10, 0.0))
    start = datetime(2024, 8, 5, 15, tzinfo=nem)
    session = VehicleSession(
        Vehicle(
            vehicle_id="vehicle",
            capacity_kwh=40,
            max_charge_kw=7,
            max_discharge_kw=7,
            chemistry=Chemistry.parse("NMC"),
            round_trip_efficiency=0.9,
            driving_reserve_soc=0.2,
        ),
        soc=0.5,
        departure=datetime(2024, 8, 6, 7, 30, tzinfo=nem),
        target_soc=0.8,
    )
    plain_c = plain_charging(session, prices, start).total_cost_c
    rules_c = threshold_rules(session, prices, start).total_cost_c
    assert summary["plain_charging_cost_aud"] == round(plain_c / 100, 2)
    assert summary["threshold_rules_cost_aud"] == round(rules_c / 100, 2)
    starts = [datetime.fromisoformat(i["start"]) for i in result["intervals"]]
    assert all(s.utcoffset() == timedelta(hours=10) for s in starts)
    assert starts[0] == start
