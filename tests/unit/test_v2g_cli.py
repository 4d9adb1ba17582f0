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
    assert intervals[0]["start"] == "2024-08-05T05:00:00Z"  # 15:00 AEST
    assert intervals[-1]["start"] == "2024-08-05T21:25:00Z"  # last 5 min before 07:30 AEST
    assert len(intervals) == 198
    assert min(i["power_kw"] for i in intervals) == -7.0  # sells the evening spike
    assert summary["soc_at_departure"] == pytest.approx(80.0, abs=1e-3)
    assert summary["target_met"] is True
    assert summary["plan_cost"] <= summary["threshold_rules_cost"]
    assert summary["plan_cost"] <= summary["plain_charging_cost"]
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
    assert result["summary"]["plan_cost"] < result["summary"]["plain_charging_cost"]


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
        (("--capacity-kwh", "0"), "capacity_kwh"),
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
    command += ["--max-discharge-kw", "7"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        assert process.stdout is not None and process.stderr is not None
        assert process.stdout.read(10)  # like `| head -c 10`
        process.stdout.close()
        err = process.stderr.read().decode()
        assert process.wait(timeout=60) == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err
