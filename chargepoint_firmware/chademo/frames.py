"""CHAdeMO CAN frames: 8 data bytes <-> frozen dataclasses in physical units.

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

from dataclasses import dataclass, fields
from typing import ClassVar, Final

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

_U8: Final = 0xFF
_U16: Final = 0xFFFF
_TEN_S_UNUSED: Final = 0xFF  # "use the 1 min/bit byte instead"


class FrameDecodeError(ValueError):
    """Bytes that are not a valid frame, or a field value a frame cannot carry."""


def _check_int(frame: object, name: str, value: object, maximum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FrameDecodeError(f"{type(frame).__name__}.{name} must be an int, got {value!r}")
    if not 0 <= value <= maximum:
        raise FrameDecodeError(f"{type(frame).__name__}.{name}={value} outside 0..{maximum}")


def _check_bool(frame: object, name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise FrameDecodeError(f"{type(frame).__name__}.{name} must be a bool, got {value!r}")


def _check_bits(frame: object, name: str, value: object, allowed_mask: int) -> None:
    _check_int(frame, name, value, _U8)
    assert isinstance(value, int)
    if value & ~allowed_mask:
        raise FrameDecodeError(
            f"{type(frame).__name__}.{name}={value:#04x}: only bits {allowed_mask:#04x} allowed"
        )


def _check_wh(frame: object, name: str, value: object) -> None:
    _check_int(frame, name, value, _U16 * 100)
    assert isinstance(value, int)
    if value % 100:
        raise FrameDecodeError(f"{type(frame).__name__}.{name}={value} Wh: not a multiple of 100")


def _check_seconds(frame: object, name: str, value: object) -> None:
    """A time carried as 10 s/bit (<= 2540 s) or 1 min/bit (<= 255 min)."""
    _check_int(frame, name, value, _U8 * 60)
    assert isinstance(value, int)
    fits_10s = value % 10 == 0 and value // 10 < _TEN_S_UNUSED
    if not fits_10s and value % 60:
        raise FrameDecodeError(
            f"{type(frame).__name__}.{name}={value} s: not representable in 10 s or 1 min steps"
        )


def _u16(data: bytes, index: int) -> int:
    return data[index] | (data[index + 1] << 8)


def _put_u16(buffer: bytearray, index: int, value: int) -> None:
    buffer[index] = value & 0xFF
    buffer[index + 1] = value >> 8


def _decode_seconds(ten_s_byte: int, minute_byte: int) -> int:
    if ten_s_byte == _TEN_S_UNUSED:
        return minute_byte * 60
    return ten_s_byte * 10


def _encode_seconds(seconds: int) -> tuple[int, int]:
    """(10 s byte, 1 min byte); the minute byte also carries the value, rounded up."""
    minutes = min(_U8, -(-seconds // 60))
    if seconds % 10 == 0 and seconds // 10 < _TEN_S_UNUSED:
        return seconds // 10, minutes
    return _TEN_S_UNUSED, seconds // 60


def _bit(value: int, bit: int) -> bool:
    return bool(value >> bit & 1)


def _flags(*bits: bool) -> int:
    """Pack booleans: first argument is bit 0."""
    return sum(int(flag) << index for index, flag in enumerate(bits))


# ---------------------------------------------------------------------------------------------
# EV -> charger
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VehicleChargeLimits:
    """0x100: the vehicle's charge limits."""

    CAN_ID: ClassVar[int] = ID_VEHICLE_CHARGE_LIMITS

    minimum_charge_current_a: int = 0  # byte 0
    minimum_battery_voltage_v: int = 0  # bytes 2-3
    maximum_battery_voltage_v: int = 0  # bytes 4-5 (Leaf: 435)
    # byte 6: SoC scale ("charged-rate reference constant"): 100 normally, Leaf 240 at first.
    charged_rate_reference: int = 100

    def __post_init__(self) -> None:
        _check_int(self, "minimum_charge_current_a", self.minimum_charge_current_a, _U8)
        _check_int(self, "minimum_battery_voltage_v", self.minimum_battery_voltage_v, _U16)
        _check_int(self, "maximum_battery_voltage_v", self.maximum_battery_voltage_v, _U16)
        _check_int(self, "charged_rate_reference", self.charged_rate_reference, _U8)

    def to_bytes(self) -> bytes:
        data = bytearray(FRAME_LENGTH)
        data[0] = self.minimum_charge_current_a
        _put_u16(data, 2, self.minimum_battery_voltage_v)
        _put_u16(data, 4, self.maximum_battery_voltage_v)
        data[6] = self.charged_rate_reference
        return bytes(data)

    @classmethod
    def from_bytes(cls, data: bytes) -> VehicleChargeLimits:
        return cls(
            minimum_charge_current_a=data[0],
            minimum_battery_voltage_v=_u16(data, 2),
            maximum_battery_voltage_v=_u16(data, 4),
            charged_rate_reference=data[6],
        )


@dataclass(frozen=True, slots=True)
class VehicleChargeTime:
    """0x101: charging time limits and battery capacity."""

    CAN_ID: ClassVar[int] = ID_VEHICLE_CHARGE_TIME

    max_charging_time_s: int = 0  # byte 1 (10 s/bit) or, when byte 1 = 0xFF, byte 2 (1 min/bit)
    estimated_charging_time_min: int = 0  # byte 3
    total_battery_capacity_wh: int = 0  # bytes 5-6 in 0.1 kWh (optional, 0 = not given)

    def __post_init__(self) -> None:
        _check_seconds(self, "max_charging_time_s", self.max_charging_time_s)
        _check_int(self, "estimated_charging_time_min", self.estimated_charging_time_min, _U8)
        _check_wh(self, "total_battery_capacity_wh", self.total_battery_capacity_wh)

    def to_bytes(self) -> bytes:
        data = bytearray(FRAME_LENGTH)
        data[1], data[2] = _encode_seconds(self.max_charging_time_s)
        data[3] = self.estimated_charging_time_min
        _put_u16(data, 5, self.total_battery_capacity_wh // 100)
        return bytes(data)

    @classmethod
    def from_bytes(cls, data: bytes) -> VehicleChargeTime:
        return cls(
            max_charging_time_s=_decode_seconds(data[1], data[2]),
            estimated_charging_time_min=data[3],
            total_battery_capacity_wh=_u16(data, 5) * 100,
        )


# Names used by VehicleStatus.faults() (and by the safety supervisor's latched faults).
VEHICLE_FAULT_NAMES: Final = (
    "battery_overvoltage",
    "battery_undervoltage",
    "battery_current_deviation",
    "high_battery_temperature",
    "battery_voltage_deviation",
    "vehicle_charging_system_fault",
    "shift_not_park",
    "normal_stop_request",
)
_VEHICLE_FAULT_BITS_MASK: Final = 0b1110_0000  # bits 5-7 of byte 4 have no documented meaning
_VEHICLE_STATUS_BITS_MASK: Final = 0b0110_0000  # bits 5-6 of byte 5 (Leaf sets bit 6)


@dataclass(frozen=True, slots=True)
class VehicleStatus:
    """0x102: the vehicle's request, fault flags, status flags and state of charge."""

    CAN_ID: ClassVar[int] = ID_VEHICLE_STATUS

    protocol_number: int = 0  # byte 0: 0 = pre-0.9, 1 = 0.9.x, 2 = 1.0.x-1.2, 3 = 2.0
    target_battery_voltage_v: int = 0  # bytes 1-2 (Leaf: 410)
    charging_current_request_a: int = 0  # byte 3
    # byte 4: faults (the majority bit order of the public sources)
    fault_battery_overvoltage: bool = False  # b4.0
    fault_battery_undervoltage: bool = False  # b4.1
    fault_battery_current_deviation: bool = False  # b4.2
    fault_high_battery_temperature: bool = False  # b4.3
    fault_battery_voltage_deviation: bool = False  # b4.4
    # byte 5: status
    charging_enabled: bool = False  # b5.0; a 1 -> 0 edge is a stop request
    shift_not_park: bool = False  # b5.1
    fault_vehicle_charging_system: bool = False  # b5.2
    ev_contactor_open: bool = True  # b5.3: 1 = open, 0 = closed
    normal_stop_request: bool = False  # b5.4
    discharge_compatible: bool = False  # b5.7; may only drop 1 -> 0 (forbids discharge only)
    state_of_charge: int = 0  # byte 6: % of VehicleChargeLimits.charged_rate_reference
    other_fault_bits: int = 0  # undocumented bits of byte 4, as they are on the wire
    other_status_bits: int = 0  # undocumented bits of byte 5 (0x20, 0x40), as on the wire

    def __post_init__(self) -> None:
        _check_int(self, "protocol_number", self.protocol_number, _U8)
        _check_int(self, "target_battery_voltage_v", self.target_battery_voltage_v, _U16)
        _check_int(self, "charging_current_request_a", self.charging_current_request_a, _U8)
        for name in (
            "fault_battery_overvoltage",
            "fault_battery_undervoltage",
            "fault_battery_current_deviation",
            "fault_high_battery_temperature",
            "fault_battery_voltage_deviation",
            "charging_enabled",
            "shift_not_park",
            "fault_vehicle_charging_system",
            "ev_contactor_open",
            "normal_stop_request",
            "discharge_compatible",
        ):
            _check_bool(self, name, getattr(self, name))
        _check_int(self, "state_of_charge", self.state_of_charge, _U8)
        _check_bits(self, "other_fault_bits", self.other_fault_bits, _VEHICLE_FAULT_BITS_MASK)
        _check_bits(self, "other_status_bits", self.other_status_bits, _VEHICLE_STATUS_BITS_MASK)

    def soc_pct(self, charged_rate_reference: int = 100) -> float | None:
        """SoC in percent, scaled by the 0x100 byte-6 constant (None if that constant is 0)."""
        if charged_rate_reference <= 0:
            return None
        return self.state_of_charge * 100.0 / charged_rate_reference

    def faults(self) -> frozenset[str]:
        """Every active flag that obliges the charger to stop (see VEHICLE_FAULT_NAMES).

        Includes the shift lever and the normal stop request; the falling edge of
        `charging_enabled` is a stop request too but needs the previous frame to be seen.
        """
        active = (
            self.fault_battery_overvoltage,
            self.fault_battery_undervoltage,
            self.fault_battery_current_deviation,
            self.fault_high_battery_temperature,
            self.fault_battery_voltage_deviation,
            self.fault_vehicle_charging_system,
            self.shift_not_park,
            self.normal_stop_request,
        )
        return frozenset(name for name, on in zip(VEHICLE_FAULT_NAMES, active, strict=True) if on)

    def to_bytes(self) -> bytes:
        data = bytearray(FRAME_LENGTH)
        data[0] = self.protocol_number
        _put_u16(data, 1, self.target_battery_voltage_v)
        data[3] = self.charging_current_request_a
        data[4] = self.other_fault_bits | _flags(
            self.fault_battery_overvoltage,
            self.fault_battery_undervoltage,
            self.fault_battery_current_deviation,
            self.fault_high_battery_temperature,
            self.fault_battery_voltage_deviation,
        )
        data[5] = (
            self.other_status_bits
            | _flags(
                self.charging_enabled,
                self.shift_not_park,
                self.fault_vehicle_charging_system,
                self.ev_contactor_open,
                self.normal_stop_request,
            )
            | int(self.discharge_compatible) << 7
        )
        data[6] = self.state_of_charge
        return bytes(data)

    @classmethod
    def from_bytes(cls, data: bytes) -> VehicleStatus:
        faults, status = data[4], data[5]
        return cls(
            protocol_number=data[0],
            target_battery_voltage_v=_u16(data, 1),
            charging_current_request_a=data[3],
            fault_battery_overvoltage=_bit(faults, 0),
            fault_battery_undervoltage=_bit(faults, 1),
            fault_battery_current_deviation=_bit(faults, 2),
            fault_high_battery_temperature=_bit(faults, 3),
            fault_battery_voltage_deviation=_bit(faults, 4),
            charging_enabled=_bit(status, 0),
            shift_not_park=_bit(status, 1),
            fault_vehicle_charging_system=_bit(status, 2),
            ev_contactor_open=_bit(status, 3),
            normal_stop_request=_bit(status, 4),
            discharge_compatible=_bit(status, 7),
            state_of_charge=data[6],
            other_fault_bits=faults & _VEHICLE_FAULT_BITS_MASK,
            other_status_bits=status & _VEHICLE_STATUS_BITS_MASK,
        )


@dataclass(frozen=True, slots=True)
class VehicleDischargeLimits:
    """0x200: the vehicle's discharge limits (V2X)."""

    CAN_ID: ClassVar[int] = ID_VEHICLE_DISCHARGE_LIMITS

    max_discharge_current_a: int = 0  # byte 0, inverted on the wire (0xFF - amps)
    min_discharge_voltage_v: int = 0  # bytes 4-5 (Leaf: 250)
    # byte 6: stop discharging at this SoC %, 0 = unused (raw, not inverted)
    min_soc_for_discharge_pct: int = 0
    max_soc_for_charge_pct: int = 0  # byte 7: stop charging at this SoC %, 0 = unused

    def __post_init__(self) -> None:
        _check_int(self, "max_discharge_current_a", self.max_discharge_current_a, _U8)
        _check_int(self, "min_discharge_voltage_v", self.min_discharge_voltage_v, _U16)
        _check_int(self, "min_soc_for_discharge_pct", self.min_soc_for_discharge_pct, _U8)
        _check_int(self, "max_soc_for_charge_pct", self.max_soc_for_charge_pct, _U8)

    @property
    def min_soc_for_discharge(self) -> int | None:
        """The discharge SoC floor in %, None when unused (0, or 0xFF "not used": never 255 %)."""
        value = self.min_soc_for_discharge_pct
        return value if 0 < value <= 100 else None

    @property
    def max_soc_for_charge(self) -> int | None:
        """The charge SoC ceiling in %, None when unused (0) or above 100 (no real limit)."""
        value = self.max_soc_for_charge_pct
        return value if 0 < value <= 100 else None

    def to_bytes(self) -> bytes:
        data = bytearray(FRAME_LENGTH)
        data[0] = _U8 - self.max_discharge_current_a
        _put_u16(data, 4, self.min_discharge_voltage_v)
        data[6] = self.min_soc_for_discharge_pct
        data[7] = self.max_soc_for_charge_pct
        return bytes(data)

    @classmethod
    def from_bytes(cls, data: bytes) -> VehicleDischargeLimits:
        return cls(
            max_discharge_current_a=_U8 - data[0],
            min_discharge_voltage_v=_u16(data, 4),
            min_soc_for_discharge_pct=data[6],
            max_soc_for_charge_pct=data[7],
        )


@dataclass(frozen=True, slots=True)
class VehicleDischargeEstimate:
    """0x201: discharge sequence number and estimates (guideline >= 1.1)."""

    CAN_ID: ClassVar[int] = ID_VEHICLE_DISCHARGE_ESTIMATE

    sequence_control_number: int = 0  # byte 0 (observed 2)
    approx_discharge_completion_time_min: int = 0  # bytes 1-2, optional
    available_vehicle_energy_wh: int = 0  # bytes 3-4 in 0.1 kWh, optional

    def __post_init__(self) -> None:
        _check_int(self, "sequence_control_number", self.sequence_control_number, _U8)
        _check_int(
            self,
            "approx_discharge_completion_time_min",
            self.approx_discharge_completion_time_min,
            _U16,
        )
        _check_wh(self, "available_vehicle_energy_wh", self.available_vehicle_energy_wh)

    def to_bytes(self) -> bytes:
        data = bytearray(FRAME_LENGTH)
        data[0] = self.sequence_control_number
        _put_u16(data, 1, self.approx_discharge_completion_time_min)
        _put_u16(data, 3, self.available_vehicle_energy_wh // 100)
        return bytes(data)

    @classmethod
    def from_bytes(cls, data: bytes) -> VehicleDischargeEstimate:
        return cls(
            sequence_control_number=data[0],
            approx_discharge_completion_time_min=_u16(data, 1),
            available_vehicle_energy_wh=_u16(data, 3) * 100,
        )


# ---------------------------------------------------------------------------------------------
# charger -> EV
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChargerCapabilities:
    """0x108: what the charger can output."""

    CAN_ID: ClassVar[int] = ID_CHARGER_CAPABILITIES

    welding_detection_supported: bool = False  # byte 0 (0/1)
    available_output_voltage_v: int = 0  # bytes 1-2, set once
    available_output_current_a: int = 0  # byte 3, may be lowered (0 = switch to discharge)
    threshold_voltage_v: int = 0  # bytes 4-5: min(EV max battery voltage, available voltage)

    def __post_init__(self) -> None:
        _check_bool(self, "welding_detection_supported", self.welding_detection_supported)
        _check_int(self, "available_output_voltage_v", self.available_output_voltage_v, _U16)
        _check_int(self, "available_output_current_a", self.available_output_current_a, _U8)
        _check_int(self, "threshold_voltage_v", self.threshold_voltage_v, _U16)

    def to_bytes(self) -> bytes:
        data = bytearray(FRAME_LENGTH)
        data[0] = int(self.welding_detection_supported)
        _put_u16(data, 1, self.available_output_voltage_v)
        data[3] = self.available_output_current_a
        _put_u16(data, 4, self.threshold_voltage_v)
        return bytes(data)

    @classmethod
    def from_bytes(cls, data: bytes) -> ChargerCapabilities:
        return cls(
            welding_detection_supported=data[0] != 0,
            available_output_voltage_v=_u16(data, 1),
            available_output_current_a=data[3],
            threshold_voltage_v=_u16(data, 4),
        )


CHARGER_FAULT_NAMES: Final = (
    "charger_malfunction",
    "battery_incompatible",
    "charging_system_malfunction",
)
_CHARGER_STATUS_BITS_MASK: Final = 0b1100_0000  # bits 6-7 of byte 5: no documented meaning


@dataclass(frozen=True, slots=True)
class ChargerStatus:
    """0x109: the charger's measured output and status flags."""

    CAN_ID: ClassVar[int] = ID_CHARGER_STATUS

    protocol_number: int = 2  # byte 0, as VehicleStatus.protocol_number
    output_voltage_v: int = 0  # bytes 1-2, measured
    output_current_a: int = 0  # byte 3, measured (charge direction)
    discharge_compatible: bool = False  # b4.0: then 0x208/0x209 must be sent every cycle
    charger_delivering: bool = False  # b5.0
    charger_malfunction: bool = False  # b5.1
    connector_locked: bool = False  # b5.2: locked / energizing (> 10 V)
    battery_incompatible: bool = False  # b5.3
    charging_system_malfunction: bool = False  # b5.4: CAN loss, over-request
    stop_control: bool = True  # b5.5: 1 before start and during/after stop, 0 while running
    # bytes 6 (10 s/bit; 0xFF = use byte 7) and 7 (1 min/bit)
    remaining_charging_time_s: int = 0
    other_status_bits: int = 0  # undocumented bits 6-7 of byte 5, as on the wire

    def __post_init__(self) -> None:
        _check_int(self, "protocol_number", self.protocol_number, _U8)
        _check_int(self, "output_voltage_v", self.output_voltage_v, _U16)
        _check_int(self, "output_current_a", self.output_current_a, _U8)
        for name in (
            "discharge_compatible",
            "charger_delivering",
            "charger_malfunction",
            "connector_locked",
            "battery_incompatible",
            "charging_system_malfunction",
            "stop_control",
        ):
            _check_bool(self, name, getattr(self, name))
        _check_seconds(self, "remaining_charging_time_s", self.remaining_charging_time_s)
        _check_bits(self, "other_status_bits", self.other_status_bits, _CHARGER_STATUS_BITS_MASK)

    def faults(self) -> frozenset[str]:
        """Active error-stop flags (see CHARGER_FAULT_NAMES)."""
        active = (
            self.charger_malfunction,
            self.battery_incompatible,
            self.charging_system_malfunction,
        )
        return frozenset(name for name, on in zip(CHARGER_FAULT_NAMES, active, strict=True) if on)

    def to_bytes(self) -> bytes:
        data = bytearray(FRAME_LENGTH)
        data[0] = self.protocol_number
        _put_u16(data, 1, self.output_voltage_v)
        data[3] = self.output_current_a
        data[4] = int(self.discharge_compatible)
        data[5] = self.other_status_bits | _flags(
            self.charger_delivering,
            self.charger_malfunction,
            self.connector_locked,
            self.battery_incompatible,
            self.charging_system_malfunction,
            self.stop_control,
        )
        data[6], data[7] = _encode_seconds(self.remaining_charging_time_s)
        return bytes(data)

    @classmethod
    def from_bytes(cls, data: bytes) -> ChargerStatus:
        status = data[5]
        return cls(
            protocol_number=data[0],
            output_voltage_v=_u16(data, 1),
            output_current_a=data[3],
            discharge_compatible=_bit(data[4], 0),
            charger_delivering=_bit(status, 0),
            charger_malfunction=_bit(status, 1),
            connector_locked=_bit(status, 2),
            battery_incompatible=_bit(status, 3),
            charging_system_malfunction=_bit(status, 4),
            stop_control=_bit(status, 5),
            remaining_charging_time_s=_decode_seconds(data[6], data[7]),
            other_status_bits=status & _CHARGER_STATUS_BITS_MASK,
        )


@dataclass(frozen=True, slots=True)
class ChargerDischargeStatus:
    """0x208: the charger's discharge side (sent every cycle when discharge-compatible)."""

    CAN_ID: ClassVar[int] = ID_CHARGER_DISCHARGE_STATUS

    discharge_current_a: int = 0  # byte 0, measured, inverted on the wire
    # bytes 1-2 "available input voltage": meaning disputed (charger minimum operating voltage
    # or EV minimum discharge voltage); logs show 500 V and 170 V.
    input_voltage_v: int = 0
    available_input_current_a: int = 0  # byte 3: charger discharge limit, inverted on the wire
    lower_threshold_voltage_v: int = 0  # bytes 6-7: backup stop if the EV fails to stop

    def __post_init__(self) -> None:
        _check_int(self, "discharge_current_a", self.discharge_current_a, _U8)
        _check_int(self, "input_voltage_v", self.input_voltage_v, _U16)
        _check_int(self, "available_input_current_a", self.available_input_current_a, _U8)
        _check_int(self, "lower_threshold_voltage_v", self.lower_threshold_voltage_v, _U16)

    def to_bytes(self) -> bytes:
        data = bytearray(FRAME_LENGTH)
        data[0] = _U8 - self.discharge_current_a
        _put_u16(data, 1, self.input_voltage_v)
        data[3] = _U8 - self.available_input_current_a
        _put_u16(data, 6, self.lower_threshold_voltage_v)
        return bytes(data)

    @classmethod
    def from_bytes(cls, data: bytes) -> ChargerDischargeStatus:
        return cls(
            discharge_current_a=_U8 - data[0],
            input_voltage_v=_u16(data, 1),
            available_input_current_a=_U8 - data[3],
            lower_threshold_voltage_v=_u16(data, 6),
        )


@dataclass(frozen=True, slots=True)
class ChargerDischargeTime:
    """0x209: discharge sequence number and remaining time."""

    CAN_ID: ClassVar[int] = ID_CHARGER_DISCHARGE_TIME

    sequence_control_number: int = 2  # byte 0 (observed 1 or 2)
    remaining_discharge_time_min: int = 0  # bytes 1-2: minutes [CL], 0 = unused [BE]

    def __post_init__(self) -> None:
        _check_int(self, "sequence_control_number", self.sequence_control_number, _U8)
        _check_int(self, "remaining_discharge_time_min", self.remaining_discharge_time_min, _U16)

    def to_bytes(self) -> bytes:
        data = bytearray(FRAME_LENGTH)
        data[0] = self.sequence_control_number
        _put_u16(data, 1, self.remaining_discharge_time_min)
        return bytes(data)

    @classmethod
    def from_bytes(cls, data: bytes) -> ChargerDischargeTime:
        return cls(
            sequence_control_number=data[0],
            remaining_discharge_time_min=_u16(data, 1),
        )


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
