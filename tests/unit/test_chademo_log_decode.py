"""CHAdeMO log decoder and the chademo-decode command: candump layouts, CSV, bad lines."""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chargepoint_firmware.chademo import decode_cli
from chargepoint_firmware.chademo.log_decode import (
    LineError,
    LogParseError,
    decode_lines,
    parse_line,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "chademo"
LEAF_CSV = DATA / "leaf-ze0-v2x-session.csv"
CANDUMP_SAMPLE = DATA / "leaf-excerpt.candump"


def run_cli(path: str) -> tuple[int, list[dict[str, Any]], str]:
    out, err = io.StringIO(), io.StringIO()
    code = decode_cli.run(path, out, err)
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    return code, records, err.getvalue()


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "(1609459200.123456) can0 102#0123456789ABCDEF",
            (1609459200.123456, 0x102, "0123456789abcdef"),
        ),
        (
            "(1609459200.123456) vcan0 108#01F4010FB3010000 T",
            (1609459200.123456, 0x108, "01f4010fb3010000"),
        ),
        ("(0.5) can1 12345678#", (0.5, 0x12345678, "")),
        ("(1.0) can0 123##5AABB", (1.0, 0x123, "aabb")),  # CAN FD: flags nibble, then data
        ("  can0  102   [8]  01 23 45 67 89 AB CD EF", (None, 0x102, "0123456789abcdef")),
        (
            "(1609459200.100000)  can0  200   [8]  F0 00 00 00 FA 00 43 B2",
            (1609459200.1, 0x200, "f0000000fa0043b2"),
        ),
        ("(000.100000)  can0  RX - -  109   [3]  02 00 01   '...'", (0.1, 0x109, "020001")),
        ("  can0  700   [0]  ", (None, 0x700, "")),
        (
            "3016672,00000100,false,Rx,0,8,00,00,00,00,B3,01,F0,00,",
            (3.016672, 0x100, "00000000b301f000"),
        ),
        ("100,0000070A,false,Tx,0,2,01,02", (0.0001, 0x70A, "0102")),
    ],
)
def test_parse_line_accepts_candump_logfile_classic_and_csv(
    line: str, expected: tuple[float | None, int, str]
) -> None:
    parsed = parse_line(line)
    assert parsed is not None
    time, can_id, data = parsed
    assert (time, can_id, data.hex()) == (
        pytest.approx(expected[0]) if expected[0] is not None else None,
        expected[1],
        expected[2],
    )


@pytest.mark.parametrize(
    "line",
    [
        "",
        "   ",
        "# comment",
        "// comment",
        "Time Stamp,ID,Extended,Dir,Bus,LEN,D1,D2,D3,D4,D5,D6,D7,D8",
    ],
)
def test_parse_line_skips_blank_comment_and_header_lines(line: str) -> None:
    assert parse_line(line) is None


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("hello world", "not a candump"),
        ("(1.0) can0 123#R", "remote frame"),
        ("(1.0) can0 123#ABC", "odd number"),
        ("  can0  102   [8]  01 23", "length [8] but 2"),
        ("  can0  123   [0]  remote request", "remote frame"),
        ("3016672,00000100,false,Rx,0,8,00,00", "LEN 8 but 2"),
        ("3016672,00000100,false,Rx,0,8,00,00,00,00,ZZ,01,F0,00", "bad CSV value"),
        ("(1.0) can0 FFFFFFFFF#00", "not a candump"),
    ],
)
def test_parse_line_rejects_malformed_lines(line: str, reason: str) -> None:
    with pytest.raises(LogParseError, match=re.escape(reason)):
        parse_line(line)


def test_cli_on_real_leaf_csv_decodes_every_frame() -> None:
    code, records, err = run_cli(str(LEAF_CSV))
    assert code == 0 and err == ""
    assert len(records) == 4072
    assert all(record["decoded"] for record in records)
    first = records[0]
    assert first["line"] == 2
    assert first["time"] == pytest.approx(3.016672)
    assert first["id"] == "0x100"
    assert first["name"] == "VehicleChargeLimits"
    assert first["direction"] == "ev->charger"
    assert first["raw"] == "00000000b301f000"
    assert first["fields"]["maximum_battery_voltage"] == {"value": 435, "unit": "V"}
    assert first["fields"]["charged_rate_reference"] == {"value": 240, "unit": None}
    by_name: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_name.setdefault(record["name"], []).append(record)
    status = by_name["VehicleStatus"]
    assert {r["fields"]["target_battery_voltage"]["value"] for r in status} == {410}
    # finding 5: the raw byte is a charged rate against 0x100 byte 6 (100 by then here).
    assert status[-1]["fields"]["state_of_charge_raw"] == {"value": 73, "unit": None}
    assert status[-1]["fields"]["state_of_charge"] == {"value": 73.0, "unit": "%"}
    assert all(r["faults"] == [] for r in status)
    limits = by_name["VehicleDischargeLimits"]
    assert {r["fields"]["min_discharge_voltage"]["value"] for r in limits} == {250}
    assert max(r["fields"]["max_discharge_current"]["value"] for r in limits) == 15
    assert limits[-1]["fields"]["min_soc_for_discharge"] == {"value": 67, "unit": "%"}
    caps = by_name["ChargerCapabilities"]
    assert caps[0]["fields"]["available_output_voltage"] == {"value": 500, "unit": "V"}
    assert caps[0]["fields"]["available_output_current"] == {"value": 15, "unit": "A"}
    assert caps[0]["direction"] == "charger->ev"
    charger = by_name["ChargerStatus"]
    assert all(r["fields"]["discharge_compatible"]["value"] for r in charger)
    remaining = {r["fields"]["remaining_charging_time"]["value"] for r in charger}
    assert remaining == {0, 3600, 255 * 60}  # 0xFF,0xFF at start: 255 min
    times = [record["time"] for record in records]
    assert times == sorted(times)
    assert times[-1] - times[0] == pytest.approx(50.6, abs=0.5)


def test_cli_on_candump_sample_reports_bad_lines_and_continues() -> None:
    code, records, err = run_cli(str(CANDUMP_SAMPLE))
    assert code == 1
    bad = err.strip().splitlines()
    assert len(bad) == 3
    assert bad[0].startswith("chademo-decode: line 13: ") and "needs 8 bytes, got 7" in bad[0]
    assert bad[1].startswith("chademo-decode: line 14: ")
    assert bad[2].startswith("chademo-decode: line 15: ") and "remote frame" in bad[2]
    assert [r["line"] for r in records] == [3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 16]
    status = records[0]
    assert status["time"] == pytest.approx(1609459222.457)
    assert status["fields"]["charging_current_request"] == {"value": 10, "unit": "A"}
    assert records[1]["fields"]["max_discharge_current"] == {"value": 2, "unit": "A"}
    assert records[2]["fields"]["available_output_current"]["value"] == 15
    classic = records[6]
    assert classic["time"] is None
    assert classic["fields"]["charging_current_request"]["value"] == 12
    assert records[7]["fields"]["max_discharge_current"]["value"] == 4
    assert records[8]["fields"]["available_output_current"]["value"] == 0  # the switch
    automaker = records[9]
    assert automaker == {
        "line": 12,
        "time": pytest.approx(1609459222.6),
        "extended": False,
        "id": "0x700",
        "name": "VehicleAutomakerCode",
        "direction": "ev->charger",
        "decoded": False,
        "raw": "11",
    }
    unknown = records[10]
    assert unknown["id"] == "0x7ff"
    assert unknown["name"] is None and unknown["direction"] == "unknown"
    assert unknown["decoded"] is False and unknown["raw"] == "0102"
    assert "fields" not in unknown


def test_cli_reads_stdin_for_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("  can0  209   [8]  02 05 00 00 00 00 00 00\n"))
    code, records, err = run_cli("-")
    assert code == 0 and err == ""
    assert records[0]["name"] == "ChargerDischargeTime"
    assert records[0]["fields"]["remaining_discharge_time"] == {"value": 5, "unit": "min"}


def test_cli_missing_file_is_exit_2(tmp_path: Path) -> None:
    code, records, err = run_cli(str(tmp_path / "absent.log"))
    assert code == 2 and records == []
    assert "cannot read" in err


def test_cli_main_usage() -> None:
    assert decode_cli.main([]) == 2
    assert decode_cli.main(["--help"]) == 0


@given(st.lists(st.text(max_size=80), max_size=20))
def test_property_any_text_yields_records_or_line_errors(lines: list[str]) -> None:
    items = list(decode_lines(lines))
    numbers = [item.line_number if isinstance(item, LineError) else item["line"] for item in items]
    assert numbers == sorted(set(numbers))
    assert all(1 <= n <= len(lines) for n in numbers)
    for item in items:
        if not isinstance(item, LineError):
            json.dumps(item)
