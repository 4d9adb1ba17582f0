"""Armed grid services (csms.v2g.armed_services), pure: what is kept to send an armed aFRR
curve, LocalFrequency profile or local-control hand-over again after an envelope change reads
back as written, anything else stored is refused, and a re-send is due exactly when the service
still runs and its bounds changed."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from csms.v2g.armed_services import (
    MAX_POWER_W,
    SAME_BOUNDS_W,
    ArmedKind,
    ArmedService,
    pruned,
    read_armed,
    resend_due,
    still_running,
)
from csms.v2g.v2x import PowerBounds

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)

unsigned = st.floats(0, MAX_POWER_W, allow_nan=False)
signed = st.floats(-MAX_POWER_W, MAX_POWER_W, allow_nan=False)
bounds = st.builds(PowerBounds, unsigned, unsigned)


@st.composite
def armed_services(draw: st.DrawFn) -> ArmedService:
    kind = draw(st.sampled_from(ArmedKind))
    until = (
        None
        if kind is ArmedKind.LOCAL_FREQUENCY
        else T0 + timedelta(seconds=draw(st.integers(-600, 86_400)))
    )
    points = draw(st.lists(st.tuples(st.floats(-1e6, 1e6, allow_nan=False), signed), max_size=20))
    return ArmedService(
        kind,
        draw(st.text(min_size=1, max_size=64)),
        draw(st.integers(0, 2**31 - 1)),
        until,
        draw(bounds),
        tuple(points),
        draw(signed),
        draw(st.none() | st.sampled_from(["ExternalSetpoint", "ExternalLimits"])),
        draw(st.none() | unsigned),
        draw(st.none() | unsigned),
    )


@given(armed_services())
def test_an_armed_service_reads_back_as_written(armed: ArmedService) -> None:
    assert ArmedService.from_dict(armed.as_dict()) == armed


BAD: list[tuple[str, Any]] = [
    ("kind", "frequency"),
    ("transaction_id", ""),
    ("transaction_id", "x" * 65),
    ("evse_id", -1),
    ("evse_id", True),
    ("until", "2026-06-01T08:00:00"),  # no zone
    ("sent", [math.inf, 0.0]),
    ("sent", [-1.0, 0.0]),
    ("sent", [2 * MAX_POWER_W, 0.0]),
    ("curve", [[49.5, math.nan]]),
    ("curve", [[49.5, 0.0]] * 21),
    ("baseline_w", -2 * MAX_POWER_W),
    ("max_charge_w", -5.0),
    ("mode", 7),
]


@pytest.mark.parametrize(("field", "value"), BAD)
def test_a_stored_entry_out_of_bounds_is_refused_and_left_out(field: str, value: Any) -> None:
    good = ArmedService(ArmedKind.AFRR, "tx-1", 1, T0, PowerBounds(7000.0, 1500.0))
    data = {**good.as_dict(), field: value}
    with pytest.raises((ValueError, TypeError, KeyError)):
        ArmedService.from_dict(data)
    assert read_armed({"afrr": data}) == {}
    assert read_armed({"afrr": good.as_dict()}) == {ArmedKind.AFRR: good}


@given(armed_services(), bounds, st.integers(-900, 90_000), st.booleans())
def test_a_resend_is_due_exactly_when_it_still_runs_and_its_bounds_changed(
    armed: ArmedService, held: PowerBounds, offset_s: int, same_tx: bool
) -> None:
    now = T0 + timedelta(seconds=offset_s)
    tx = armed.transaction_id if same_tx else armed.transaction_id + "-next"
    running = same_tx and (armed.until is None or (armed.until - now).total_seconds() >= 1)
    changed = (
        abs(held.max_charge_w - armed.sent.max_charge_w) > SAME_BOUNDS_W
        or abs(held.max_discharge_w - armed.sent.max_discharge_w) > SAME_BOUNDS_W
    )
    assert still_running(armed, now, tx) is running
    assert resend_due(armed, held, now, tx) is (running and changed)
    assert not resend_due(armed, armed.sent, now, tx)  # the same bounds: never again


@given(st.lists(armed_services(), max_size=3), st.integers(-900, 90_000))
def test_pruning_keeps_only_what_still_runs(services: list[ArmedService], offset_s: int) -> None:
    now = T0 + timedelta(seconds=offset_s)
    entries = {a.kind.value: a.as_dict() for a in services}
    kept = pruned(entries, now)
    for kind, armed in read_armed(entries).items():
        assert (kind.value in kept) is still_running(armed, now, armed.transaction_id)
    assert pruned(entries, now, running=[]) == {}  # no transaction runs: nothing is held
