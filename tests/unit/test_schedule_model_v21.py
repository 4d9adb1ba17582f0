"""OCPP 2.1 charging-profile fields (Q, K): parse -> serialise keeps a 2.1 payload, the 2.1
schema accepts what we write, 2.0.1 payloads are unchanged, V2X validation and dynamic updates."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import ocpp.v21
import pytest
from hypothesis import given
from hypothesis import strategies as st

from v2g_shared.schedule import (
    ChargingProfileKind,
    ChargingProfilePurpose,
    InstalledProfile,
    OperationMode,
    ProfileFormatError,
    Transaction,
    ValidationContext,
    apply_schedule_update,
    limit_at,
    profile_from_ocpp,
    profile_to_ocpp,
    schedule_update_from_ocpp,
    v2x_at,
    validate_profile,
)

SCHEMA_V21 = json.loads(
    (Path(ocpp.v21.__file__).parent / "schemas" / "SetChargingProfileRequest.json").read_text()
)
T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)

V21_FULL = {
    "id": 7,
    "stackLevel": 2,
    "chargingProfilePurpose": "TxProfile",
    "chargingProfileKind": "Absolute",
    "transactionId": "tx-1",
    "chargingSchedule": [
        {
            "id": 1,
            "startSchedule": "2026-03-01T12:00:00.000Z",
            "chargingRateUnit": "W",
            "chargingSchedulePeriod": [
                {"startPeriod": 0, "limit": 11000, "operationMode": "ChargingOnly"},
                {
                    "startPeriod": 600,
                    "limit": 11000,
                    "limit_L2": 3700,
                    "limit_L3": 3700,
                    "dischargeLimit": -9000,
                    "dischargeLimit_L2": -3000,
                    "dischargeLimit_L3": -3000,
                    "setpoint": -5000,
                    "setpoint_L2": -1000.5,
                    "setpoint_L3": -1000,
                    "setpointReactive": 200,
                    "setpointReactive_L2": 0,
                    "setpointReactive_L3": 0,
                    "preconditioningRequest": False,
                    "evseSleep": False,
                    "v2xBaseline": 0,
                    "operationMode": "CentralSetpoint",
                },
                {
                    "startPeriod": 1200,
                    "dischargeLimit": -7000,
                    "operationMode": "LocalFrequency",
                    "v2xFreqWattCurve": [
                        {"frequency": 49.5, "power": -7000},
                        {"frequency": 50.5, "power": 7000},
                    ],
                    "v2xSignalWattCurve": [{"signal": -100, "power": -7000}],
                },
                {"startPeriod": 1800, "operationMode": "Idle", "evseSleep": True},
            ],
            "powerTolerance": 100,
            "randomizedDelay": 30,
            "useLocalTime": False,
            "limitAtSoC": {"soc": 80, "limit": 3000},
        }
    ],
    "maxOfflineDuration": 120,
    "invalidAfterOfflineDuration": True,
    "priceScheduleSignature": "sig",
}

V21_DYNAMIC = {
    "id": 9,
    "stackLevel": 5,
    "chargingProfilePurpose": "TxDefaultProfile",
    "chargingProfileKind": "Dynamic",
    "chargingSchedule": [
        {
            "id": 1,
            "chargingRateUnit": "W",
            "chargingSchedulePeriod": [
                {"startPeriod": 0, "setpoint": -3000, "operationMode": "CentralSetpoint"}
            ],
        }
    ],
    "dynUpdateInterval": 60,
    "dynUpdateTime": "2026-03-01T12:00:00.000Z",
}

V21 = ValidationContext(evse_ids=frozenset({1}), dc_evse_ids=frozenset({1}), ocpp_2_1=True)
V201 = ValidationContext(evse_ids=frozenset({1}), dc_evse_ids=frozenset({1}), ocpp_2_1=False)
UNSAID = ValidationContext(evse_ids=frozenset({1}), dc_evse_ids=frozenset({1}))


@pytest.mark.parametrize("payload", [V21_FULL, V21_DYNAMIC], ids=["full", "dynamic"])
def test_v21_profile_survives_parse_and_serialise(payload: dict[str, object]) -> None:
    assert profile_to_ocpp(profile_from_ocpp(payload)) == payload


@pytest.mark.parametrize("payload", [V21_FULL, V21_DYNAMIC], ids=["full", "dynamic"])
def test_serialised_v21_profile_matches_the_v21_schema(payload: dict[str, object]) -> None:
    request = {"evseId": 1, "chargingProfile": profile_to_ocpp(profile_from_ocpp(payload))}
    jsonschema.validate(request, SCHEMA_V21)


def test_v21_parse_reads_modes_setpoints_and_curves() -> None:
    profile = profile_from_ocpp(V21_FULL)
    first, setpoint, local, idle = profile.schedule.periods
    assert first.mode is OperationMode.CHARGING_ONLY
    assert setpoint.setpoint == -5000 and setpoint.discharge_limit == -9000
    assert local.limit is None and local.v2x_freq_watt_curve == ((49.5, -7000), (50.5, 7000))
    assert local.v2x_signal_watt_curve == ((-100, -7000.0),)
    assert idle.mode is OperationMode.IDLE and idle.evse_sleep is True
    assert profile.max_offline_duration == 120 and profile.invalid_after_offline_duration


def test_absent_operation_mode_reads_as_charging_only() -> None:
    period = profile_from_ocpp(V21_DYNAMIC | {"chargingProfileKind": "Absolute"}).schedule
    assert period.periods[0].operation_mode is OperationMode.CENTRAL_SETPOINT
    plain = {
        "id": 1,
        "stackLevel": 0,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Relative",
        "chargingSchedule": [
            {
                "id": 1,
                "chargingRateUnit": "W",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 1}],
            }
        ],
    }
    parsed = profile_from_ocpp(plain)
    assert parsed.schedule.periods[0].mode is OperationMode.CHARGING_ONLY
    assert not parsed.uses_2_1
    assert profile_to_ocpp(parsed) == plain


@pytest.mark.parametrize(
    "bad",
    [
        {"operationMode": "Turbo"},
        {"setpoint": "fast"},
        {"evseSleep": "yes"},
        {"v2xFreqWattCurve": []},
        {"v2xFreqWattCurve": [{"frequency": 50}]},
    ],
)
def test_malformed_v21_period_raises_profile_format_error(bad: dict[str, object]) -> None:
    payload = copy.deepcopy(V21_DYNAMIC)
    payload["chargingSchedule"][0]["chargingSchedulePeriod"][0].update(bad)  # type: ignore[index]
    with pytest.raises(ProfileFormatError):
        profile_from_ocpp(payload)


def test_v21_purposes_and_dynamic_kind_parse() -> None:
    for purpose in ("PriorityCharging", "LocalGeneration"):
        parsed = profile_from_ocpp(V21_DYNAMIC | {"chargingProfilePurpose": purpose})
        assert parsed.purpose is ChargingProfilePurpose(purpose)
    assert profile_from_ocpp(V21_DYNAMIC).kind is ChargingProfileKind.DYNAMIC


def test_v21_fields_are_refused_over_v201() -> None:
    profile = profile_from_ocpp(V21_DYNAMIC)
    rules = {v.rule for v in validate_profile(profile, V201, evse_id=1)}
    assert "OCPP 2.0.1" in rules


def test_version_not_said_runs_the_period_rules_but_not_station_capabilities() -> None:
    """How the CSMS checks before sending (the payload passed its version's schema)."""
    assert validate_profile(profile_from_ocpp(V21_DYNAMIC), UNSAID, evse_id=1) == []
    priority = profile_from_ocpp(V21_DYNAMIC | {"chargingProfilePurpose": "PriorityCharging"})
    assert validate_profile(priority, UNSAID, evse_id=1) == []
    payload = copy.deepcopy(V21_DYNAMIC)
    periods = payload["chargingSchedule"][0]  # type: ignore[index]
    periods["chargingSchedulePeriod"] = [{"startPeriod": 0}]
    rules = {v.rule for v in validate_profile(profile_from_ocpp(payload), UNSAID, evse_id=1)}
    assert rules == {"ChargingSchedulePeriod.limit"}


def test_valid_v21_profile_passes_v21_validation() -> None:
    context = ValidationContext(
        evse_ids=frozenset({1}),
        dc_evse_ids=frozenset({1}),
        ocpp_2_1=True,
        active_transactions={1: "tx-1"},
    )
    assert validate_profile(profile_from_ocpp(V21_FULL), context, evse_id=1) == []
    assert validate_profile(profile_from_ocpp(V21_DYNAMIC), V21, evse_id=1) == []


@pytest.mark.parametrize(
    ("period", "rule"),
    [
        ({"startPeriod": 0}, "ChargingSchedulePeriod.limit"),
        (
            {"startPeriod": 0, "setpoint": 1, "operationMode": "CentralFrequency"},
            "ChargingSchedulePeriod.limit",
        ),
        ({"startPeriod": 0, "operationMode": "CentralSetpoint"}, "ChargingSchedulePeriod.setpoint"),
        (
            {"startPeriod": 0, "operationMode": "LocalFrequency"},
            "ChargingSchedulePeriod.v2xFreqWattCurve",
        ),
        (
            {"startPeriod": 0, "limit": 5, "setpoint": -5, "operationMode": "ChargingOnly"},
            "ChargingSchedulePeriod.operationMode",
        ),
        (
            {
                "startPeriod": 0,
                "operationMode": "LocalFrequency",
                "v2xFreqWattCurve": [
                    {"frequency": 50.5, "power": 1},
                    {"frequency": 49.5, "power": 1},
                ],
            },
            "ChargingSchedulePeriod.v2xFreqWattCurve",
        ),
    ],
)
def test_v21_period_rules(period: dict[str, object], rule: str) -> None:
    payload = copy.deepcopy(V21_DYNAMIC)
    payload["chargingSchedule"][0]["chargingSchedulePeriod"] = [period]  # type: ignore[index]
    rules = {v.rule for v in validate_profile(profile_from_ocpp(payload), V21, evse_id=1)}
    assert rule in rules


def test_dynamic_profile_has_one_period_and_unsupported_purposes_are_refused() -> None:
    payload = copy.deepcopy(V21_DYNAMIC)
    periods = payload["chargingSchedule"][0]["chargingSchedulePeriod"]  # type: ignore[index]
    periods.append({"startPeriod": 60, "setpoint": 0, "operationMode": "CentralSetpoint"})
    assert "K01.Dynamic" in {
        v.rule for v in validate_profile(profile_from_ocpp(payload), V21, evse_id=1)
    }
    priority = profile_from_ocpp(V21_DYNAMIC | {"chargingProfilePurpose": "PriorityCharging"})
    assert "ChargingProfile.chargingProfilePurpose" in {
        v.rule for v in validate_profile(priority, V21, evse_id=1)
    }


def test_unsupported_operation_mode_is_refused() -> None:
    context = ValidationContext(
        evse_ids=frozenset({1}),
        ocpp_2_1=True,
        supported_operation_modes=frozenset({OperationMode.CHARGING_ONLY}),
    )
    rules = {v.rule for v in validate_profile(profile_from_ocpp(V21_DYNAMIC), context, evse_id=1)}
    assert "V2XCtrlr.SupportedOperationModes" in rules


def test_schedule_update_moves_the_dynamic_period() -> None:
    profile = profile_from_ocpp(V21_DYNAMIC)
    update = schedule_update_from_ocpp({"setpoint": -6000, "dischargeLimit": -8000})
    moved = apply_schedule_update(profile, update, T0)
    period = moved.schedule.periods[0]
    assert period.setpoint == -6000 and period.discharge_limit == -8000
    assert period.mode is OperationMode.CENTRAL_SETPOINT
    assert moved.dyn_update_time == T0
    with pytest.raises(ProfileFormatError):
        apply_schedule_update(profile_from_ocpp(V21_FULL), update, T0)


def test_v2x_at_reports_the_winning_period_and_the_tightest_discharge_limit() -> None:
    tx = profile_from_ocpp(V21_FULL)
    max_profile = profile_from_ocpp(
        {
            "id": 1,
            "stackLevel": 0,
            "chargingProfilePurpose": "ChargingStationMaxProfile",
            "chargingProfileKind": "Absolute",
            "chargingSchedule": [
                {
                    "id": 1,
                    "startSchedule": "2026-01-01T00:00:00.000Z",
                    "chargingRateUnit": "W",
                    "chargingSchedulePeriod": [
                        {"startPeriod": 0, "limit": 20000, "dischargeLimit": -6000}
                    ],
                }
            ],
        }
    )
    installed = [InstalledProfile(1, tx), InstalledProfile(0, max_profile)]
    transactions = {1: Transaction("tx-1", T0)}
    from datetime import timedelta

    at = v2x_at(installed, transactions, [1], evse_id=1, now=T0 + timedelta(seconds=700))
    assert at.mode is OperationMode.CENTRAL_SETPOINT
    assert at.setpoint == -5000
    assert at.discharge_limit == -6000  # the station max is tighter than the -9000 of the Tx
    local = v2x_at(installed, transactions, [1], evse_id=1, now=T0 + timedelta(seconds=1300))
    assert local.mode is OperationMode.LOCAL_FREQUENCY and local.freq_watt_curve is not None
    # A period without limit does not limit: the station max bounds alone.
    limit, _ = limit_at(installed, transactions, [1], evse_id=1, now=T0 + timedelta(seconds=1300))
    assert limit == 20000
    nothing = v2x_at([], {}, [1], evse_id=1, now=T0)
    assert nothing.mode is OperationMode.CHARGING_ONLY and nothing.setpoint is None


@given(
    setpoint=st.floats(-1e5, 1e5, allow_nan=False),
    discharge=st.floats(-1e5, 0, allow_nan=False),
    mode=st.sampled_from(list(OperationMode)),
)
def test_any_v21_period_round_trips(setpoint: float, discharge: float, mode: OperationMode) -> None:
    payload = copy.deepcopy(V21_DYNAMIC)
    payload["chargingSchedule"][0]["chargingSchedulePeriod"] = [  # type: ignore[index]
        {
            "startPeriod": 0,
            "dischargeLimit": discharge,
            "setpoint": setpoint,
            "operationMode": mode.value,
        }
    ]
    again = profile_from_ocpp(profile_to_ocpp(profile_from_ocpp(payload)))
    assert again == profile_from_ocpp(payload)
