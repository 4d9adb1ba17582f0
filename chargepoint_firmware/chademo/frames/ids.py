"""CHAdeMO CAN ids, frame names and directions (EV -> charger, charger -> EV)."""

from __future__ import annotations

from typing import Final

FRAME_LENGTH: Final = 8

# EV -> charger
ID_VEHICLE_CHARGE_LIMITS: Final = 0x100
ID_VEHICLE_CHARGE_TIME: Final = 0x101
ID_VEHICLE_STATUS: Final = 0x102
ID_VEHICLE_DISCHARGE_LIMITS: Final = 0x200
ID_VEHICLE_DISCHARGE_ESTIMATE: Final = 0x201
# charger -> EV
ID_CHARGER_CAPABILITIES: Final = 0x108
ID_CHARGER_STATUS: Final = 0x109
ID_CHARGER_DISCHARGE_STATUS: Final = 0x208
ID_CHARGER_DISCHARGE_TIME: Final = 0x209

EV_TO_CHARGER: Final = "ev->charger"
CHARGER_TO_EV: Final = "charger->ev"
DIRECTION_UNKNOWN: Final = "unknown"

FRAME_NAMES: Final[dict[int, str]] = {
    ID_VEHICLE_CHARGE_LIMITS: "VehicleChargeLimits",
    ID_VEHICLE_CHARGE_TIME: "VehicleChargeTime",
    ID_VEHICLE_STATUS: "VehicleStatus",
    ID_VEHICLE_DISCHARGE_LIMITS: "VehicleDischargeLimits",
    ID_VEHICLE_DISCHARGE_ESTIMATE: "VehicleDischargeEstimate",
    ID_CHARGER_CAPABILITIES: "ChargerCapabilities",
    ID_CHARGER_STATUS: "ChargerStatus",
    ID_CHARGER_DISCHARGE_STATUS: "ChargerDischargeStatus",
    ID_CHARGER_DISCHARGE_TIME: "ChargerDischargeTime",
}

# Ids seen on CHAdeMO buses that this codec does not decode (name, direction).
OTHER_KNOWN_IDS: Final[dict[int, tuple[str, str]]] = {
    0x110: ("VehicleExtendedControl", EV_TO_CHARGER),  # CHAdeMO 2.0 control bits, byte 0
    0x118: ("ChargerExtendedControl", CHARGER_TO_EV),  # CHAdeMO 2.0 control bits, byte 0
    0x202: ("VehicleUnknown202", EV_TO_CHARGER),  # Leaf only, meaning unknown
    0x700: ("VehicleAutomakerCode", EV_TO_CHARGER),  # byte 0 = automaker code
}

FRAME_DIRECTIONS: Final[dict[int, str]] = {
    ID_VEHICLE_CHARGE_LIMITS: EV_TO_CHARGER,
    ID_VEHICLE_CHARGE_TIME: EV_TO_CHARGER,
    ID_VEHICLE_STATUS: EV_TO_CHARGER,
    ID_VEHICLE_DISCHARGE_LIMITS: EV_TO_CHARGER,
    ID_VEHICLE_DISCHARGE_ESTIMATE: EV_TO_CHARGER,
    ID_CHARGER_CAPABILITIES: CHARGER_TO_EV,
    ID_CHARGER_STATUS: CHARGER_TO_EV,
    ID_CHARGER_DISCHARGE_STATUS: CHARGER_TO_EV,
    ID_CHARGER_DISCHARGE_TIME: CHARGER_TO_EV,
}
