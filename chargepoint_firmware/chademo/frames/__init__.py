"""CHAdeMO CAN frames: 8 data bytes <-> frozen dataclasses in physical units.

Modules: ids.py (CAN ids, names, directions), vehicle.py (EV -> charger frames), charger.py
(charger -> EV frames), _wire.py (byte-level helpers); this module is the API: the `Frame`
union and `decode` / `encode` / `name_of` / `direction_of` / `frame_fields`.

Pure codec: no python-can, no clock, no I/O. Layout facts are from docs/chademo.md (public
sources, not the IEEE 2030.1.1 text). Conventions:

- 16-bit fields are little-endian (0x9A 0x01 = 410 V).
- Discharge currents on the wire are inverted (0xFF minus amps, 0x200 byte 0, 0x208 bytes 0
  and 3); every dataclass field holds plain, non-negative amps.
- Times with a "10 s/bit, 0xFF = use the 1 min/bit byte" pair (0x101 bytes 1-2, 0x109 bytes
  6-7) are decoded to one field in seconds; encoding picks the 10 s byte when the value fits it.
- Energies in 0.1 kWh are held as integer watt-hours (multiples of 100) so round trips are exact.
- State of charge (0x102 byte 6) is a percentage of the "charged-rate reference constant" in
  0x100 byte 6. That constant is normally 100 (so byte 6 is SoC in %), but a Nissan Leaf sends
  240 until the charger reports protocol >= 1.0. `VehicleStatus.state_of_charge` is the raw
  byte; `VehicleStatus.soc_pct(reference)` scales it with the constant from 0x100.
- Flag bits with no documented meaning are kept in `other_*_bits` so a decode shows them and a
  re-encode keeps them (the Leaf sets 0x102 byte 5 bit 6).

`decode()` never fails on an id it does not know (it returns None); `FrameDecodeError` (a
ValueError) is the only error this module raises: wrong data length on decode, or a field value
that cannot be represented when a frame is built.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Final

from chargepoint_firmware.chademo.frames._wire import (
    FrameDecodeError,
)
from chargepoint_firmware.chademo.frames.charger import (
    ChargerCapabilities,
    ChargerDischargeStatus,
    ChargerDischargeTime,
    ChargerStatus,
)
from chargepoint_firmware.chademo.frames.ids import (
    CHARGER_TO_EV,
    DIRECTION_UNKNOWN,
    EV_TO_CHARGER,
    FRAME_DIRECTIONS,
    FRAME_LENGTH,
    FRAME_NAMES,
    ID_CHARGER_CAPABILITIES,
    ID_CHARGER_DISCHARGE_STATUS,
    ID_CHARGER_DISCHARGE_TIME,
    ID_CHARGER_STATUS,
    ID_VEHICLE_CHARGE_LIMITS,
    ID_VEHICLE_CHARGE_TIME,
    ID_VEHICLE_DISCHARGE_ESTIMATE,
    ID_VEHICLE_DISCHARGE_LIMITS,
    ID_VEHICLE_STATUS,
    OTHER_KNOWN_IDS,
)
from chargepoint_firmware.chademo.frames.vehicle import (
    VehicleChargeLimits,
    VehicleChargeTime,
    VehicleDischargeEstimate,
    VehicleDischargeLimits,
    VehicleStatus,
)

__all__ = [
    "CHARGER_TO_EV",
    "DIRECTION_UNKNOWN",
    "EV_TO_CHARGER",
    "FRAME_DIRECTIONS",
    "FRAME_LENGTH",
    "FRAME_NAMES",
    "ID_CHARGER_CAPABILITIES",
    "ID_CHARGER_DISCHARGE_STATUS",
    "ID_CHARGER_DISCHARGE_TIME",
    "ID_CHARGER_STATUS",
    "ID_VEHICLE_CHARGE_LIMITS",
    "ID_VEHICLE_CHARGE_TIME",
    "ID_VEHICLE_DISCHARGE_ESTIMATE",
    "ID_VEHICLE_DISCHARGE_LIMITS",
    "ID_VEHICLE_STATUS",
    "OTHER_KNOWN_IDS",
    "ChargerCapabilities",
    "ChargerDischargeStatus",
    "ChargerDischargeTime",
    "ChargerStatus",
    "Frame",
    "FrameDecodeError",
    "VehicleChargeLimits",
    "VehicleChargeTime",
    "VehicleDischargeEstimate",
    "VehicleDischargeLimits",
    "VehicleStatus",
    "decode",
    "direction_of",
    "encode",
    "frame_fields",
    "name_of",
]

Frame = (
    VehicleChargeLimits
    | VehicleChargeTime
    | VehicleStatus
    | VehicleDischargeLimits
    | VehicleDischargeEstimate
    | ChargerCapabilities
    | ChargerStatus
    | ChargerDischargeStatus
    | ChargerDischargeTime
)

FRAME_TYPES: Final[dict[int, type[Frame]]] = {
    cls.CAN_ID: cls
    for cls in (
        VehicleChargeLimits,
        VehicleChargeTime,
        VehicleStatus,
        VehicleDischargeLimits,
        VehicleDischargeEstimate,
        ChargerCapabilities,
        ChargerStatus,
        ChargerDischargeStatus,
        ChargerDischargeTime,
    )
}


def decode(can_id: int, data: bytes) -> Frame | None:
    """Decode one CAN frame; None for an id this codec does not know (never an error).

    Raises FrameDecodeError if a known id does not carry exactly 8 bytes.
    """
    frame_type = FRAME_TYPES.get(can_id)
    if frame_type is None:
        return None
    if len(data) != FRAME_LENGTH:
        raise FrameDecodeError(
            f"{FRAME_NAMES[can_id]} ({can_id:#05x}) needs {FRAME_LENGTH} bytes, got {len(data)}"
        )
    return frame_type.from_bytes(bytes(data))


def encode(frame: Frame) -> tuple[int, bytes]:
    """(CAN id, 8 data bytes) for a frame."""
    return frame.CAN_ID, frame.to_bytes()


def name_of(can_id: int) -> str | None:
    """Frame name for a decoded or otherwise known id, None if unknown."""
    if can_id in FRAME_NAMES:
        return FRAME_NAMES[can_id]
    other = OTHER_KNOWN_IDS.get(can_id)
    return other[0] if other else None


def direction_of(can_id: int) -> str:
    """EV_TO_CHARGER, CHARGER_TO_EV or DIRECTION_UNKNOWN."""
    if can_id in FRAME_DIRECTIONS:
        return FRAME_DIRECTIONS[can_id]
    other = OTHER_KNOWN_IDS.get(can_id)
    return other[1] if other else DIRECTION_UNKNOWN


def frame_fields(frame: Frame) -> dict[str, int | bool]:
    """The frame's fields by name, in declaration order."""
    return {f.name: getattr(frame, f.name) for f in fields(frame)}
