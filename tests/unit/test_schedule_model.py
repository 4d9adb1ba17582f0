"""ChargingProfile <-> OCPP JSON (camelCase, UTC millisecond datetimes with Z)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import jsonschema
import ocpp.v201
import pytest

from v2g_shared.schedule import (
    ChargingProfileKind,
    ChargingProfilePurpose,
    ChargingRateUnit,
    ProfileFormatError,
    RecurrencyKind,
    format_datetime,
    parse_datetime,
    profile_from_ocpp,
    profile_to_ocpp,
)

SCHEMA_PATH = Path(ocpp.v201.__file__).parent / "schemas" / "SetChargingProfileRequest.json"

FULL = {
    "id": 12,
    "stackLevel": 3,
    "chargingProfilePurpose": "TxProfile",
    "chargingProfileKind": "Recurring",
    "recurrencyKind": "Weekly",
    "validFrom": "2026-01-01T00:00:00.000Z",
    "validTo": "2026-02-01T12:30:15.250Z",
    "transactionId": "tx-9",
    "chargingSchedule": [
        {
            "id": 4,
            "startSchedule": "2026-01-05T00:00:00.000Z",
            "duration": 86400,
            "chargingRateUnit": "A",
            "chargingSchedulePeriod": [
                {"startPeriod": 0, "limit": 16},
                {"startPeriod": 3600, "limit": -10.5, "numberPhases": 1, "phaseToUse": 2},
            ],
            "minChargingRate": 1.5,
        }
    ],
}


def test_profile_round_trips_through_ocpp_json() -> None:
    profile = profile_from_ocpp(FULL)
    assert profile.purpose is ChargingProfilePurpose.TX_PROFILE
    assert profile.kind is ChargingProfileKind.RECURRING
    assert profile.recurrency_kind is RecurrencyKind.WEEKLY
    assert profile.schedule.charging_rate_unit is ChargingRateUnit.A
    assert profile.schedule.periods[1].limit == -10.5
    assert profile.valid_to == datetime(2026, 2, 1, 12, 30, 15, 250000, tzinfo=UTC)
    assert profile_to_ocpp(profile) == FULL


def test_serialised_profile_matches_the_oca_schema() -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    request = {"evseId": 1, "chargingProfile": profile_to_ocpp(profile_from_ocpp(FULL))}
    jsonschema.Draft4Validator(schema).validate(request)


def test_datetimes_are_utc_with_milliseconds_and_z() -> None:
    eastern = datetime(2026, 1, 1, 10, 0, 0, 123456, tzinfo=timezone(timedelta(hours=10)))
    assert format_datetime(eastern) == "2026-01-01T00:00:00.123Z"
    assert parse_datetime("2026-01-01T10:00:00+10:00") == datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_datetime("2026-01-01T00:00:00") == datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "broken",
    [
        {k: v for k, v in FULL.items() if k != "stackLevel"},
        {**FULL, "chargingProfileKind": "Sometimes"},
        {**FULL, "validFrom": "yesterday"},
        {**FULL, "chargingSchedule": []},
    ],
)
def test_malformed_profiles_raise_profile_format_error(broken: dict[str, object]) -> None:
    with pytest.raises(ProfileFormatError):
        profile_from_ocpp(broken)


def test_schedule_package_imports_no_edge_package() -> None:
    """The pure package must run without ocpp, websockets, sqlalchemy, python-can or asyncio."""
    import subprocess
    import sys

    code = (
        "import sys, v2g_shared.schedule, chargepoint_firmware.device_model\n"
        "edge = {'ocpp', 'websockets', 'sqlalchemy', 'can', 'asyncio', 'fastapi'}\n"
        "print(sorted(edge & {m.split('.')[0] for m in sys.modules}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[2],
    )
    assert out.stdout.strip() == "[]"
