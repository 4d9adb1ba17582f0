"""CHAdeMO frame codec: layouts, inverted currents, flags, errors, round trips (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chargepoint_firmware.chademo import frames as f
from chargepoint_firmware.chademo.frames import (
    ChargerCapabilities,
    ChargerDischargeStatus,
    ChargerDischargeTime,
    ChargerStatus,
    FrameDecodeError,
    VehicleChargeLimits,
    VehicleChargeTime,
    VehicleDischargeEstimate,
    VehicleDischargeLimits,
    VehicleStatus,
    decode,
    encode,
)


def hexbytes(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def test_0x100_little_endian_voltages_and_soc_constant() -> None:
    frame = decode(0x100, hexbytes("00 00 00 00 B3 01 F0 00"))
    assert frame == VehicleChargeLimits(
        minimum_charge_current_a=0,
        minimum_battery_voltage_v=0,
        maximum_battery_voltage_v=435,
        charged_rate_reference=240,
    )


def test_0x102_target_voltage_request_flags_and_soc() -> None:
    frame = decode(0x102, hexbytes("02 9A 01 0E 00 C1 49 00"))
    assert isinstance(frame, VehicleStatus)
    assert frame.protocol_number == 2
    assert frame.target_battery_voltage_v == 410
    assert frame.charging_current_request_a == 14
    assert frame.charging_enabled
    assert not frame.ev_contactor_open  # b5.3 = 0: contactor closed
    assert frame.discharge_compatible
    assert frame.other_status_bits == 0x40  # the Leaf's undocumented bit 6, kept
    assert frame.state_of_charge == 73
    assert frame.soc_pct() == 73.0
    assert frame.soc_pct(240) == pytest.approx(73 * 100 / 240)
    assert frame.soc_pct(0) is None
    assert frame.faults() == frozenset()


@pytest.mark.parametrize(
    ("byte4", "byte5", "field", "fault_name"),
    [
        (0x01, 0x01, "fault_battery_overvoltage", "battery_overvoltage"),
        (0x02, 0x01, "fault_battery_undervoltage", "battery_undervoltage"),
        (0x04, 0x01, "fault_battery_current_deviation", "battery_current_deviation"),
        (0x08, 0x01, "fault_high_battery_temperature", "high_battery_temperature"),
        (0x10, 0x01, "fault_battery_voltage_deviation", "battery_voltage_deviation"),
        (0x00, 0x03, "shift_not_park", "shift_not_park"),
        (0x00, 0x05, "fault_vehicle_charging_system", "vehicle_charging_system_fault"),
        (0x00, 0x11, "normal_stop_request", "normal_stop_request"),
    ],
)
def test_0x102_each_fault_bit_maps_to_one_field_and_one_fault_name(
    byte4: int, byte5: int, field: str, fault_name: str
) -> None:
    frame = decode(0x102, bytes([2, 0x9A, 0x01, 0, byte4, byte5, 50, 0]))
    assert isinstance(frame, VehicleStatus)
    assert getattr(frame, field) is True
    assert frame.faults() == frozenset({fault_name})
    assert encode(frame)[1][4:6] == bytes([byte4, byte5])


def test_0x102_contactor_and_discharge_bits() -> None:
    frame = decode(0x102, hexbytes("02 9A 01 00 00 88 00 00"))
    assert isinstance(frame, VehicleStatus)
    assert frame.ev_contactor_open and frame.discharge_compatible
    assert not frame.charging_enabled
    assert frame.faults() == frozenset()


def test_0x200_inverted_discharge_current_and_raw_soc_window() -> None:
    frame = decode(0x200, hexbytes("F0 00 00 00 FA 00 43 B2"))
    assert frame == VehicleDischargeLimits(
        max_discharge_current_a=15,
        min_discharge_voltage_v=250,
        min_soc_for_discharge_pct=0x43,
        max_soc_for_charge_pct=0xB2,
    )
    assert isinstance(frame, VehicleDischargeLimits)
    assert frame.min_soc_for_discharge == 67
    assert frame.max_soc_for_charge is None  # 178 % is no real ceiling
    unused = VehicleDischargeLimits(max_discharge_current_a=0)
    assert unused.min_soc_for_discharge is None and unused.max_soc_for_charge is None
    assert encode(unused) == (0x200, hexbytes("FF 00 00 00 00 00 00 00"))


def test_0x208_both_currents_inverted() -> None:
    frame = ChargerDischargeStatus(
        discharge_current_a=12,
        input_voltage_v=500,
        available_input_current_a=15,
        lower_threshold_voltage_v=250,
    )
    assert encode(frame) == (0x208, hexbytes("F3 F4 01 F0 00 00 FA 00"))
    assert decode(0x208, hexbytes("FF F4 01 F0 00 00 FA 00")) == ChargerDischargeStatus(
        discharge_current_a=0,
        input_voltage_v=500,
        available_input_current_a=15,
        lower_threshold_voltage_v=250,
    )


def test_0x108_capabilities_layout() -> None:
    frame = ChargerCapabilities(
        welding_detection_supported=True,
        available_output_voltage_v=500,
        available_output_current_a=15,
        threshold_voltage_v=435,
    )
    assert encode(frame) == (0x108, hexbytes("01 F4 01 0F B3 01 00 00"))


def test_0x109_flags_and_remaining_time_in_minutes_when_10s_byte_is_ff() -> None:
    frame = decode(0x109, hexbytes("02 77 01 0B 01 05 FF 3C"))
    assert isinstance(frame, ChargerStatus)
    assert frame.output_voltage_v == 375
    assert frame.output_current_a == 11
    assert frame.discharge_compatible
    assert frame.charger_delivering and frame.connector_locked and not frame.stop_control
    assert frame.remaining_charging_time_s == 3600
    assert frame.faults() == frozenset()
    faulted = decode(0x109, hexbytes("02 00 00 00 00 3A 00 00"))
    assert isinstance(faulted, ChargerStatus)
    assert faulted.faults() == frozenset(
        {"charger_malfunction", "battery_incompatible", "charging_system_malfunction"}
    )


def test_0x109_remaining_time_uses_10s_byte_when_it_fits() -> None:
    _, data = encode(ChargerStatus(remaining_charging_time_s=120))
    assert data[6:8] == bytes([12, 2])
    _, data = encode(ChargerStatus(remaining_charging_time_s=90 * 60))
    assert data[6:8] == bytes([0xFF, 90])


def test_0x101_charging_time_and_capacity() -> None:
    frame = decode(0x101, hexbytes("00 FF 3C 00 00 DE 00 00"))
    assert frame == VehicleChargeTime(
        max_charging_time_s=3600, estimated_charging_time_min=0, total_battery_capacity_wh=22200
    )
    assert decode(0x101, hexbytes("00 0C 00 05 00 F0 00 00")) == VehicleChargeTime(
        max_charging_time_s=120, estimated_charging_time_min=5, total_battery_capacity_wh=24000
    )


def test_0x201_and_0x209_layouts() -> None:
    estimate = VehicleDischargeEstimate(
        sequence_control_number=2,
        approx_discharge_completion_time_min=300,
        available_vehicle_energy_wh=12300,
    )
    assert encode(estimate) == (0x201, hexbytes("02 2C 01 7B 00 00 00 00"))
    assert encode(
        ChargerDischargeTime(sequence_control_number=2, remaining_discharge_time_min=5)
    ) == (
        0x209,
        hexbytes("02 05 00 00 00 00 00 00"),
    )


def test_unknown_ids_decode_to_none_never_fail() -> None:
    for can_id in (0x000, 0x110, 0x118, 0x202, 0x700, 0x7FF, 0x1FFFFFFF):
        assert decode(can_id, b"") is None
        assert decode(can_id, bytes(8)) is None
    assert f.name_of(0x700) == "VehicleAutomakerCode"
    assert f.direction_of(0x118) == f.CHARGER_TO_EV
    assert f.name_of(0x555) is None
    assert f.direction_of(0x555) == f.DIRECTION_UNKNOWN


def test_frame_names_and_directions_cover_every_decoded_id() -> None:
    assert set(f.FRAME_NAMES) == set(f.FRAME_DIRECTIONS) == set(f.FRAME_TYPES)
    for can_id, cls in f.FRAME_TYPES.items():
        assert f.FRAME_NAMES[can_id] == cls.__name__
        assert can_id == cls.CAN_ID
    ev = {can_id for can_id, d in f.FRAME_DIRECTIONS.items() if d == f.EV_TO_CHARGER}
    assert ev == {0x100, 0x101, 0x102, 0x200, 0x201}


@pytest.mark.parametrize("length", [0, 1, 7, 9, 64])
def test_wrong_length_is_a_frame_decode_error(length: int) -> None:
    with pytest.raises(FrameDecodeError, match="8 bytes"):
        decode(0x102, bytes(length))
    assert issubclass(FrameDecodeError, ValueError)


@pytest.mark.parametrize(
    "build",
    [
        lambda: VehicleStatus(charging_current_request_a=256),
        lambda: VehicleStatus(target_battery_voltage_v=-1),
        lambda: VehicleStatus(other_status_bits=0x01),  # a named bit
        lambda: VehicleDischargeLimits(max_discharge_current_a=300),
        lambda: ChargerDischargeStatus(available_input_current_a=-5),
        lambda: ChargerCapabilities(available_output_voltage_v=70000),
        lambda: ChargerStatus(remaining_charging_time_s=2545),  # neither 10 s nor 1 min steps
        lambda: VehicleChargeTime(total_battery_capacity_wh=24050),
        lambda: VehicleChargeLimits(maximum_battery_voltage_v=435.5),  # type: ignore[arg-type]
        lambda: ChargerStatus(charger_delivering=1),  # type: ignore[arg-type]
    ],
)
def test_unrepresentable_field_values_raise_frame_decode_error(build: object) -> None:
    assert callable(build)
    with pytest.raises(FrameDecodeError):
        build()


# --- property tests ---------------------------------------------------------------------------

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
wh = st.integers(0, 0xFFFF).map(lambda raw: raw * 100)
seconds = st.one_of(st.integers(0, 254).map(lambda b: b * 10), u8.map(lambda m: m * 60))

frame_strategy = st.one_of(
    st.builds(VehicleChargeLimits, u8, u16, u16, u8),
    st.builds(VehicleChargeTime, seconds, u8, wh),
    st.builds(
        VehicleStatus,
        protocol_number=u8,
        target_battery_voltage_v=u16,
        charging_current_request_a=u8,
        fault_battery_overvoltage=st.booleans(),
        fault_battery_undervoltage=st.booleans(),
        fault_battery_current_deviation=st.booleans(),
        fault_high_battery_temperature=st.booleans(),
        fault_battery_voltage_deviation=st.booleans(),
        charging_enabled=st.booleans(),
        shift_not_park=st.booleans(),
        fault_vehicle_charging_system=st.booleans(),
        ev_contactor_open=st.booleans(),
        normal_stop_request=st.booleans(),
        discharge_compatible=st.booleans(),
        state_of_charge=u8,
        other_fault_bits=u8.map(lambda b: b & 0xE0),
        other_status_bits=u8.map(lambda b: b & 0x60),
    ),
    st.builds(VehicleDischargeLimits, u8, u16, u8, u8),
    st.builds(VehicleDischargeEstimate, u8, u16, wh),
    st.builds(ChargerCapabilities, st.booleans(), u16, u8, u16),
    st.builds(
        ChargerStatus,
        protocol_number=u8,
        output_voltage_v=u16,
        output_current_a=u8,
        discharge_compatible=st.booleans(),
        charger_delivering=st.booleans(),
        charger_malfunction=st.booleans(),
        connector_locked=st.booleans(),
        battery_incompatible=st.booleans(),
        charging_system_malfunction=st.booleans(),
        stop_control=st.booleans(),
        remaining_charging_time_s=seconds,
        other_status_bits=u8.map(lambda b: b & 0xC0),
    ),
    st.builds(ChargerDischargeStatus, u8, u16, u8, u16),
    st.builds(ChargerDischargeTime, u8, u16),
)


@given(frame_strategy)
def test_property_encode_decode_round_trip_every_frame_type(frame: f.Frame) -> None:
    can_id, data = encode(frame)
    assert len(data) == 8
    assert can_id == type(frame).CAN_ID
    assert decode(can_id, data) == frame


@given(st.sampled_from(sorted(f.FRAME_TYPES)), st.binary(min_size=0, max_size=8))
def test_property_any_bytes_decode_or_raise_frame_decode_error(can_id: int, data: bytes) -> None:
    try:
        frame = decode(can_id, data)
    except FrameDecodeError:
        assert len(data) != 8
        return
    assert frame is not None
    # A decoded frame is valid: it re-encodes, and that encoding decodes to the same frame.
    again = decode(*encode(frame))
    assert again == frame


@given(st.integers(0, 0x7FF), st.binary(min_size=0, max_size=8))
def test_property_any_id_any_bytes_never_raise_anything_else(can_id: int, data: bytes) -> None:
    try:
        frame = decode(can_id, data)
    except FrameDecodeError:
        return
    assert frame is None or can_id == type(frame).CAN_ID
