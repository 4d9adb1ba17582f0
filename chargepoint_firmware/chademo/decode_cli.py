"""`chargepoint chademo-decode LOG`: print one JSON object per CAN frame of a CHAdeMO log.

LOG is a candump text file (any -t timestamp mode, or -L), a GVRET/SavvyCAN CSV, or (via
python-can) a PCAN .trc, Vector .asc or .blf file, detected by content; ``-`` reads text
from standard input. Bad lines are reported on stderr with their line number and decoding
continues. Exit status: 0 all lines decoded, 1 some lines were bad, 2 the log could not be read.
The record layout is documented in log_decode.py.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import Any, TextIO

from chargepoint_firmware.chademo.log_decode import LineError, decode_frames, decode_lines, read_log

EXIT_OK = 0
EXIT_BAD_LINES = 1
EXIT_UNREADABLE = 2


def _write_records(items: Iterable[dict[str, Any] | LineError], out: TextIO, err: TextIO) -> int:
    bad = 0
    for item in items:
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
        return _write_records(decode_lines(sys.stdin), out, errors)
    try:
        return _write_records(decode_frames(read_log(log_path)), out, errors)
    except OSError as error:
        print(f"chademo-decode: cannot read {log_path}: {error.strerror or error}", file=errors)
        return EXIT_UNREADABLE


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] in ("-h", "--help"):
        print("usage: chademo-decode LOG   (LOG = candump, CSV, .trc, .asc or .blf; - = stdin)")
        return EXIT_OK if args and args[0] in ("-h", "--help") else EXIT_UNREADABLE
    return run(args[0], sys.stdout)


if __name__ == "__main__":
    raise SystemExit(main())
