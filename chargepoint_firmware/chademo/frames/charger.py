"""Charger -> EV frames: 0x108, 0x109, 0x208, 0x209."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Final

from chargepoint_firmware.chademo.frames._wire import (
    _U8,
    _U16,
    _bit,
    _check_bits,
    _check_bool,
    _check_int,
    _check_seconds,
    _decode_seconds,
    _encode_seconds,
    _flags,
    _put_u16,
    _u16,
)
from chargepoint_firmware.chademo.frames.ids import (
    FRAME_LENGTH,
    ID_CHARGER_CAPABILITIES,
    ID_CHARGER_DISCHARGE_STATUS,
    ID_CHARGER_DISCHARGE_TIME,
    ID_CHARGER_STATUS,
)


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
