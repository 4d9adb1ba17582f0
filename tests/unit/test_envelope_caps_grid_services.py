"""Grid-service dispatches held to the station's envelope share (csms.v2g.envelope_caps), pure:
for any dispatch and any envelope, every power a profile carries stays within the share."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from csms.v2g.envelope_caps import envelope_share_w, held_bounds, held_power_w
from csms.v2g.v2x import (
    OperationMode,
    PowerBounds,
    V2xPeriod,
    afrr_period,
    central_frequency_period,
    frequency_period,
    local_control_period,
    setpoint_period,
)
from csms.v2g.vehicle import PowerCap

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
TOLERANCE_W = 0.1  # profiles carry W rounded to 0.1

kw = st.floats(0, 50, allow_nan=False)
watts = st.floats(-50_000, 50_000, allow_nan=False)
offsets = st.integers(-3600, 3600)


@st.composite
def caps(draw: st.DrawFn) -> list[PowerCap]:
    out = []
    for _ in range(draw(st.integers(0, 4))):
        start = T0 + timedelta(seconds=draw(offsets))
        length = draw(st.one_of(st.none(), st.integers(1, 7200)))
        end = None if length is None else start + timedelta(seconds=length)
        out.append(PowerCap(start, end, draw(kw), draw(kw)))
    return out


def powers_of(period: V2xPeriod) -> list[float]:
    """Every power the period asks or allows (signed W, + charge)."""
    out = [
        w
        for w in (period.limit_w, period.setpoint_w, period.discharge_limit_w, period.baseline_w)
        if w is not None
    ]
    out += [w for _, w in period.freq_watt or ()]
    out += [w for _, w in period.signal_watt or ()]
    return out


def within(power_w: float, share: tuple[float, float] | None) -> bool:
    if share is None:
        return True
    return -share[1] - TOLERANCE_W <= power_w <= share[0] + TOLERANCE_W


@given(watts, caps(), offsets, st.integers(1, 3600))
def test_a_held_power_is_within_the_share_and_never_larger(
    power_w: float, found: list[PowerCap], start_s: int, duration_s: int
) -> None:
    start = T0 + timedelta(seconds=start_s)
    end = start + timedelta(seconds=duration_s)
    held, limited = held_power_w(power_w, found, start, end)
    share = envelope_share_w(found, start, end)
    assert within(held, share)
    assert abs(held) <= abs(power_w) and held * power_w >= 0  # cut towards 0, never flipped
    assert limited == (held != power_w)


@given(
    st.floats(0, 20_000), st.floats(0, 20_000), caps(), offsets, st.integers(1, 3600), watts, watts
)
def test_every_grid_service_profile_built_on_held_bounds_is_within_the_share(
    charge_w: float,
    discharge_w: float,
    found: list[PowerCap],
    start_s: int,
    duration_s: int,
    asked_w: float,
    baseline_w: float,
) -> None:
    start = T0 + timedelta(seconds=start_s)
    end = start + timedelta(seconds=duration_s)
    vehicle = PowerBounds(charge_w, discharge_w)
    bounds, narrowed = held_bounds(vehicle, found, start, end)
    share = envelope_share_w(found, start, end)
    assert bounds.max_charge_w <= vehicle.max_charge_w
    assert bounds.max_discharge_w <= vehicle.max_discharge_w
    assert narrowed == (bounds != vehicle)
    periods = [
        central_frequency_period(asked_w, bounds),  # frequency rule (2.1) / central frequency
        afrr_period([(-100, -asked_w), (0, 0.0), (100, asked_w)], bounds, baseline_w=baseline_w),
        frequency_period([(49.5, -abs(asked_w)), (50.0, 0.0), (50.5, abs(asked_w))], bounds),
        local_control_period(OperationMode.EXTERNAL_SETPOINT, bounds),
    ]
    held, _ = held_power_w(asked_w, found, start, end)
    try:
        periods.append(setpoint_period(0, held, bounds))  # fleet dispatch / frequency (2.1)
    except ValueError:
        assert held < 0 and bounds.max_discharge_w == 0  # refused, never sent beyond
    for period in periods:
        assert all(within(w, share) for w in powers_of(period)), period
