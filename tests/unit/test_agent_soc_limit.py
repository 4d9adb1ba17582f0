"""OCPP 2.1 limitAtSoC on the agent, pure: charging limited once the SoC reaches the value."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from chargepoint_firmware.blocks.smart_charging.soc_limit import (
    SocLimit,
    soc_limit_from,
    soc_limited,
)


def test_q_limit_at_soc_parsed_and_bounded() -> None:
    assert soc_limit_from({"soc": 80, "limit": 3000}, "W") == SocLimit(80.0, 3000.0, "W")
    assert soc_limit_from({"soc": 80, "limit": -5}, "W") == SocLimit(80.0, 0.0, "W")
    for bad in (None, {}, {"soc": 101, "limit": 1}, {"soc": True, "limit": 1},
                {"soc": 50, "limit": float("nan")}, {"soc": "50", "limit": 1}, [1, 2]):  # fmt: skip
        assert soc_limit_from(bad, "W") is None  # type: ignore[arg-type]


def test_q_limit_at_soc_applies_from_its_soc_and_converts_units() -> None:
    rule = SocLimit(80.0, 4000.0, "W")
    assert soc_limited(11_000.0, "W", rule, 79.9, 400.0) == 11_000.0
    assert soc_limited(11_000.0, "W", rule, 80.0, 400.0) == 4000.0
    assert soc_limited(None, "W", rule, 90.0, 400.0) == 4000.0  # unlimited -> the cap
    assert soc_limited(30.0, "A", rule, 90.0, 400.0) == 10.0  # 4,000 W at 400 V
    assert soc_limited(-5000.0, "W", rule, 95.0, 400.0) == -5000.0  # discharge untouched
    assert soc_limited(11_000.0, "W", rule, None, 400.0) == 11_000.0  # SoC unknown


@given(
    limit=st.none() | st.floats(-1e5, 1e5),
    soc=st.none() | st.floats(0, 100),
    rule_soc=st.floats(0, 100),
    cap=st.floats(0, 1e5),
)
def test_q_limit_at_soc_never_raises_charge_and_never_touches_discharge(
    limit: float | None, soc: float | None, rule_soc: float, cap: float
) -> None:
    out = soc_limited(limit, "W", SocLimit(rule_soc, cap, "W"), soc, 400.0)
    if limit is not None and limit <= 0:
        assert out == limit
    elif soc is not None and soc >= rule_soc:
        assert out is not None and out <= cap + 1e-9
        if limit is not None:
            assert out <= limit
    else:
        assert out == limit or (out is not None and limit is not None and math.isclose(out, limit))
