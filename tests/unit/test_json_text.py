"""Issue 17: JSON columns are written by orjson, falling back to the json module for what
orjson refuses; what a reader parses back is what the json module's text gave before."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from csms.persistence.database import json_text

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)  # beyond 64 bits: orjson refuses, the json module writes
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(VALUES)
def test_json_text_reads_back_as_the_json_module_text_did(value: Any) -> None:
    assert json.loads(json_text(value)) == json.loads(json.dumps(value))


def test_json_text_is_compact_and_keeps_key_order() -> None:
    assert json_text({"b": 1, "a": [1.5, None, "é"]}) == '{"b":1,"a":[1.5,null,"é"]}'
    assert json_text({"n": 2**64}) == json.dumps({"n": 2**64})  # the fallback
    assert json_text({1: "x"}) == json.dumps({1: "x"})  # a non-string key: the fallback too
