"""Property tests: whatever the vehicle sends and whatever safety allows, the controller's
commanded current never exceeds any applicable limit (design habit 10)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from chargepoint_firmware.chademo.controller import (
    VEHICLE_FRAME_STALE_S,
    ChargerState,
    ControllerConfig,
    Direction,
    InsulationResult,
)
from chargepoint_firmware.chademo.frames import (
    VehicleDischargeEstimate,
    VehicleDischargeLimits,
    VehicleStatus,
)
from tests.support.chademo_sim import EV_LIMITS, Harness

vehicle_steps = st.fixed_dictionaries(
    {
        "request": st.integers(0, 255),
        "discharge_limit": st.integers(0, 255),
        "enabled": st.booleans(),
        "contactor_open": st.booleans(),
        "compatible": st.booleans(),
        "fault": st.sampled_from([None, "fault_battery_overvoltage", "shift_not_park"]),
        "allowed": st.floats(-200.0, 200.0, allow_nan=False),
        "wanted": st.sampled_from(list(Direction)),
        "silent": st.booleans(),
        "safety_fault": st.booleans(),
        "dt": st.sampled_from([0.05, 0.1, 0.1, 0.1, 0.4]),
        "current": st.floats(-20.0, 20.0, allow_nan=False),
    }
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(vehicle_steps, min_size=1, max_size=60),
    st.floats(1.0, 125.0),
    st.floats(0.0, 125.0),
)
def test_commanded_current_never_exceeds_any_limit(
    steps: list[dict[str, object]], max_charge: float, max_discharge: float
) -> None:
    config = ControllerConfig(
        max_charge_current_a=max_charge,
        max_discharge_current_a=max_discharge,
        discharge_capable=max_discharge > 0,
    )
    h = Harness(config=config)
    h.to_energy_transfer()
    for step_input in steps:
        if not step_input["silent"]:
            h.send(
                EV_LIMITS,
                VehicleStatus(
                    protocol_number=2,
                    target_battery_voltage_v=410,
                    charging_current_request_a=step_input["request"],
                    charging_enabled=step_input["enabled"],
                    ev_contactor_open=step_input["contactor_open"],
                    discharge_compatible=step_input["compatible"],
                    **({step_input["fault"]: True} if step_input["fault"] else {}),
                ),
                VehicleDischargeLimits(
                    max_discharge_current_a=step_input["discharge_limit"],
                    min_discharge_voltage_v=250,
                ),
                VehicleDischargeEstimate(sequence_control_number=2),
            )
        h.allowed_a = step_input["allowed"]
        h.wanted = step_input["wanted"]
        h.current_a = step_input["current"]
        h.safety_faults = (
            frozenset({"emergency_stop"}) if step_input["safety_fault"] else frozenset()
        )
        h.insulation = InsulationResult.PASSED
        command = h.tick(step_input["dt"])
        out = command.output_current_a
        view = h.vehicle
        stale = view.last_frame_at is None or h.now - view.last_frame_at > VEHICLE_FRAME_STALE_S
        if out != 0.0:
            assert h.at in (ChargerState.CHARGING, ChargerState.DISCHARGING)
            assert not h.safety_faults and not stale
            assert not view.faults()
        if out > 0:
            assert out <= view.charge_request_a
            assert out <= max_charge + 1e-9
            assert out <= h.allowed_a + 1e-9
        if out < 0:
            assert view.discharge_compatible and config.discharge_capable
            assert -out <= view.max_discharge_current_a
            assert -out <= max_discharge + 1e-9
            assert -out <= -h.allowed_a + 1e-9
        if h.at not in (ChargerState.CHARGING, ChargerState.DISCHARGING):
            assert out == 0.0
