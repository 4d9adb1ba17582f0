"""OCPP-J Part 4 §4.3 error codes for malformed CALLs reaching the agent (schema_error)."""

from __future__ import annotations

from typing import Any

import pytest
from ocpp.messages import Call

from chargepoint_firmware.ocpp_edge.session import schema_error


@pytest.mark.parametrize(
    ("action", "payload", "code"),
    [
        ("Reset", {}, "OccurenceConstraintViolation"),
        ("Reset", {"type": "Sideways"}, "PropertyConstraintViolation"),
        ("Reset", {"type": 5}, "TypeConstraintViolation"),
        ("ClearCache", {"extra": True}, "FormatViolation"),
        ("RequestStopTransaction", {"transactionId": "T" * 37}, "PropertyConstraintViolation"),
        ("GetVariables", {"getVariableData": []}, "OccurenceConstraintViolation"),
    ],
)
def test_malformed_call_gets_the_part4_error_code(
    action: str, payload: dict[str, Any], code: str
) -> None:
    error = schema_error(Call("1", action, payload), "2.0.1")
    assert error is not None
    assert error.code == code
    assert len(error.description) <= 255


def test_valid_call_has_no_error() -> None:
    assert schema_error(Call("1", "Reset", {"type": "Immediate"}), "2.0.1") is None
    assert (
        schema_error(Call("1", "RequestStopTransaction", {"transactionId": "T" * 36}), "2.0.1")
        is None
    )
