"""J01/E02 meter values as rows: `meter_samples` applies unitOfMeasure (unit and 10^multiplier)
when it is given, and takes the value as sent when it is absent or empty."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from csms.ocpp_server import protocol
from csms.ocpp_server.blocks._common import MAX_MULTIPLIER, meter_samples

STAMP = "2026-12-07T23:00:00Z"


def _one(sampled: dict) -> tuple[float, str | None]:
    (sample,) = meter_samples(
        "CS1",
        [{"timestamp": STAMP, "sampledValue": [sampled]}],
        evse_id=1,
        transaction_id="tx",
    )
    assert sample.timestamp == datetime(2026, 12, 7, 23, tzinfo=UTC)
    return sample.value, sample.unit


@pytest.mark.parametrize(
    ("sampled", "expected"),
    [
        ({"value": 12.5}, (12.5, None)),
        ({"value": 12.5, "unitOfMeasure": {}}, (12.5, None)),
        ({"value": 7, "unitOfMeasure": {"unit": "kWh"}}, (7.0, "kWh")),
        ({"value": 7, "unitOfMeasure": {"unit": "W", "multiplier": 3}}, (7000.0, "W")),
        ({"value": 7, "unitOfMeasure": {"multiplier": -2}}, (0.07, None)),
    ],
)
def test_unit_of_measure_applies_when_given(sampled: dict, expected: tuple) -> None:
    value, unit = _one(sampled)
    assert (pytest.approx(value), unit) == expected


@given(
    value=st.floats(min_value=-1e6, max_value=1e6),
    multiplier=st.integers(min_value=-MAX_MULTIPLIER, max_value=MAX_MULTIPLIER),
)
def test_value_is_scaled_by_ten_to_the_multiplier(value: float, multiplier: int) -> None:
    try:
        scaled, _ = _one({"value": value, "unitOfMeasure": {"multiplier": multiplier}})
    except protocol.PropertyConstraintViolation:
        return  # beyond the magnitude bound: refused, never stored
    assert scaled == value * 10.0**multiplier


def test_multiplier_out_of_bounds_is_refused() -> None:
    with pytest.raises(protocol.PropertyConstraintViolation, match="multiplier"):
        _one({"value": 1.0, "unitOfMeasure": {"multiplier": MAX_MULTIPLIER + 1}})
