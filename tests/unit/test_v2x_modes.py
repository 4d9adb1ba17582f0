"""OCPP 2.1 operation modes -> the signed target of a CHAdeMO EVSE (Q; pure)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from chargepoint_firmware.blocks.smart_charging.v2x_modes import V2xInputs, signal_watt, v2x_target
from v2g_shared.schedule import OperationMode, V2xPeriod

Mode = OperationMode
CURVE = ((49.5, -7000.0), (50.0, 0.0), (50.5, 7000.0))


def test_q_charging_only_never_discharges() -> None:
    period = V2xPeriod(Mode.CHARGING_ONLY, native=True)
    assert v2x_target(period, 11000, V2xInputs())[0] == 11000
    assert v2x_target(period, -5000, V2xInputs())[0] == 0
    assert v2x_target(period, None, V2xInputs())[0] is None


def test_q_idle_is_zero() -> None:
    assert v2x_target(V2xPeriod(Mode.IDLE), 11000, V2xInputs()) == (0.0, "v2x:Idle")


def test_q_central_setpoint_is_bounded_by_discharge_limit_and_limit() -> None:
    period = V2xPeriod(Mode.CENTRAL_SETPOINT, setpoint=-9000, discharge_limit=-6000)
    assert v2x_target(period, 11000, V2xInputs())[0] == -6000
    charge = V2xPeriod(Mode.CENTRAL_SETPOINT, setpoint=20000)
    assert v2x_target(charge, 11000, V2xInputs())[0] == 11000


def test_q_der_cap_and_disallowed_discharge_bound_the_setpoint() -> None:
    period = V2xPeriod(Mode.CENTRAL_SETPOINT, setpoint=-9000)
    assert v2x_target(period, None, V2xInputs(der_discharge_cap=2500))[0] == -2500
    assert v2x_target(period, None, V2xInputs(discharge_allowed=False))[0] == 0


def test_q_local_frequency_follows_the_curve_around_the_baseline() -> None:
    period = V2xPeriod(Mode.LOCAL_FREQUENCY, v2x_baseline=1000, freq_watt_curve=CURVE)
    assert v2x_target(period, None, V2xInputs(grid_frequency_hz=49.75))[0] == -2500
    assert v2x_target(period, None, V2xInputs(grid_frequency_hz=50.25))[0] == 4500
    assert v2x_target(period, None, V2xInputs())[0] == 1000  # no measurement: the baseline


def test_q_central_frequency_uses_the_afrr_signal_curve() -> None:
    period = V2xPeriod(
        Mode.CENTRAL_FREQUENCY, setpoint=500, signal_watt_curve=((-100, -5000), (100, 5000))
    )
    assert v2x_target(period, None, V2xInputs())[0] == 500
    assert v2x_target(period, None, V2xInputs(afrr_signal=-50))[0] == -2500
    assert signal_watt(((-100, -5000), (100, 5000)), 1000) == 5000


@given(
    setpoint=st.floats(-1e6, 1e6),
    limit=st.one_of(st.none(), st.floats(-1e5, 1e5)),
    discharge_limit=st.one_of(st.none(), st.floats(-1e5, 0)),
    cap=st.one_of(st.none(), st.floats(0, 1e5)),
    allowed=st.booleans(),
    mode=st.sampled_from(list(Mode)),
    hz=st.one_of(st.none(), st.floats(45, 55)),
)
def test_q_target_never_leaves_its_bounds(
    setpoint: float,
    limit: float | None,
    discharge_limit: float | None,
    cap: float | None,
    allowed: bool,
    mode: OperationMode,
    hz: float | None,
) -> None:
    period = V2xPeriod(
        mode, setpoint=setpoint, discharge_limit=discharge_limit, freq_watt_curve=CURVE
    )
    inputs = V2xInputs(grid_frequency_hz=hz, discharge_allowed=allowed, der_discharge_cap=cap)
    target, _ = v2x_target(period, limit, inputs)
    if target is None:
        return
    lower = max(
        discharge_limit if discharge_limit is not None else -1e12,
        -cap if cap is not None else -1e12,
        -1e12 if allowed else 0.0,
    )
    assert target >= lower
    if limit is not None and lower <= limit:
        assert target <= max(limit, 0.0) if mode is not Mode.IDLE else target == 0
