"""Read CAN logs of every common format and decode CHAdeMO frames into JSON-ready records.

`read_log(path)` is the one reader (also for the replay harness): it yields a LoggedFrame per
frame and a LineError per bad line, detecting the format by content. The line parsing and the
decoding are pure; only read_log opens files.

Accepted line layouts (detected per line, so a file may mix them):
- candump -L / log file: ``(1609459200.123456) can0 102#0123456789ABCDEF`` (optionally a
  trailing direction flag; ``##`` CAN FD frames with their flags nibble; ``#R`` remote frames
  are reported as bad lines: they carry no data);
- classic candump: ``can0  102   [8]  01 23 45 67 89 AB CD EF``, with or without a leading
  ``(timestamp)`` (-t a/d/z), the -x ``RX - -`` columns, and the -a ASCII column;
- the CSV of docs/chademo.md's log: ``3016672,00000100,false,Rx,0,8,00,00,00,00,B3,01,F0,00,``
  (timestamp in microseconds; a ``Time Stamp,ID,...`` header line is skipped).
Blank lines and lines starting with ``#`` or ``//`` are skipped.

One record per frame:
```
{"line": 2, "time": 3.016672, "id": "0x100", "name": "VehicleChargeLimits",
 "direction": "ev->charger", "decoded": true, "raw": "00000000b301f000",
 "fields": {"maximum_battery_voltage": {"value": 435, "unit": "V"}, ...}}
```
- ``time`` is seconds (null if the line has none); ``id`` is lower-case hex with ``0x``.
- ``fields``: every dataclass field of the frame, keyed by its name without the unit suffix,
  as ``{"value": v, "unit": u}``; ``unit`` is "V", "A", "s", "min", "%", "Wh" or null for
  flags, counters and protocol numbers. 0x102: ``state_of_charge_raw`` is byte 6 (a charged
  rate, no unit) and ``state_of_charge`` is it scaled by the session's last 0x100 byte 6
  ("charged rate reference"), in %, null until a 0x100 is seen. 0x200's SoC limits are null
  when "not used" (0 or 0xFF).
- ``extended``: true for a 29-bit id, which is never decoded as CHAdeMO (``id`` has 8 digits).
- ``faults`` (0x102 and 0x109 only): sorted names of the active stop/fault flags.
- An id the codec does not decode: ``"decoded": false``, ``name`` from the ids seen on CHAdeMO
  buses (or null) and ``direction`` "unknown" unless known; ``raw`` always holds the data.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final

from chargepoint_firmware.chademo.frames import (
    ChargerStatus,
    FrameDecodeError,
    VehicleStatus,
    decode,
    direction_of,
    frame_fields,
    name_of,
)

__all__ = [
    "LineError",
    "LogParseError",
    "LoggedFrame",
    "RawFrame",
    "decode_frames",
    "decode_lines",
    "detect_format",
    "frame_record",
    "parse_line",
    "read_lines",
    "read_log",
]


class LogParseError(ValueError):
    """A line that is not a CAN frame in any accepted layout."""


@dataclass(frozen=True, slots=True)
class RawFrame:
    line_number: int
    time_s: float | None
    can_id: int
    data: bytes


@dataclass(frozen=True, slots=True)
class LineError:
    line_number: int
    line: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line_number}: {self.reason}: {self.line.strip()!r}"


_HEX_ID = r"[0-9A-Fa-f]{1,8}"
_TIMESTAMP = r"\((?P<time>\d+(?:\.\d+)?)\)"
_LOGFILE = re.compile(
    rf"^\s*{_TIMESTAMP}\s+(?P<iface>\S+)\s+(?P<id>{_HEX_ID})"
    r"(?P<sep>##?)(?P<data>[0-9A-Fa-f]*|R\d*)(?:\s+[RT])?\s*$"
)
_CLASSIC = re.compile(
    rf"^\s*(?:{_TIMESTAMP}\s+)?(?P<iface>\S+)\s+(?:[RT]X\s+\S+\s+\S+\s+)?"
    rf"(?P<id>{_HEX_ID})\s+\[(?P<len>\d+)\]\s*(?P<data>(?:[0-9A-Fa-f]{{2}}(?:\s+|$))*)"
    r"(?P<rest>.*)$"
)
_CSV_ROW = re.compile(r"^\s*\d+(?:\.\d+)?\s*,\s*[0-9A-Fa-f]+\s*,")
_CSV_HEADER = re.compile(r"^\s*time\s*stamp\s*,", re.IGNORECASE)

_UNIT_SUFFIXES: Final = (
    ("_v", "V"),
    ("_a", "A"),
    ("_s", "s"),
    ("_min", "min"),
    ("_pct", "%"),
    ("_wh", "Wh"),
)
_MAX_CAN_ID: Final = 0x1FFFFFFF


def _check_id(text: str) -> int:
    can_id = int(text, 16)
    if can_id > _MAX_CAN_ID:
        raise LogParseError(f"CAN id {text} out of range")
    return can_id


def _parse_logfile(match: re.Match[str]) -> tuple[float | None, int, bytes]:
    can_id = _check_id(match["id"])
    data = match["data"]
    if data.startswith("R"):
        raise LogParseError("remote frame (no data)")
    if match["sep"] == "##":
        if not data:
            raise LogParseError("CAN FD frame without flags")
        data = data[1:]  # the FD flags nibble
    if len(data) % 2:
        raise LogParseError("odd number of hex digits")
    return float(match["time"]), can_id, bytes.fromhex(data)


def _parse_classic(match: re.Match[str]) -> tuple[float | None, int, bytes]:
    can_id = _check_id(match["id"])
    rest = match["rest"].strip()
    if rest and not (rest.startswith("'") and rest.endswith("'")):
        if "remote" in rest.lower():
            raise LogParseError("remote frame (no data)")
        raise LogParseError(f"unexpected text after the data: {rest[:20]!r}")
    data = bytes.fromhex("".join(match["data"].split()))
    if len(data) != int(match["len"]):
        raise LogParseError(f"length [{match['len']}] but {len(data)} data bytes")
    time = float(match["time"]) if match["time"] else None
    return time, can_id, data


def _parse_csv(line: str) -> tuple[float | None, int, bytes]:
    cells = [cell.strip() for cell in line.strip().split(",")]
    if len(cells) < 6:
        raise LogParseError("CSV row with fewer than 6 columns")
    try:
        time = float(cells[0]) / 1e6
        can_id = _check_id(cells[1])
        length = int(cells[5])
        data_cells = [cell for cell in cells[6:] if cell]
        if not 0 <= length <= 64 or len(data_cells) < length:
            raise LogParseError(f"LEN {length} but {len(data_cells)} data columns")
        data = bytes(int(cell, 16) for cell in data_cells[:length])
    except ValueError as error:
        if isinstance(error, LogParseError):
            raise
        raise LogParseError(f"bad CSV value ({error})") from None
    return time, can_id, data


def parse_line(line: str) -> tuple[float | None, int, bytes] | None:
    """(seconds or None, CAN id, data) for a frame line; None for a line to skip.

    Raises LogParseError for anything else.
    """
    text = line.strip()
    if not text or text.startswith(("#", "//")) or _CSV_HEADER.match(text):
        return None
    try:
        if match := _LOGFILE.match(text):
            return _parse_logfile(match)
        if _CSV_ROW.match(text):
            return _parse_csv(text)
        if match := _CLASSIC.match(text):
            return _parse_classic(match)
    except LogParseError:
        raise
    except ValueError as error:  # bytes.fromhex / int / float on malformed text
        raise LogParseError(str(error)) from None
    raise LogParseError("not a candump, candump -L or CSV frame line")


def _field_entry(name: str, value: object) -> tuple[str, dict[str, Any]]:
    if isinstance(value, bool):
        return name, {"value": value, "unit": None}
    if name == "state_of_charge":
        # 0x102 byte 6 is a charged rate against the 0x100 reference, not a percentage.
        return "state_of_charge_raw", {"value": value, "unit": None}
    if name in ("min_soc_for_discharge_pct", "max_soc_for_charge_pct"):
        # 0 and 0xFF mean "not used": absent, never 255 %.
        return name.removesuffix("_pct"), {
            "value": value if isinstance(value, int) and 0 < value <= 100 else None,
            "unit": "%",
        }
    for suffix, unit in _UNIT_SUFFIXES:
        if name.endswith(suffix):
            return name.removesuffix(suffix), {"value": value, "unit": unit}
    return name, {"value": value, "unit": None}


def frame_record(
    raw: RawFrame, *, is_extended: bool = False, charged_rate_reference: int | None = None
) -> dict[str, Any]:
    """The JSON-ready record of one frame (see the module docstring).

    An extended (29-bit) id is never decoded as CHAdeMO (0x100 extended is another frame).
    `charged_rate_reference` (0x100 byte 6 of the same session) scales 0x102's SoC to percent.
    Raises FrameDecodeError when a known id carries the wrong number of bytes.
    """
    frame = None if is_extended else decode(raw.can_id, raw.data)
    record: dict[str, Any] = {
        "line": raw.line_number,
        "time": raw.time_s,
        "id": f"{raw.can_id:#010x}" if is_extended else f"{raw.can_id:#05x}",
        "extended": is_extended,
        "name": None if is_extended else name_of(raw.can_id),
        "direction": "unknown" if is_extended else direction_of(raw.can_id),
        "decoded": frame is not None,
        "raw": raw.data.hex(),
    }
    if frame is not None:
        record["fields"] = dict(
            _field_entry(name, value) for name, value in frame_fields(frame).items()
        )
        if isinstance(frame, VehicleStatus):
            pct = frame.soc_pct(charged_rate_reference) if charged_rate_reference else None
            record["fields"]["state_of_charge"] = {
                "value": None if pct is None else round(pct, 1),
                "unit": "%",
            }
        if isinstance(frame, VehicleStatus | ChargerStatus):
            record["faults"] = sorted(frame.faults())
    return record


def decode_lines(lines: Iterable[str]) -> Iterator[dict[str, Any] | LineError]:
    """A record per frame line, a LineError per bad line (numbered from 1); never stops early."""
    return decode_frames(read_lines(lines))


def decode_frames(
    items: Iterable[LoggedFrame | LineError],
) -> Iterator[dict[str, Any] | LineError]:
    """Records for read_log/read_lines output; tracks the 0x100 SoC reference of the session."""
    reference: int | None = None
    for item in items:
        if isinstance(item, LineError):
            yield item
            continue
        raw = RawFrame(item.line_number, item.timestamp_s, item.arbitration_id, item.data)
        try:
            record = frame_record(
                raw, is_extended=item.is_extended, charged_rate_reference=reference
            )
        except FrameDecodeError as error:
            yield LineError(item.line_number, raw.data.hex(), str(error))
            continue
        if record["id"] == "0x100" and "fields" in record:
            reference = record["fields"]["charged_rate_reference"]["value"] or None
        yield record


# --- File reader: one entry point for every supported log format (finding 4) ---------------


@dataclass(frozen=True, slots=True)
class LoggedFrame:
    """One CAN frame of a log. `timestamp_s` is None when the log carries no time."""

    line_number: int
    timestamp_s: float | None
    arbitration_id: int
    is_extended: bool
    data: bytes
    channel: str | None = None
    direction: str | None = None  # "rx"/"tx" when the log says so


# candump -tA: "(2026-12-05 08:15:00.123456)"
_ABS_TIME = re.compile(r"^\s*\((\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)?)\)\s+(.*)$")
_MAX_LINES: Final = 10_000_000  # a log longer than this is cut, reported as one error


def _abs_time_s(text: str) -> float:
    from datetime import UTC, datetime

    return (
        datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f" if "." in text else "%Y-%m-%d %H:%M:%S")
        .replace(tzinfo=UTC)
        .timestamp()
    )


def _candump_extended(line: str, can_id: int) -> bool:
    # candump prints 3 hex digits for 11-bit ids and 8 for 29-bit ids.
    match = _LOGFILE.match(line) or _CLASSIC.match(line)
    return can_id > 0x7FF or (match is not None and len(match["id"]) == 8)


def _csv_columns(header: str) -> dict[str, int] | None:
    cells = [cell.strip().lower().replace(" ", "") for cell in header.split(",")]
    if "id" not in cells or "len" not in cells:
        return None
    return {name: index for index, name in enumerate(cells)}


def _gvret_row(line: str, columns: dict[str, int], number: int) -> LoggedFrame:
    """A GVRET/SavvyCAN row: "Time Stamp,ID,Extended,[Dir,]Bus,LEN,D1..": signed µs timestamps."""
    cells = [cell.strip() for cell in line.strip().split(",")]
    try:
        first_data = columns.get("d1", columns["len"] + 1)
        time = float(cells[columns["timestamp"]]) / 1e6 if "timestamp" in columns else None
        can_id = _check_id(cells[columns["id"]])
        ext_cell = cells[columns["extended"]].lower() if "extended" in columns else ""
        length = int(cells[columns["len"]])
        data_cells = [cell for cell in cells[first_data:] if cell]
        if not 0 <= length <= 64 or len(data_cells) < length:
            raise LogParseError(f"LEN {length} but {len(data_cells)} data columns")
        data = bytes(int(cell, 16) for cell in data_cells[:length])
    except IndexError:
        raise LogParseError("CSV row with fewer columns than its header") from None
    except LogParseError:
        raise
    except ValueError as error:
        raise LogParseError(f"bad CSV value ({error})") from None
    direction = (
        cells[columns["dir"]].lower() if "dir" in columns and len(cells) > columns["dir"] else None
    )
    channel = cells[columns["bus"]] if "bus" in columns and len(cells) > columns["bus"] else None
    return LoggedFrame(
        number, time, can_id, ext_cell in ("true", "1") or can_id > 0x7FF, data, channel, direction
    )


def read_lines(lines: Iterable[str]) -> Iterator[LoggedFrame | LineError]:
    """Frames of a text log (candump any -t mode, candump -L, GVRET/SavvyCAN CSV).

    Bad lines become LineError (numbered from 1); reading never stops early.
    """
    columns: dict[str, int] | None = None
    for number, line in enumerate(lines, start=1):
        if number > _MAX_LINES:
            yield LineError(number, "", f"log longer than {_MAX_LINES} lines: rest not read")
            return
        text = line.strip()
        try:
            if _CSV_HEADER.match(text):
                columns = _csv_columns(text)
                continue
            if columns is not None and text and not text.startswith(("#", "//")):
                yield _gvret_row(text, columns, number)
                continue
            time_override: float | None = None
            if match := _ABS_TIME.match(text):
                time_override = _abs_time_s(match[1])
                text = f"(0) {match[2]}"
            parsed = parse_line(text)
            if parsed is None:
                continue
            time, can_id, data = parsed
            if time_override is not None:
                time = time_override
            yield LoggedFrame(number, time, can_id, _candump_extended(text, can_id), data)
        except (LogParseError, ValueError) as error:
            yield LineError(number, line, str(error))


def detect_format(head: str, name: str = "") -> str:
    """ "trc", "asc", "blf" or "text" from the first bytes (and the name as a hint)."""
    if head.startswith("LOGG"):
        return "blf"
    if head.lstrip().startswith(";$FILEVERSION") or (
        name.lower().endswith(".trc") and head.startswith(";")
    ):
        return "trc"
    first = head.lstrip().lower()
    if first.startswith(("date ", "base hex", "base dec")) or name.lower().endswith(".asc"):
        return "asc"
    return "text"


def _python_can_frames(path: str, kind: str) -> Iterator[LoggedFrame | LineError]:
    import can

    reader: Iterable[can.Message]
    if kind == "trc":
        reader = can.TRCReader(path)
    elif kind == "asc":
        reader = can.ASCReader(path)
    else:
        reader = can.BLFReader(path)
    number = 0
    try:
        for number, message in enumerate(reader, start=1):
            if message.is_remote_frame or message.is_error_frame:
                yield LineError(number, str(message), "remote or error frame (no data)")
                continue
            yield LoggedFrame(
                number,
                message.timestamp,
                message.arbitration_id,
                message.is_extended_id,
                bytes(message.data),
                None if message.channel is None else str(message.channel),
                None if message.is_rx else "tx",
            )
    except Exception as error:  # python-can readers raise many types on malformed input
        yield LineError(number + 1, "", f"{kind} reader stopped: {error}")


def read_log(path: str) -> Iterator[LoggedFrame | LineError]:
    """Every frame of the log at `path`, any supported format (detected by content).

    Text formats: candump (timestamps none/-ta/-td/-tz/-tA), candump -L, GVRET/SavvyCAN CSV
    (with or without the Dir column, signed µs timestamps). Binary/vendor formats via
    python-can: PCAN .trc, Vector .asc, .blf. Raises OSError when the file cannot be opened.
    """
    with open(path, "rb") as probe:
        head = probe.read(256).decode("latin-1")
    kind = detect_format(head, path)
    if kind != "text":
        yield from _python_can_frames(path, kind)
        return
    with open(path, encoding="utf-8", errors="replace", newline="") as handle:
        yield from read_lines(handle)
