"""Issue 11, OCPP edge bounds as pure logic: the schema bounds walk (finding 3), the nesting
limit on parse, the token buckets behind pacing and storage quotas (finding 6) and the bounded
NotifyReport assembly (finding 2)."""

from __future__ import annotations

import copy
import math
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csms import oca_schemas
from csms.domain.quotas import (
    MISSING_LISTED,
    LimitConfig,
    LimitsRegistry,
    ReportAssembly,
    TokenBucket,
)
from csms.ocpp_server import protocol
from tests.support.csms_payloads import VALID

INT64_MAX = 2**63 - 1


def _refused(action: str, payload: dict[str, Any]) -> oca_schemas.SchemaViolation:
    with pytest.raises(oca_schemas.SchemaViolation) as info:
        oca_schemas.check(action, "Request", payload)
    return info.value


# ---- finding 3: integral floats and integer ranges ------------------------------------------


@pytest.mark.parametrize("value", [5.0, 1e19, 1e30, 1.8446744073709552e19])
def test_finding3_integral_float_refused_where_the_schema_says_integer(value: float) -> None:
    # fastjsonschema and jsonschema both take these as integers.
    payload = {**VALID["StatusNotification"], "evseId": value}
    error = _refused("StatusNotification", payload)
    assert (error.code, error.path) == ("TypeConstraintViolation", "evseId")


def test_finding3_integral_float_refused_deep_in_a_transaction_event() -> None:
    payload = copy.deepcopy(VALID["TransactionEvent"])
    payload["seqNo"] = 9.0
    assert _refused("TransactionEvent", payload).path == "seqNo"
    payload = copy.deepcopy(VALID["TransactionEvent"])
    payload["evse"] = {"id": 1e19}
    error = _refused("TransactionEvent", payload)
    assert (error.code, error.path) == ("TypeConstraintViolation", "evse/id")


@pytest.mark.parametrize("value", [2**31, 2**63, 2**64 - 1, -(2**31) - 1])
def test_finding3_int64_overflow_and_int32_range_refused(value: int) -> None:
    payload = copy.deepcopy(VALID["TransactionEvent"])
    payload["seqNo"] = value
    error = _refused("TransactionEvent", payload)
    assert (error.code, error.path) == ("PropertyConstraintViolation", "seqNo")


def test_finding3_int32_bounds_are_accepted() -> None:
    payload = copy.deepcopy(VALID["TransactionEvent"])
    for value in (0, 2**31 - 1, -(2**31)):
        payload["seqNo"] = value
        oca_schemas.check("TransactionEvent", "Request", payload)


def test_finding3_schema_bounds_are_kept_in_the_plan() -> None:
    # The walk keeps the schema's own minimum/maximum (stateOfCharge 0..100) inside int32.
    plan = oca_schemas.bounds_checker("NotifyEVChargingNeeds", "Request")
    assert plan is not None
    dc = plan[1]["chargingNeeds"][1]["dcChargingParameters"][1]
    assert dc["stateOfCharge"] == ("int", 0, 100)
    assert dc["evMaxPower"] == ("int", -(2**31), 2**31 - 1)


def test_finding3_int64_overflow_in_free_form_data_refused() -> None:
    payload = {"vendorId": "v", "data": {"deep": [1, {"n": 2**63}]}}
    error = _refused("DataTransfer", payload)
    assert (error.code, error.path) == ("PropertyConstraintViolation", "data/deep/1/n")
    # Floats (finite: JSON has no NaN) and int64 values are free-form data like any other.
    oca_schemas.check("DataTransfer", "Request", {"vendorId": "v", "data": [1e30, INT64_MAX]})


def test_finding3_int64_overflow_in_custom_data_refused() -> None:
    payload = {**VALID["Heartbeat"], "customData": {"vendorId": "v", "big": -(2**63) - 1}}
    error = _refused("Heartbeat", payload)
    assert (error.code, error.path) == ("PropertyConstraintViolation", "customData/big")


def test_finding3_number_fields_take_floats_but_not_huge_integers() -> None:
    payload = copy.deepcopy(VALID["MeterValues"])
    payload["meterValue"][0]["sampledValue"][0]["value"] = 1e300
    oca_schemas.check("MeterValues", "Request", payload)
    payload["meterValue"][0]["sampledValue"][0]["value"] = 2**64 - 1
    assert _refused("MeterValues", payload).code == "PropertyConstraintViolation"


@pytest.mark.parametrize("action", sorted(VALID))
def test_finding3_every_valid_payload_still_passes(action: str) -> None:
    oca_schemas.check(action, "Request", VALID[action])


# ---- nesting depth ----------------------------------------------------------------------------


def _nested(depth: int) -> str:
    # a DataTransfer whose frame nests `depth` levels (frame array + payload + data)
    data = "[" * (depth - 2) + "]" * (depth - 2)
    return f'[2,"deep-1","DataTransfer",{{"vendorId":"v","data":{data}}}]'


@pytest.mark.parametrize("raw_type", [str, bytes])
def test_finding3_nesting_depth_over_the_limit_is_a_format_violation(raw_type: type) -> None:
    raw = _nested(33)
    frame = raw if raw_type is str else raw.encode()
    with pytest.raises(protocol.FrameError) as info:
        protocol.parse(frame, 32)
    assert (info.value.message_id, info.value.error.code) == ("deep-1", "FormatViolation")
    assert isinstance(protocol.parse(_nested(32), 32), protocol.Call)


def test_finding3_nesting_depth_counts_brackets_in_strings_as_text() -> None:
    raw = '[2,"s","DataTransfer",{"vendorId":"v","data":"' + "[{" * 500 + '\\"]"}]'
    assert isinstance(protocol.parse(raw, 32), protocol.Call)


def test_finding3_nesting_depth_1000_levels_never_reaches_the_parser() -> None:
    # orjson would take these (its own limit is 1024).
    with pytest.raises(protocol.FrameError) as info:
        protocol.parse(_nested(1000), 32)
    assert info.value.error.code == "FormatViolation"


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.integers(-(2**63), 2**63 - 1) | st.text(alphabet='[]{}"\\ab'),
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(st.text(alphabet='[]{}"\\ab', max_size=4), children, max_size=3)
        ),
        max_leaves=40,
    )
)
def test_nesting_depth_matches_the_parsed_structure(value: Any) -> None:
    def depth(v: Any) -> int:
        if isinstance(v, list):
            return 1 + max((depth(x) for x in v), default=0)
        if isinstance(v, dict):
            return 1 + max((depth(x) for x in v.values()), default=0)
        return 0

    raw = orjson.dumps(value)
    actual = depth(value)
    for limit in (max(actual - 1, 0), actual, actual + 1):
        assert protocol.nesting_exceeds(raw, limit) == (actual > limit)
        assert protocol.nesting_exceeds(raw.decode(), limit) == (actual > limit)


# ---- token bucket (pacing, storage quota) -------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    rate=st.floats(0.1, 1000),
    burst=st.integers(1, 50),
    gaps=st.lists(st.floats(0, 2), min_size=1, max_size=200),
)
def test_pacing_keeps_any_window_to_burst_plus_rate(
    rate: float, burst: int, gaps: list[float]
) -> None:
    """A caller that acts one at a time, after the wait `reserve` gives, acts at most
    burst + rate x T times in any window of T seconds."""
    bucket = TokenBucket.full(rate, burst, 0.0)
    now, acted = 0.0, []
    for gap in gaps:
        now += gap
        wait = bucket.reserve(now)
        assert 0 <= wait <= 1 / rate + 1e-9  # debt never exceeds one token
        now += wait
        acted.append(now)
    for i, start in enumerate(acted):
        for j in range(i, len(acted)):
            window = acted[j] - start
            assert j - i + 1 <= burst + rate * window + 1e-6


@settings(max_examples=200, deadline=None)
@given(
    capacity=st.integers(1, 10_000),
    sizes=st.lists(st.tuples(st.integers(0, 12_000), st.floats(0, 5)), max_size=100),
)
def test_storage_bucket_never_grants_more_than_capacity_plus_refill(
    capacity: int, sizes: list[tuple[int, float]]
) -> None:
    rate = capacity / 10.0
    bucket = TokenBucket.full(rate, capacity, 0.0)
    now, granted = 0.0, 0
    for size, gap in sizes:
        now += gap
        wait = bucket.wait_for(size, now)
        if bucket.take(size, now):
            granted += size
            assert wait == 0
        else:
            assert wait > 0
            assert math.isinf(wait) == (size > capacity)
        assert granted <= capacity + rate * now + 1e-6


def test_token_bucket_refuses_non_finite_settings() -> None:
    for bad in (math.nan, math.inf, -1.0):
        with pytest.raises(ValueError, match="rate"):
            TokenBucket.full(bad, 10, 0.0)


def test_token_bucket_clock_stepping_back_refills_nothing() -> None:
    bucket = TokenBucket.full(1.0, 2, 100.0)
    assert bucket.take(2, 100.0)
    assert not bucket.take(1, 50.0)
    assert not bucket.take(1, 100.5)
    assert bucket.take(1, 101.0)


def test_finding6_storage_quota_refuses_large_and_over_quota_once_per_burst() -> None:
    limits = LimitsRegistry(
        LimitConfig(event_max_bytes=1000, storage_quota_bytes=3000, storage_period_s=3000.0)
    )
    too_large = limits.admit_storage("CS1", 1001, 0.0)
    assert (too_large.allowed, too_large.reason, too_large.first_of_burst) == (
        False,
        "PayloadTooLarge",
        True,
    )
    assert math.isinf(too_large.retry_after_s)
    assert all(limits.admit_storage("CS1", 1000, 0.0).allowed for _ in range(3))
    first = limits.admit_storage("CS1", 1000, 0.0)
    again = limits.admit_storage("CS1", 1000, 1.0)
    assert (first.allowed, first.reason, first.first_of_burst) == (False, "QuotaExceeded", True)
    assert (again.allowed, again.first_of_burst) == (False, False)
    assert again.retry_after_s == pytest.approx(999.0)  # 1 byte/s refill
    # Another station has its own quota; this one gets bytes back as time passes.
    assert limits.admit_storage("CS2", 1000, 1.0).allowed
    assert limits.admit_storage("CS1", 1000, 1000.0).allowed
    assert limits.admit_storage("CS1", 1000, 2000.0).allowed
    # NotifyReport parts are not limited per message, only by the quota.
    assert limits.admit_storage("CS3", 2000, 0.0, per_message_limit=False).allowed


def test_quota_zero_means_no_quota() -> None:
    limits = LimitsRegistry(LimitConfig(storage_quota_bytes=0, rate_per_s=0))
    assert all(limits.admit_storage("CS1", 60_000, 0.0).allowed for _ in range(1000))
    assert limits.pace("CS1", 0.0) == (0.0, False)


def test_pacing_logs_once_per_burst() -> None:
    limits = LimitsRegistry(LimitConfig(rate_per_s=1.0, rate_burst=2))
    assert limits.pace("CS1", 0.0) == (0.0, False)
    assert limits.pace("CS1", 0.0) == (0.0, False)
    assert limits.pace("CS1", 0.0) == (1.0, True)
    assert limits.pace("CS1", 1.0) == (1.0, False)  # still in the burst
    assert limits.pace("CS1", 100.0) == (0.0, False)  # burst over
    assert limits.station("CS1", 100.0).paced_frames == 2


# ---- finding 2: NotifyReport parts ------------------------------------------------------------


def test_finding2_notify_report_huge_seqno_is_counted_not_enumerated() -> None:
    reports = ReportAssembly(max_open=4, max_parts=100, timeout_s=600)
    summary, abandoned = reports.add(1, INT64_MAX, True, 0.0)
    assert summary is not None and abandoned == []
    assert summary.parts == [INT64_MAX]
    assert summary.missing_count == INT64_MAX
    assert summary.missing_parts == list(range(MISSING_LISTED))
    assert len(reports) == 0


def test_finding2_notify_report_gaps() -> None:
    reports = ReportAssembly(max_open=4, max_parts=100, timeout_s=600)
    for seq in (0, 2, 2, 5):
        assert reports.add(7, seq, False, 0.0) == (None, [])
    summary, _ = reports.add(7, 6, True, 1.0)
    assert summary is not None
    assert (summary.parts, summary.missing_parts, summary.missing_count) == (
        [0, 2, 5, 6],
        [1, 3, 4],
        3,
    )


def test_finding2_notify_report_parts_bounded_in_count() -> None:
    reports = ReportAssembly(max_open=4, max_parts=3, timeout_s=600)
    for seq in range(3):
        reports.add(1, seq, False, 0.0)
    summary, abandoned = reports.add(1, 3, False, 0.0)
    assert summary is None
    assert [(a.request_id, a.parts, a.why) for a in abandoned] == [(1, 3, "too many parts")]
    assert len(reports) == 0


def test_finding2_notify_report_open_reports_bounded_and_timed_out() -> None:
    reports = ReportAssembly(max_open=2, max_parts=100, timeout_s=60)
    reports.add(1, 0, False, 0.0)
    reports.add(2, 0, False, 10.0)
    _, abandoned = reports.add(3, 0, False, 20.0)
    assert [(a.request_id, a.why) for a in abandoned] == [(1, "too many open reports")]
    _, abandoned = reports.add(3, 1, False, 100.0)  # report 2 sent nothing for 90 s
    assert [(a.request_id, a.why) for a in abandoned] == [(2, "no part for too long")]
    assert len(reports) == 1


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 5), st.integers(0, 2**31 - 1), st.booleans()), max_size=300)
)
def test_finding2_report_assembly_stays_bounded(parts: list[tuple[int, int, bool]]) -> None:
    reports = ReportAssembly(max_open=3, max_parts=20, timeout_s=600)
    for now, (request_id, seq_no, last) in enumerate(parts):
        summary, _ = reports.add(request_id, seq_no, last, float(now))
        assert len(reports) <= 3
        assert all(len(r.parts) <= 20 for r in reports._open.values())
        if summary is not None:
            assert len(summary.missing_parts) <= MISSING_LISTED
            assert summary.missing_count == summary.parts[-1] + 1 - len(summary.parts)


def test_limit_settings_have_defaults_and_refuse_bad_values() -> None:
    from pydantic import ValidationError

    from csms.settings import Settings

    defaults = Settings()
    assert (defaults.ocpp_max_frame_bytes, defaults.ocpp_max_json_depth) == (262144, 32)
    assert (defaults.ocpp_rate_per_s, defaults.ocpp_rate_burst) == (20.0, 100)
    assert defaults.station_event_max_bytes == 65536
    assert defaults.station_storage_quota_bytes == 16 * 1024 * 1024
    for field, bad in (
        ("ocpp_rate_per_s", "nan"),
        ("ocpp_rate_per_s", "inf"),
        ("ocpp_rate_per_s", -1),
        ("ocpp_max_frame_bytes", 100),
        ("ocpp_max_json_depth", 15),
        ("station_storage_quota_period_s", 0),
        ("report_max_parts", 0),
    ):
        with pytest.raises(ValidationError, match=field):
            Settings(**{field: bad})


def _schema_depth(node: dict[str, Any], definitions: dict[str, Any]) -> int:
    ref = node.get("$ref")
    if ref:
        return _schema_depth(definitions[ref.rsplit("/", 1)[-1]], definitions)
    if node.get("type") == "object":
        props = node.get("properties", {}).values()
        return 1 + max([_schema_depth(p, definitions) for p in props] + [0])
    if node.get("type") == "array":
        return 1 + _schema_depth(node.get("items", {}), definitions)
    return 0


def test_nesting_limit_floor_fits_every_2_0_1_message() -> None:
    """The lowest ocpp_max_json_depth allowed (16) takes the deepest typed message."""
    from csms.settings import Settings

    floor = Settings.model_fields["ocpp_max_json_depth"].metadata[0].ge
    deepest = 0
    for action in oca_schemas.ALL_ACTIONS:
        for kind in ("Request", "Response"):
            schema = oca_schemas.validator(action, kind).schema  # type: ignore[union-attr]
            deepest = max(deepest, 1 + _schema_depth(schema, schema.get("definitions", {})))
    assert deepest == 14
    assert floor >= deepest
