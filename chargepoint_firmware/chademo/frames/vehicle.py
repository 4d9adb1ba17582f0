"""EV -> charger frames: 0x100, 0x101, 0x102, 0x200, 0x201."""

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
    _check_wh,
    _decode_seconds,
    _encode_seconds,
    _flags,
    _put_u16,
    _u16,
)
from chargepoint_firmware.chademo.frames.ids import (
    FRAME_LENGTH,
    ID_VEHICLE_CHARGE_LIMITS,
    ID_VEHICLE_CHARGE_TIME,
    ID_VEHICLE_DISCHARGE_ESTIMATE,
    ID_VEHICLE_DISCHARGE_LIMITS,
    ID_VEHICLE_STATUS,
)


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
