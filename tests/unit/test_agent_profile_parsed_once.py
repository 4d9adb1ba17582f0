"""A charging profile changes representation once in the agent (issue 13): the handler parses
the CALL's camelCase JSON into v2g_shared's ChargingProfile; storage keeps the OCPP JSON form it
always had, so profiles stored before still load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chargepoint_firmware.blocks.smart_charging.handlers import parse_profile
from tests.unit.test_agent_transactions import Rig
from v2g_shared.schedule import (
    ChargingProfile,
    ChargingProfilePurpose,
    Violation,
    profile_from_ocpp,
    profile_to_ocpp,
)


def tx_profile(**extra: Any) -> dict[str, Any]:
    return {
        "id": 7,
        "stackLevel": 0,
        "chargingProfilePurpose": "TxProfile",
        "chargingProfileKind": "Relative",
        "chargingSchedule": [
            {
                "id": 1,
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16}],
                "salesTariff": {
                    "id": 1,
                    "salesTariffEntry": [{"relativeTimePeriod": {"start": 0}}],
                },
            }
        ],
        **extra,
    }


def test_the_camel_case_payload_is_parsed_into_the_shared_dataclass() -> None:
    parsed = parse_profile(tx_profile())
    assert isinstance(parsed, ChargingProfile)
    assert parsed.purpose is ChargingProfilePurpose.TX_PROFILE
    assert parsed == profile_from_ocpp(tx_profile())
    # Nested objects the agent does not interpret keep their OCPP spelling.
    assert parsed.schedule.sales_tariff == tx_profile()["chargingSchedule"][0]["salesTariff"]


def test_a_profile_that_is_no_profile_is_a_format_violation() -> None:
    for raw in (None, [], {"id": 1}):
        result = parse_profile(raw)
        assert isinstance(result, Violation) and result.rule == "FormatViolation"


def test_the_pending_tx_profile_is_stored_as_ocpp_json(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    profile = profile_from_ocpp(tx_profile())
    accepted, _ = rig.tm.remote_start(1, {"id_token": "A", "type": "Central"}, 4, profile)
    assert accepted
    stored = rig.storage.get("evse:1")["pending_profile"]
    assert stored == profile_to_ocpp(profile)
    assert stored["chargingProfilePurpose"] == "TxProfile"
