"""`chargepoint chademo-replay LOG...`: replay real CHAdeMO logs through our charger state machine.

Prints each log's report (chademo/replay.py). Exit status: 0 no difference, 1 some log differs
from the real charger, 2 a log could not be read.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from chargepoint_firmware.chademo.replay import read_gvret_csv, replay


def run_cli(paths: Sequence[str], out: TextIO, err: TextIO) -> int:
    """`chargepoint chademo-replay LOG...`: print each report; 1 if any differs, 2 unreadable."""
    status = 0
    for path in paths:
        try:
            with open(path, encoding="utf-8", errors="replace", newline="") as handle:
                read = read_gvret_csv(handle)
        except OSError as error:
            print(f"chademo-replay: cannot read {path}: {error.strerror or error}", file=err)
            status = 2
            continue
        report = replay(read.frames, name=Path(path).name, skipped_lines=read.skipped)
        out.write(report.render() + "\n\n")
        if report.differences and status == 0:
            status = 1
    return status
