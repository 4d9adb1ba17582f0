"""JSON logs (`log_format = "json"`): one JSON object per line, parsed back here."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from csms.log_format import configure_logging
from csms.settings import Settings


@pytest.fixture(autouse=True)
def _restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_json_format_writes_one_object_per_line_with_time_level_logger_message() -> None:
    out = io.StringIO()
    configure_logging("INFO", "json", stream=out)
    log = logging.getLogger("csms.test")
    log.info("station %s connected", "CS1")
    log.debug("not shown at INFO")
    log.warning('a "quoted"\nmessage on two lines', extra={"station_id": "CS2"})
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("handler failed")
    lines = out.getvalue().splitlines()
    assert len(lines) == 3  # the traceback stays inside its record's line
    records = [json.loads(line) for line in lines]
    first, second, third = records
    assert first["message"] == "station CS1 connected"
    assert first["level"] == "INFO" and first["logger"] == "csms.test"
    assert first["time"].endswith("+0000")  # UTC, ISO 8601
    assert second["message"] == 'a "quoted"\nmessage on two lines'
    assert second["station_id"] == "CS2"
    assert third["level"] == "ERROR"
    assert "ValueError: boom" in third["exc_info"]


def test_text_format_is_the_default() -> None:
    assert Settings().log_format == "text"
    out = io.StringIO()
    configure_logging("INFO", "text", stream=out)
    logging.getLogger("csms.test").info("hello")
    line = out.getvalue().strip()
    assert line.endswith("INFO csms.test: hello")
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)
