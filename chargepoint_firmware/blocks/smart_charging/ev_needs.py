"""NotifyEVChargingNeeds (OCPP 2.1) from what a CHAdeMO car tells the charger (pure).

CHAdeMO has no ISO 15118 charging-needs exchange, but its vehicle frames carry what the CSMS
needs to plan V2X: the maximum charge current and voltage (H'100/H'102), the discharge
capability and limits (H'200: discharge-compatible flag, maximum discharge current, minimum
discharge voltage, SoC window), the battery capacity and the state of charge. They are sent
as dcChargingParameters and v2xChargingParameters; DC_BPT is requested when the car can
discharge. controlMode DynamicControl: the charger, not the car, sets the current (the CSMS
sends setpoints); mobilityNeedsMode EVCC: the car's SoC window is its own.
"""

from __future__ import annotations

from typing import Any

from chargepoint_firmware.interfaces import EvseStatus


def _clean(values: dict[str, float | int | None]) -> dict[str, float | int]:
    return {k: v for k, v in values.items() if v is not None}


def charging_needs(status: EvseStatus) -> dict[str, Any] | None:
    """ChargingNeedsType (camelCase) for the car on this EVSE; None before the car has sent
    its limits (nothing to tell yet)."""
    car = status.vehicle
    if car.max_charge_current_a is None or car.max_voltage_v is None:
        return None
    volts = status.voltage_v if status.voltage_v > 0 else car.max_voltage_v
    soc = None if status.soc_pct is None else max(0, min(100, round(status.soc_pct)))
    needs: dict[str, Any] = {
        "requestedEnergyTransfer": "DC_BPT" if car.discharge_compatible else "DC",
        "availableEnergyTransfer": ["DC", "DC_BPT"] if car.discharge_compatible else ["DC"],
        "controlMode": "DynamicControl",
        "mobilityNeedsMode": "EVCC",
        "dcChargingParameters": _clean(
            {
                "evMaxCurrent": car.max_charge_current_a,
                "evMaxVoltage": car.max_voltage_v,
                "evEnergyCapacity": None
                if car.battery_capacity_kwh is None
                else round(car.battery_capacity_kwh * 1000.0, 1),
                "stateOfCharge": soc,
                "fullSoC": None
                if car.max_soc_for_charge_pct is None
                else max(0, min(100, round(car.max_soc_for_charge_pct))),
            }
        ),
    }
    if car.discharge_compatible:
        discharge_a = car.max_discharge_current_a
        needs["v2xChargingParameters"] = _clean(
            {
                "maxChargeCurrent": car.max_charge_current_a,
                "maxChargePower": round(car.max_charge_current_a * volts, 1),
                "maxDischargeCurrent": discharge_a,
                "maxDischargePower": None if discharge_a is None else round(discharge_a * volts, 1),
                "minVoltage": car.min_discharge_voltage_v,
                "maxVoltage": car.max_voltage_v,
            }
        )
    return needs
