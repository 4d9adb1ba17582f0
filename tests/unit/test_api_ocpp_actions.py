"""CSMS-initiated actions: the API's list, its request validation, the test station's answers."""

from __future__ import annotations

import copy
from importlib import resources

import pytest

from csms.api.ocpp_actions import is_csms_initiated_action
from csms.oca_schemas import (
    ALL_ACTIONS,
    CS_TO_CSMS_ACTIONS,
    CSMS_INITIATED_ACTIONS,
    RequestRefused,
    check_request,
    describe_errors,
    request_errors,
)
from tests.support import api_station
from tests.support.api_payloads import DISCHARGE_PROFILE, EXAMPLE_REQUESTS


def test_every_csms_initiated_201_action_is_listed_once() -> None:
    assert len(CSMS_INITIATED_ACTIONS) == 40
    assert len(set(CSMS_INITIATED_ACTIONS)) == 40
    assert api_station.CSMS_INITIATED_ACTIONS is CSMS_INITIATED_ACTIONS
    assert is_csms_initiated_action("SetChargingProfile")
    assert not is_csms_initiated_action("BootNotification")  # station -> CSMS only
    assert not is_csms_initiated_action("NoSuchAction")


def test_the_action_list_matches_the_oca_schemas() -> None:
    names = [p.name for p in resources.files("ocpp.v201").joinpath("schemas").iterdir()]
    shipped = {n.removesuffix("Request.json") for n in names if n.endswith("Request.json")}
    assert shipped == ALL_ACTIONS
    assert len(CS_TO_CSMS_ACTIONS) == 25
    assert set(CSMS_INITIATED_ACTIONS) & CS_TO_CSMS_ACTIONS == {"DataTransfer"}
    assert set(CSMS_INITIATED_ACTIONS) | CS_TO_CSMS_ACTIONS == ALL_ACTIONS


def test_check_request_lists_every_violation_or_names_the_one_found() -> None:
    check_request("Reset", {"type": "Immediate"})
    with pytest.raises(RequestRefused) as listed:
        check_request("Reset", {"type": "Soon", "evseId": 1.0})
    assert [e["field"] for e in listed.value.errors] == ["evseId", "type"]
    # Beyond the Draft 4 schema (a bound): no list, the one violation.
    with pytest.raises(RequestRefused) as bound:
        check_request("Reset", {"type": "Immediate", "evseId": 2**31})
    assert bound.value.errors == []
    assert bound.value.violation.code == "PropertyConstraintViolation"


@pytest.mark.parametrize("action", CSMS_INITIATED_ACTIONS)
def test_example_request_is_schema_valid(action: str) -> None:
    assert request_errors(action, EXAMPLE_REQUESTS[action]) == []


@pytest.mark.parametrize("action", CSMS_INITIATED_ACTIONS)
def test_test_station_answer_is_schema_valid(action: str) -> None:
    station = api_station.ApiTestStation.__new__(api_station.ApiTestStation)
    station.behaviour = api_station.StationBehaviour()
    station.variables = {("OCPPCommCtrlr", "HeartbeatInterval"): "300"}
    answer = station.answer(action, copy.deepcopy(EXAMPLE_REQUESTS[action]))
    assert describe_errors(action, "Response", answer) == []


def test_missing_required_field_is_named() -> None:
    errors = request_errors("Reset", {})
    assert errors == [{"field": "(payload)", "message": "'type' is a required property"}]


def test_nested_violation_names_the_path() -> None:
    payload = copy.deepcopy(EXAMPLE_REQUESTS["SetChargingProfile"])
    payload["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"][1]["limit"] = "x"
    errors = request_errors("SetChargingProfile", payload)
    assert len(errors) == 1
    assert (
        errors[0]["field"] == "chargingProfile.chargingSchedule[0].chargingSchedulePeriod[1].limit"
    )
    assert "'x' is not of type 'number'" in errors[0]["message"]


def test_negative_limit_is_allowed_by_the_201_schema() -> None:
    # Project convention: a negative limit means discharge; the 2.0.1 schema has no minimum.
    periods = DISCHARGE_PROFILE["chargingSchedule"][0]["chargingSchedulePeriod"]
    assert any(period["limit"] < 0 for period in periods)
    assert (
        request_errors("SetChargingProfile", {"evseId": 1, "chargingProfile": DISCHARGE_PROFILE})
        == []
    )


def test_unknown_enum_value_is_reported() -> None:
    errors = request_errors("Reset", {"type": "Sometime"})
    assert errors[0]["field"] == "type"
    assert "Sometime" in errors[0]["message"]
