"""The bounds check runs as code generated from each schema's plan (csms/oca_bounds.py); it
must decide exactly as the plan's interpreter `_bounds_ok` does, for every action of both
versions, in both directions, on values in and out of bounds and of the wrong shape."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from csms import oca_bounds, oca_schemas
from csms.oca_bounds import INT64_MAX, INT64_MIN, Plan
from csms.oca_schemas import V21, V201

PLANS = sorted(
    {
        (version.value, action, kind)
        for version in (V201, V21)
        for action in oca_schemas.table(version).all_actions
        for kind in ("Request", "Response")
        if oca_schemas.bounds_checker(action, kind, version) is not None
    }
)
_VERSIONS = {V201.value: V201, V21.value: V21}

edge_ints = st.sampled_from(
    [0, -1, 2**31 - 1, 2**31, -(2**31), -(2**31) - 1, INT64_MAX, INT64_MAX + 1, INT64_MIN - 1]
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.text(max_size=3),
    st.floats(allow_nan=False),
    st.integers(),
    edge_ints,
)
free_form = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=2), inner, max_size=3)
    ),
    max_leaves=8,
)


def values_for(plan: Plan, depth: int = 0) -> st.SearchStrategy[Any]:
    tag = plan[0]
    if depth > 6 or tag == "any":
        return free_form
    if tag == "int":
        return st.one_of(
            st.integers(plan[1] - 2, plan[1] + 2),
            st.integers(plan[2] - 2, plan[2] + 2),
            edge_ints,
            scalars,
        )
    if tag == "num":
        return st.one_of(edge_ints, st.floats(allow_nan=False), scalars)
    if tag == "arr":
        return st.one_of(st.lists(values_for(plan[1], depth + 1), max_size=3), scalars)
    props, is_open = plan[1], plan[2]
    known = st.fixed_dictionaries(
        {}, optional={key: values_for(sub, depth + 1) for key, sub in props.items()}
    )
    if is_open:
        extra = st.dictionaries(st.text(max_size=2), free_form, max_size=2)
        known = st.builds(lambda a, b: {**b, **a}, known, extra)
    return st.one_of(known, scalars)


@pytest.mark.parametrize(("version", "action", "kind"), PLANS)
@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(data=st.data())
def test_compiled_bounds_decide_as_the_plan(
    version: str, action: str, kind: str, data: Any
) -> None:
    plan = oca_schemas.bounds_checker(action, kind, _VERSIONS[version])
    assert plan is not None
    value = data.draw(values_for(plan))
    assert oca_bounds._bounds_function(plan)(value) is oca_bounds._bounds_ok(plan, value)


def test_an_int32_field_out_of_range_is_refused_with_its_path() -> None:
    plan = oca_schemas.bounds_checker("TransactionEvent", "Request", V201)
    assert plan is not None
    payload = {"seqNo": 2**31, "meterValue": [{"sampledValue": [{"value": 2**63}]}]}
    assert oca_bounds._bounds_function(plan)(payload) is False
    with pytest.raises(oca_schemas.SchemaViolation) as caught:
        oca_schemas.check_bounds(plan, payload)
    assert caught.value.code == "PropertyConstraintViolation"
