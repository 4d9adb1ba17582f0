"""Issue 17: jsonschema-rs decides that a station's payload is valid (fastjsonschema only sees
what it refuses), so the two must agree. Differential: fuzzed valid and mutated payloads of
every action of both versions, parsed as the server parses them, get the same verdict from
both compiled validators; and `check` gives the same outcome as the previous path (fastjsonschema,
then jsonschema's best_match) with the same code and path."""

from __future__ import annotations

import copy
import random
from typing import Any

import fastjsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from csms import oca_schemas
from csms.oca_bounds import SchemaViolation, check_bounds
from csms.ocpp_server import protocol
from tests.support.fuzz_frames import ACTIONS_BY_VERSION, FrameFuzzer
from v2g_shared.ocpp_versions import OcppVersion

VERSIONS = (OcppVersion.V201, OcppVersion.V21)


def _fast_accepts(action: str, kind: str, payload: Any, version: OcppVersion) -> bool:
    fast = oca_schemas.fast_validator(action, kind, version)
    assert fast is not None
    try:
        fast(payload)
    except fastjsonschema.JsonSchemaValueException:
        return False
    return True


def _bounds_accept(action: str, kind: str, payload: Any, version: OcppVersion) -> bool:
    bounds = oca_schemas.bounds_checker(action, kind, version)
    if bounds is None:
        return True
    try:
        check_bounds(bounds, payload)
    except SchemaViolation:
        return False
    return True


def _in_int64_margin(value: Any) -> bool:
    """A number the Rust side refuses though the bounds allow it: within 1024 of int64's ends
    or a float beyond them (left to the slow path, where float rounding cannot mislead)."""
    if isinstance(value, dict):
        return any(_in_int64_margin(v) for v in value.values())
    if isinstance(value, list):
        return any(_in_int64_margin(v) for v in value)
    return type(value) in (int, float) and abs(value) > 2**63 - 1025


def _previous_check(action: str, kind: str, payload: Any, version: OcppVersion) -> None:
    """`check` as it was before issue 17: fastjsonschema decides, then the bounds."""
    if not _fast_accepts(action, kind, payload, version):
        oca_schemas._check_refused(action, kind, payload, version, None)
        raise AssertionError("fastjsonschema refused but _check_refused passed")
    bounds = oca_schemas.bounds_checker(action, kind, version)
    if bounds is not None:
        check_bounds(bounds, payload)


def _outcome(check: Any, action: str, payload: Any, version: OcppVersion) -> Any:
    try:
        check(action, "Request", payload, version)
    except SchemaViolation as exc:
        return (exc.code, exc.path)
    return "accepted"


def _parsed(frame_text: str | bytes) -> dict[str, Any] | None:
    try:
        frame = protocol.parse(frame_text, ocpp21=True)
    except protocol.FrameError:
        return None
    assert isinstance(frame, protocol.Call)
    return frame.payload


def _payloads(version: OcppVersion, seed: int) -> list[tuple[str, dict[str, Any]]]:
    fuzzer = FrameFuzzer(random.Random(seed), version=version)
    out = []
    for action in ACTIONS_BY_VERSION[version]:
        for frame in (fuzzer.valid_call(action), fuzzer.mutated_call(action)):
            payload = _parsed(frame.data)
            if payload is not None:
                out.append((action, payload))
    return out


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: v.label)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1))
def test_rust_and_fastjsonschema_agree_on_fuzzed_payloads(version: OcppVersion, seed: int) -> None:
    accepted = refused = 0
    for action, payload in _payloads(version, seed):
        rust = oca_schemas.rust_validator(action, "Request", version)
        assert rust is not None
        verdict = oca_schemas._rust_accepts(rust, payload)
        # The bounds are folded into the Rust side's schema: it accepts exactly what passes
        # both the schema and the bounds, except numbers in int64's outer margin.
        both = _fast_accepts(action, "Request", payload, version) and _bounds_accept(
            action, "Request", payload, version
        )
        assert verdict == both or (both and _in_int64_margin(payload)), (action, payload)
        assert _outcome(oca_schemas.check, action, payload, version) == _outcome(
            _previous_check, action, payload, version
        ), (action, payload)
        accepted += verdict
        refused += not verdict
    assert accepted and refused  # both verdicts were exercised


TX = {
    "eventType": "Updated",
    "timestamp": "2026-01-01T00:00:00Z",
    "triggerReason": "MeterValuePeriodic",
    "seqNo": 1,
    "transactionInfo": {"transactionId": "T1"},
    "meterValue": [
        {"timestamp": "2026-01-01T00:00:00Z", "sampledValue": [{"value": 1.5}]},
    ],
}


def _with(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    payload = copy.deepcopy(TX)
    node: Any = payload
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return payload


EDGES = [
    _with(("seqNo",), 2**64),  # beyond 64 bits: not convertible for the Rust side
    _with(("seqNo",), -(2**70)),
    _with(("seqNo",), 2**63 - 1),
    _with(("seqNo",), 5.0),  # an integral float where the schema says integer
    _with(("seqNo",), 1e30),
    _with(("seqNo",), True),  # a boolean is not an integer
    _with(("seqNo",), "1"),
    _with(("meterValue", 0, "sampledValue", 0, "value"), float("inf")),
    _with(("meterValue", 0, "sampledValue", 0, "value"), False),
    _with(("meterValue", 0, "timestamp"), "2026-13-01T00:00:00Z"),
    _with(("meterValue", 0, "timestamp"), "yesterday"),
    _with(("meterValue", 0, "timestamp"), "2026-01-01"),
    _with(("timestamp",), "2026-01-01T00:00:00+05:30"),
    _with(("transactionInfo", "transactionId"), "é" * 36),  # maxLength counts characters
    _with(("transactionInfo", "transactionId"), "é" * 37),
    _with(("transactionInfo", "transactionId"), "\U0001f600" * 36),
    _with(("transactionInfo", "transactionId"), ""),
    _with(("eventType",), "updated"),
    _with(("meterValue",), []),  # minItems
    _with(("extra",), {"a": [1, 2, {"b": None}]}),  # additionalProperties false
    _with(("transactionInfo", "customData"), {"vendorId": "v", "x": [1, {"y": 2**70}]}),
]


@pytest.mark.parametrize("payload", EDGES)
def test_rust_and_fastjsonschema_agree_on_edge_values(payload: dict[str, Any]) -> None:
    for version in VERSIONS:
        assert _outcome(oca_schemas.check, "TransactionEvent", payload, version) == _outcome(
            _previous_check, "TransactionEvent", payload, version
        )


INT32, INT64 = 2**31, 2**63
# Integers at and beside every bound the Rust side now checks: int32 fields, numbers (int64)
# and free-form data (int64), where a float comparison could round a value into range.
BOUND_EDGES = [
    *(_with(("seqNo",), v) for v in (INT32 - 1, INT32, -INT32, -INT32 - 1, -1)),
    *(
        _with(("meterValue", 0, "sampledValue", 0, "value"), v)
        for v in (INT64 - 1, INT64, -INT64, -INT64 - 1, INT64 - 1024, INT64 - 1025, 9.3e18, -1e300)
    ),
    *(
        _with(("transactionInfo", "customData"), {"vendorId": "v", "x": [1, {"y": v}]})
        for v in (INT64 - 1, INT64, -INT64, -INT64 - 1, 2**64 - 1, 5.0, 1e300)
    ),
    _with(("evse",), {"id": INT32 - 1, "connectorId": INT32}),
    _with(("evse",), {"id": 1.0}),
    _with(("meterValue", 0, "sampledValue", 0, "unitOfMeasure"), {"multiplier": 2.0}),
]


@pytest.mark.parametrize("payload", BOUND_EDGES)
def test_the_rust_side_holds_the_bounds_at_their_edges(payload: dict[str, Any]) -> None:
    for version in VERSIONS:
        rust = oca_schemas.rust_validator("TransactionEvent", "Request", version)
        verdict = oca_schemas._rust_accepts(rust, payload)
        both = _fast_accepts("TransactionEvent", "Request", payload, version) and _bounds_accept(
            "TransactionEvent", "Request", payload, version
        )
        assert verdict == both or (both and _in_int64_margin(payload))
        assert _outcome(oca_schemas.check, "TransactionEvent", payload, version) == _outcome(
            _previous_check, "TransactionEvent", payload, version
        )


_CRITICAL_INTS = st.one_of(
    st.integers(-(2**65), 2**65),
    st.sampled_from([INT32, INT64, 2**64]).flatmap(
        lambda edge: st.integers(-edge - 2048, -edge + 2048) | st.integers(edge - 2048, edge + 2048)
    ),
    st.floats(allow_nan=False, allow_infinity=False),
)


@settings(max_examples=300, deadline=None)
@given(seq_no=_CRITICAL_INTS, value=_CRITICAL_INTS, free=_CRITICAL_INTS)
def test_check_keeps_its_verdict_for_any_number_near_a_bound(
    seq_no: Any, value: Any, free: Any
) -> None:
    payload = copy.deepcopy(TX)
    payload["seqNo"] = seq_no
    payload["meterValue"][0]["sampledValue"][0]["value"] = value
    payload["transactionInfo"]["customData"] = {"vendorId": "v", "n": [free, {"m": free}]}
    for version in VERSIONS:
        assert _outcome(oca_schemas.check, "TransactionEvent", payload, version) == _outcome(
            _previous_check, "TransactionEvent", payload, version
        )


def test_the_schemas_use_no_keyword_whose_meaning_differs_between_drafts_4_and_6() -> None:
    """The Rust side validates the OCPP schemas (draft 6) as draft 4, for draft 4's integer.
    Keywords new in draft 6 or changed by it (const, contains, propertyNames, exclusiveMinimum
    as a number, boolean schemas) would be read differently: none may appear."""
    allowed = {
        "$schema", "$id", "comment", "description", "javaType", "definitions", "type",
        "properties", "required", "additionalProperties", "additionalItems", "items",
        "minItems", "maxItems", "maxLength", "minLength", "minimum", "maximum", "enum",
        "format", "default", "$ref",
    }  # fmt: skip
    for version in VERSIONS:
        for action in oca_schemas.TABLES[version].all_actions:
            for kind in ("Request", "Response"):
                schema = oca_schemas._schema(action, kind, version)
                if schema is None:
                    continue
                stack: list[Any] = [schema]
                while stack:
                    node = stack.pop()
                    assert isinstance(node, dict), (action, kind, node)
                    assert set(node) <= allowed, (action, kind, set(node) - allowed)
                    for key in ("properties", "definitions"):
                        stack.extend(node.get(key, {}).values())
                    for key in ("items", "additionalProperties", "additionalItems"):
                        if isinstance(node.get(key), dict):
                            stack.append(node[key])
