"""Issue 11, findings 3 and 10: the API's JSON body check (non-finite numbers, nesting depth)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from csms.api.deps import MAX_JSON_DEPTH, _json_problem


def _nested(levels: int) -> Any:
    value: Any = 1.5
    for level in range(levels):
        value = {"k": value} if level % 2 else [value]
    return value


@pytest.mark.parametrize(
    "body",
    [math.nan, math.inf, -math.inf, {"a": [1, {"b": math.nan}]}, [0.5, 2, "x", -math.inf]],
)
def test_finding10_non_finite_numbers_anywhere_are_refused(body: Any) -> None:
    assert _json_problem(body) == "NaN and Infinity are not JSON numbers"


@pytest.mark.parametrize("body", [1.5, 0, "NaN", None, True, {"a": [1, 2.5, {"b": 1e308}]}, []])
def test_finding10_finite_json_passes(body: Any) -> None:
    assert _json_problem(body) is None


def test_finding3_nesting_is_bounded() -> None:
    assert _json_problem(_nested(MAX_JSON_DEPTH)) is None
    assert _json_problem(_nested(MAX_JSON_DEPTH + 1)) == (
        f"JSON nested deeper than {MAX_JSON_DEPTH} levels"
    )
    assert _json_problem(_nested(5000)) is not None  # no recursion to exhaust
