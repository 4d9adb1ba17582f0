"""Local safety limits and latched faults, applied last, before the hardware (pure)."""

from chargepoint_firmware.safety.supervisor import (
    FAULT_CAN_SILENCE,
    FAULT_CURRENT_DEVIATION,
    FAULT_EMERGENCY_STOP,
    FAULT_INSULATION,
    FAULT_NON_FINITE_PREFIX,
    FAULT_VEHICLE_PREFIX,
    FAULT_VOLTAGE_DEVIATION,
    SafetyConfig,
    SafetyDecision,
    SafetyInputs,
    SafetyState,
    discharge_soc_floor,
    reset_faults,
    supervise,
)

__all__ = [
    "FAULT_CAN_SILENCE",
    "FAULT_CURRENT_DEVIATION",
    "FAULT_EMERGENCY_STOP",
    "FAULT_INSULATION",
    "FAULT_NON_FINITE_PREFIX",
    "FAULT_VEHICLE_PREFIX",
    "FAULT_VOLTAGE_DEVIATION",
    "SafetyConfig",
    "SafetyDecision",
    "SafetyInputs",
    "SafetyState",
    "discharge_soc_floor",
    "reset_faults",
    "supervise",
]
