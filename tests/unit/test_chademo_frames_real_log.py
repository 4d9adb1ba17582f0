"""The codec against a real Nissan Leaf (ZE0) V2X CAN log (tests/data/chademo/README.md)."""

from __future__ import annotations

import csv
import itertools
from collections import Counter
from functools import cache
from pathlib import Path
from typing import TypeVar

from chargepoint_firmware.chademo.frames import (
    ChargerCapabilities,
    ChargerDischargeStatus,
    ChargerDischargeTime,
    ChargerStatus,
    Frame,
    VehicleChargeLimits,
    VehicleChargeTime,
    VehicleDischargeLimits,
    VehicleStatus,
    decode,
    encode,
)

T = TypeVar("T")

LOG = Path(__file__).resolve().parents[1] / "data" / "chademo" / "leaf-ze0-v2x-session.csv"


@cache
def log_frames() -> tuple[tuple[float, int, bytes, Frame], ...]:
    """(seconds, id, data, decoded) for every row, read with the csv module only."""
    out = []
    with LOG.open(newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        for row in reader:
            can_id = int(row[1], 16)
            data = bytes(int(cell, 16) for cell in row[6:14])
            frame = decode(can_id, data)
            assert frame is not None, f"id {can_id:#x} not decoded"
            out.append((int(row[0]) / 1e6, can_id, data, frame))
    return tuple(out)


def of_type(cls: type[T]) -> list[tuple[float, T]]:
    return [(t, frame) for t, _, _, frame in log_frames() if isinstance(frame, cls)]


def test_every_frame_decodes_and_re_encodes_to_the_same_bytes() -> None:
    frames = log_frames()
    assert len(frames) == 4072
    assert Counter(can_id for _, can_id, _, _ in frames) == {
        0x100: 507,
        0x101: 507,
        0x102: 507,
        0x200: 507,
        0x108: 511,
        0x109: 511,
        0x208: 511,
        0x209: 511,
    }
    for _, can_id, data, frame in frames:
        assert encode(frame) == (can_id, data)


def test_vehicle_limits_max_battery_voltage_435_and_target_410() -> None:
    assert {frame.maximum_battery_voltage_v for _, frame in of_type(VehicleChargeLimits)} == {435}
    assert {frame.target_battery_voltage_v for _, frame in of_type(VehicleStatus)} == {410}


def test_soc_constant_240_first_then_100() -> None:
    references = [frame.charged_rate_reference for _, frame in of_type(VehicleChargeLimits)]
    assert references[0] == 240
    assert set(references[1:]) == {100}


def test_soc_trajectory_placeholders_then_73_percent() -> None:
    statuses = [frame for _, frame in of_type(VehicleStatus)]
    soc = [frame.state_of_charge for frame in statuses]
    # handshake: 3 (against the 240 constant), then 1, then the real SoC for the rest
    assert soc[0] == 3 and soc[1] == 1
    first_real = soc.index(73)
    assert set(soc[1:first_real]) == {1}
    assert set(soc[first_real:]) == {73}
    assert statuses[-1].soc_pct(100) == 73.0


def test_minimum_discharge_voltage_250_and_discharge_soc_floor_67() -> None:
    limits = [frame for _, frame in of_type(VehicleDischargeLimits)]
    assert {frame.min_discharge_voltage_v for frame in limits} == {250}
    # finding 5: the early 0xFF is "not used" (absent), never a 255 % floor.
    assert {frame.min_soc_for_discharge for frame in limits} == {None, 67}
    assert {frame.min_soc_for_discharge_pct for frame in limits} == {255, 67}  # raw kept
    assert max(frame.max_discharge_current_a for frame in limits) == 15


def test_charger_offers_500v_15a_threshold_435v() -> None:
    caps = [frame for _, frame in of_type(ChargerCapabilities)]
    assert {frame.available_output_voltage_v for frame in caps} == {500}
    assert {frame.threshold_voltage_v for frame in caps} == {435}
    assert {frame.available_output_current_a for frame in caps} == {15, 0}
    assert all(frame.welding_detection_supported for frame in caps)
    discharge = [frame for _, frame in of_type(ChargerDischargeStatus)]
    assert discharge[-1].available_input_current_a == 15
    assert discharge[-1].lower_threshold_voltage_v == 250


def test_discharge_compatible_on_both_sides() -> None:
    assert all(frame.discharge_compatible for _, frame in of_type(VehicleStatus))
    assert all(frame.discharge_compatible for _, frame in of_type(ChargerStatus))
    # the charger then sends 0x208 and 0x209 every cycle, as many as 0x109
    assert len(of_type(ChargerDischargeStatus)) == len(of_type(ChargerStatus))
    assert len(of_type(ChargerDischargeTime)) == len(of_type(ChargerStatus))


def test_charge_request_ramps_2a_per_cycle_to_14a() -> None:
    requests = [frame.charging_current_request_a for _, frame in of_type(VehicleStatus)]
    assert max(requests) == 14
    rises = [b - a for a, b in itertools.pairwise(requests) if b > a]
    assert set(rises) == {2}


def test_direction_change_car_drops_charge_request_within_about_100ms() -> None:
    caps = of_type(ChargerCapabilities)
    switch_at = next(t for t, frame in caps if frame.available_output_current_a == 0)
    statuses = of_type(VehicleStatus)
    dropped_at = next(
        t for t, frame in statuses if t > switch_at and frame.charging_current_request_a == 0
    )
    assert 0 < dropped_at - switch_at <= 0.15
    # the car's discharge limit ramps 0 -> 15 A around the switch
    limits = of_type(VehicleDischargeLimits)
    ramp = [
        frame.max_discharge_current_a for t, frame in limits if switch_at - 0.2 < t < switch_at + 1
    ]
    assert ramp[0] < 5 and ramp[-1] == 15
    # charging resumes when the charger offers 15 A again
    back_at = next(t for t, frame in caps if t > switch_at and frame.available_output_current_a)
    assert any(
        frame.charging_current_request_a > 0 for t, frame in statuses if back_at < t < back_at + 1
    )


def test_session_start_and_stop_sequence() -> None:
    statuses = of_type(VehicleStatus)
    enabled_at = next(t for t, frame in statuses if frame.charging_enabled)
    closed_at = next(t for t, frame in statuses if not frame.ev_contactor_open)
    assert enabled_at < closed_at
    # stop: charging_enabled falls while the contactor is still closed, then it opens
    stop_at = next(t for t, frame in statuses if t > closed_at and not frame.charging_enabled)
    opened_at = next(t for t, frame in statuses if t > stop_at and frame.ev_contactor_open)
    assert opened_at - stop_at < 4.0
    # the charger is already at 0 A and not delivering when the car opens its contactor
    charger = of_type(ChargerStatus)
    last_before_open = [frame for t, frame in charger if t < opened_at][-1]
    assert not last_before_open.charger_delivering and last_before_open.output_current_a == 0
    assert not any(frame.faults() for _, frame in statuses)


def test_max_charging_time_and_capacity() -> None:
    times = [frame for _, frame in of_type(VehicleChargeTime)]
    assert times[-1].max_charging_time_s == 3600
    assert {frame.total_battery_capacity_wh for frame in times} == {0, 24000, 22200}
