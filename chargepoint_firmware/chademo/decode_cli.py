"""`chargepoint chademo-decode LOG`: print one JSON object per CAN frame of a CHAdeMO log.

LOG is a candump (classic or -L) text file or the CSV layout of the shared Leaf log; ``-``
reads standard input. Bad lines are reported on stderr with their line number and decoding
continues. Exit status: 0 all lines decoded, 1 some lines were bad, 2 the log could not be read.
The record layout is documented in log_decode.py.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import TextIO

from chargepoint_firmware.chademo.log_decode import LineError, decode_lines

EXIT_OK = 0
EXIT_BAD_LINES = 1
EXIT_UNREADABLE = 2


def _write_records(lines: Iterable[str], out: TextIO, err: TextIO) -> int:
    bad = 0
    for item in decode_lines(lines):
        if isinstance(item, LineError):
            bad += 1
            print(f"chademo-decode: {item}", file=err)
            continue
        out.write(json.dumps(item, separators=(",", ":")))
        out.write("\n")
    return EXIT_BAD_LINES if bad else EXIT_OK


def run(log_path: str, out: TextIO, err: TextIO | None = None) -> int:
    """Decode the log at `log_path` ("-" = stdin) to JSON lines on `out`; see the exit codes."""
    errors = sys.stderr if err is None else err
    if log_path == "-":
        return _write_records(sys.stdin, out, errors)
    try:
        handle = open(log_path, encoding="utf-8", errors="replace", newline="")  # noqa: SIM115
    except OSError as error:
        print(f"chademo-decode: cannot read {log_path}: {error.strerror or error}", file=errors)
        return EXIT_UNREADABLE
    with handle:
        return _write_records(handle, out, errors)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] in ("-h", "--help"):
        print("usage: chademo-decode LOG   (LOG = candump text or CSV file, - = stdin)")
        return EXIT_OK if args and args[0] in ("-h", "--help") else EXIT_UNREADABLE
    return run(args[0], sys.stdout)


if __name__ == "__main__":
    raise SystemExit(main())
