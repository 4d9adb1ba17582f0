"""Findings 4 and 5 of issue 12: every common CAN log format, extended ids, honest SoC."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from chargepoint_firmware.chademo import decode_cli
from chargepoint_firmware.chademo.frames import (
    VehicleChargeLimits,
    VehicleDischargeLimits,
    VehicleStatus,
)
from chargepoint_firmware.chademo.log_decode import (
    LineError,
    LoggedFrame,
    decode_frames,
    decode_lines,
    detect_format,
    read_log,
)
from chargepoint_firmware.chademo.vehicle_view import VehicleView

DATA = Path(__file__).resolve().parents[1] / "data" / "chademo"
# The first 12 frames of the real Leaf log (ids, data), then an extended 0x100.
FIRST_IDS = [0x100, 0x101, 0x102, 0x200, 0x108, 0x109, 0x208, 0x209, 0x100, 0x101, 0x102, 0x200]


def _leaf_head() -> list[tuple[float, int, bytes]]:
    rows = [r.split(",") for r in (DATA / "leaf-ze0-v2x-session.csv").read_text().splitlines()]
    return [
        (int(r[0]) / 1e6, int(r[1], 16), bytes(int(c, 16) for c in r[6 : 6 + int(r[5])]))
        for r in rows[1:13]
    ]


def _split(path: Path) -> tuple[list[LoggedFrame], list[LineError]]:
    items = list(read_log(str(path)))
    frames = [i for i in items if isinstance(i, LoggedFrame)]
    errors = [i for i in items if isinstance(i, LineError)]
    return frames, errors


@pytest.mark.parametrize(
    ("name", "bad_lines", "first_time", "last_time"),
    [
        ("leaf-excerpt-none.candump", [5], None, None),
        ("leaf-excerpt-ta.candump", [5], 1609459203.016672, 1609459203.147887),
        ("leaf-excerpt-td.candump", [5], 0.0, 0.001),  # -td: time since the previous frame
        ("leaf-excerpt-tz.candump", [5], 0.0, 0.131215),
        ("leaf-excerpt-tA.candump", [5], 1609459203.016672, 1609459203.147887),
        ("leaf-excerpt-gvret-nodir.csv", [5], -0.033328, 0.097887),
        ("leaf-excerpt-gvret-signed.csv", [], -0.033328, 0.097887),
        ("leaf-excerpt.trc", [], 1609459203.016672, 1609459203.147887),
        ("leaf-excerpt.asc", [], 0.0, 0.131215),
    ],
)
def test_finding4_every_format_reads_the_real_frames(
    name: str, bad_lines: list[int], first_time: float | None, last_time: float | None
) -> None:
    frames, errors = _split(DATA / name)
    assert [e.line_number for e in errors] == bad_lines
    head = _leaf_head()
    assert [(f.arbitration_id, f.data) for f in frames[:12]] == [(c, d) for _, c, d in head]
    assert [f.arbitration_id for f in frames[:12]] == FIRST_IDS
    assert not any(f.is_extended for f in frames[:12])
    extended = frames[12]
    assert (extended.arbitration_id, extended.is_extended) == (0x100, True)
    assert len(frames) == 13
    if first_time is None:
        assert frames[0].timestamp_s is None
    else:
        assert frames[0].timestamp_s == pytest.approx(first_time, abs=1e-6)
        assert frames[-1].timestamp_s == pytest.approx(last_time, abs=1e-6)


@pytest.mark.parametrize(
    ("head", "name", "kind"),
    [
        (";$FILEVERSION=2.1\n", "x.log", "trc"),
        ("date Sat Dec 05 10:15:07.314 2026\nbase hex", "x.txt", "asc"),
        ("LOGG\x00\x00", "x", "blf"),
        ("(2026-12-05 08:15:00.123456)  can0  100   [8]  00", "x.asc.txt", "text"),
        ("Time Stamp,ID,Extended,Bus,LEN,D1", "x.trc.csv", "text"),
    ],
)
def test_finding4_format_detected_by_content(head: str, name: str, kind: str) -> None:
    assert detect_format(head, name) == kind


def test_finding4_extended_0x100_is_never_decoded_as_chademo() -> None:
    records = [r for r in decode_frames(read_log(str(DATA / "leaf-excerpt-tA.candump")))]
    ext = [r for r in records if isinstance(r, dict) and r["extended"]]
    assert ext == [
        {
            "line": 15,
            "time": pytest.approx(1609459203.147887),
            "id": "0x00000100",
            "extended": True,
            "name": None,
            "direction": "unknown",
            "decoded": False,
            "raw": "0000000000f0ff00",
        }
    ]
    # ...and it does not change the SoC reference taken from the real 0x100.
    status = [r for r in records if isinstance(r, dict) and r["id"] == "0x102"]
    assert all(r["fields"]["state_of_charge"]["unit"] == "%" for r in status)


def test_finding4_candump_L_extended_and_unknown_ids_reported() -> None:
    lines = [
        "(1.0) can0 18FF0100#0102",
        "(1.1) can0 100#0000000000F0FF",  # wrong length for 0x100: a per-line error
        "(1.2) can0 7FF#01",
        "(1.3) can0 100#00000000B301F000",
    ]
    items = list(decode_lines(lines))
    assert isinstance(items[0], dict) and items[0]["extended"] and not items[0]["decoded"]
    assert items[0]["id"] == "0x18ff0100"
    assert isinstance(items[1], LineError) and items[1].line_number == 2
    assert isinstance(items[2], dict) and items[2]["decoded"] is False and items[2]["id"] == "0x7ff"
    assert isinstance(items[3], dict) and items[3]["decoded"] is True


def test_finding4_gvret_signed_timestamps_and_bad_rows_do_not_stop() -> None:
    lines = [
        "time stamp,id,extended,bus,len,d1,d2,d3,d4,d5,d6,d7,d8",
        "-1500000,00000100,false,0,8,00,00,00,00,B3,01,F0,00,",
        "-x,00000100,false,0,8,00,00,00,00,B3,01,F0,00,",
        "250,1CEBFF00,true,0,2,01,02,",
    ]
    items = list(decode_lines(lines))
    assert isinstance(items[0], dict) and items[0]["time"] == pytest.approx(-1.5)
    assert isinstance(items[1], LineError) and items[1].line_number == 3
    assert isinstance(items[2], dict) and items[2]["extended"] is True


def _run(path: Path) -> tuple[int, list[dict[str, Any]], str]:
    out, err = io.StringIO(), io.StringIO()
    code = decode_cli.run(str(path), out, err)
    return code, [json.loads(line) for line in out.getvalue().splitlines()], err.getvalue()


@pytest.mark.parametrize(
    "name", ["leaf-excerpt.trc", "leaf-excerpt.asc", "leaf-excerpt-tA.candump"]
)
def test_finding4_chademo_decode_cli_reads_format(name: str) -> None:
    code, records, err = _run(DATA / name)
    assert len(records) == 13
    assert records[0]["name"] == "VehicleChargeLimits"
    assert code == (1 if err else 0)


def test_finding5_ze1_soc_scaled_by_reference() -> None:
    # A ZE1 sends reference 0xFF in 0x100 byte 6 and 143..145 raw in 0x102 byte 6.
    lines = [
        "(0.0) can0 100#0000000000B3FF00",
        "(0.1) can0 102#029A010A00C18F00",
        "(0.2) can0 102#029A010A00C19100",
    ]
    items = [i for i in decode_lines(lines) if isinstance(i, dict)]
    soc = [i["fields"]["state_of_charge"] for i in items if i["id"] == "0x102"]
    raw = [i["fields"]["state_of_charge_raw"] for i in items if i["id"] == "0x102"]
    assert raw == [{"value": 143, "unit": None}, {"value": 145, "unit": None}]
    assert soc == [{"value": 56.1, "unit": "%"}, {"value": 56.9, "unit": "%"}]


def test_finding5_soc_without_reference_is_not_percent() -> None:
    items = [i for i in decode_lines(["(0.1) can0 102#029A010A00C18F00"]) if isinstance(i, dict)]
    assert items[0]["fields"]["state_of_charge_raw"] == {"value": 143, "unit": None}
    assert items[0]["fields"]["state_of_charge"] == {"value": None, "unit": "%"}


def test_finding5_0x200_not_used_0xff_is_absent() -> None:
    items = [i for i in decode_lines(["(0) can0 200#FF000000FA00FFFF"]) if isinstance(i, dict)]
    fields = items[0]["fields"]
    assert fields["min_soc_for_discharge"] == {"value": None, "unit": "%"}
    assert fields["max_soc_for_charge"] == {"value": None, "unit": "%"}
    frame = VehicleDischargeLimits.from_bytes(bytes.fromhex("FF000000FA00FFFF"))
    assert frame.min_soc_for_discharge is None
    assert frame.max_soc_for_charge is None
    assert frame.to_bytes() == bytes.fromhex("FF000000FA00FFFF")  # raw kept: round trip


def test_finding5_controller_soc_needs_the_0x100_reference() -> None:
    status = VehicleStatus.from_bytes(bytes.fromhex("029A010A00C18F00"))  # raw 143
    view = VehicleView().with_frame(status, 0.0)
    assert view.soc_pct is None  # not 143 %
    limits = VehicleChargeLimits.from_bytes(bytes.fromhex("0000000000B3FF00"))  # ZE1: 0xFF
    soc = view.with_frame(limits, 0.1).soc_pct
    assert soc is not None and 56 <= soc <= 57


def test_finding4_blf_read_through_python_can(tmp_path: Path) -> None:
    import can

    path = tmp_path / "leaf.blf"
    with can.BLFWriter(str(path)) as writer:
        for t, can_id, data in _leaf_head():
            writer.on_message_received(
                can.Message(timestamp=1609459200 + t, arbitration_id=can_id, data=data)
            )
    frames, errors = _split(path)
    assert errors == []
    assert [(f.arbitration_id, f.data) for f in frames] == [(c, d) for _, c, d in _leaf_head()]


def test_finding4_broken_trc_line_does_not_stop_reading(tmp_path: Path) -> None:
    # python-can's TRCReader skips a line it cannot parse (it does not report it to us).
    path = tmp_path / "broken.trc"
    text = (DATA / "leaf-excerpt.trc").read_text()
    path.write_text(text + "     99)      1.0  Rx  zz 8  00\n")
    frames, errors = _split(path)
    assert len(frames) == 13
    assert errors == []
