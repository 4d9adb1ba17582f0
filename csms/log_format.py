"""The CSMS's log format: text lines (default) or one JSON object per line (`log_format`).

JSON records have `time` (ISO 8601, UTC), `level`, `logger`, `message`, `exc_info` when an
exception is attached, and any `extra=` fields; python-json-logger writes them.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

from pythonjsonlogger.json import JsonFormatter

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def json_formatter() -> logging.Formatter:
    return JsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        timestamp=False,
        datefmt="%Y-%m-%dT%H:%M:%S%z",
    )


class _CurrentStderr(logging.StreamHandler):
    """Writes to sys.stderr as it is at each record, not as it was at setup: a redirected or
    replaced stderr (a supervisor's, a test's capture) never leaves a handler on a closed one."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def configure_logging(level: str, log_format: str = "text", stream: TextIO | None = None) -> None:
    """Replace the root logger's handlers with one writing `log_format` to `stream` (stderr)."""
    handler: logging.Handler = (
        logging.StreamHandler(stream) if stream is not None else _CurrentStderr()
    )
    if log_format == "json":
        formatter = json_formatter()
        formatter.converter = time.gmtime  # times in UTC (+0000)
    else:
        formatter = logging.Formatter(TEXT_FORMAT)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
