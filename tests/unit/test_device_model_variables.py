"""Device model: GetVariables / SetVariables statuses (B06, B05), value checks and listeners."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import ocpp.v201
import pytest

from chargepoint_firmware.device_model import (
    DeviceModel,
    VariableRef,
    freq_watt_curve_error,
)
from chargepoint_firmware.device_model.store import InMemoryStore

SCHEMAS = Path(ocpp.v201.__file__).parent / "schemas"


def _schema_check(name: str, payload: dict[str, Any]) -> None:
    schema = json.loads((SCHEMAS / f"{name}.json").read_text())
    jsonschema.Draft4Validator(schema).validate(payload)


def _get(
    component: str,
    variable: str,
    *,
    evse: int | None = None,
    connector: int | None = None,
    attribute: str | None = None,
    instance: str | None = None,
) -> dict[str, Any]:
    comp: dict[str, Any] = {"name": component}
    if evse is not None:
        comp["evse"] = {"id": evse} if connector is None else {"id": evse, "connectorId": connector}
    var: dict[str, Any] = {"name": variable}
    if instance is not None:
        var["instance"] = instance
    out: dict[str, Any] = {"component": comp, "variable": var}
    if attribute is not None:
        out["attributeType"] = attribute
    return out


def _set(component: str, variable: str, value: str, **kwargs: Any) -> dict[str, Any]:
    return {**_get(component, variable, **kwargs), "attributeValue": value}


@pytest.fixture
def model() -> DeviceModel:
    return DeviceModel([1, 2], InMemoryStore())


def _statuses(results: list[dict[str, Any]]) -> list[str]:
    return [r["attributeStatus"] for r in results]


def test_b06_get_variables_statuses(model: DeviceModel) -> None:
    results = model.get_variables(
        [
            _get("OCPPCommCtrlr", "HeartbeatInterval"),
            _get("NoSuchCtrlr", "HeartbeatInterval"),
            _get("OCPPCommCtrlr", "NoSuchVariable"),
            _get("OCPPCommCtrlr", "HeartbeatInterval", attribute="Target"),
            _get("SecurityCtrlr", "BasicAuthPassword"),
            _get("EVSE", "Power", evse=1, attribute="MaxSet"),
            _get("EVSE", "Power", evse=3),
            _get("EVSE", "Power"),  # EVSE without an id: no such component
            _get("Connector", "ConnectorType", evse=2, connector=1),
            _get("DeviceDataCtrlr", "ItemsPerMessage", instance="GetVariables"),
        ]
    )
    assert _statuses(results) == [
        "Accepted",
        "UnknownComponent",
        "UnknownVariable",
        "NotSupportedAttributeType",
        "Rejected",
        "Accepted",
        "UnknownComponent",
        "UnknownComponent",
        "Accepted",
        "Accepted",
    ]
    assert results[0]["attributeValue"] == "300"
    assert "attributeValue" not in results[4]  # WriteOnly never leaves the station
    assert results[5]["attributeValue"] == "50000"
    assert results[8]["attributeValue"] == "cCHAdeMO"
    _schema_check("GetVariablesResponse", {"getVariableResult": results})


def test_b05_set_variables_statuses(model: DeviceModel) -> None:
    results = model.set_variables(
        [
            _set("OCPPCommCtrlr", "HeartbeatInterval", "120"),
            _set("ChargingStation", "Model", "Other"),  # ReadOnly
            _set("OCPPCommCtrlr", "HeartbeatInterval", "0"),  # below minLimit
            _set("OCPPCommCtrlr", "HeartbeatInterval", "ten"),  # not an integer
            _set("Nope", "HeartbeatInterval", "1"),
            _set("OCPPCommCtrlr", "Nope", "1"),
            _set("OCPPCommCtrlr", "HeartbeatInterval", "1", attribute="MaxSet"),
            _set("SecurityCtrlr", "SecurityProfile", "2"),
        ]
    )
    assert _statuses(results) == [
        "Accepted",
        "Rejected",
        "Rejected",
        "Rejected",
        "UnknownComponent",
        "UnknownVariable",
        "NotSupportedAttributeType",
        "RebootRequired",
    ]
    assert results[1]["attributeStatusInfo"]["reasonCode"] == "ReadOnly"
    assert results[2]["attributeStatusInfo"]["reasonCode"] == "InvalidValue"
    assert model.heartbeat_interval() == 120
    _schema_check("SetVariablesResponse", {"setVariableResult": results})


def test_reboot_required_keeps_the_running_value_and_stores_the_new_one() -> None:
    store = InMemoryStore()
    model = DeviceModel([1], store)
    seen: list[str] = []
    model.on_change("SecurityCtrlr", "SecurityProfile", lambda ref, value: seen.append(value))
    result = model.set_variables([_set("SecurityCtrlr", "SecurityProfile", "2")])
    assert _statuses(result) == ["RebootRequired"]
    assert model.security_profile() == 1
    assert seen == []
    assert DeviceModel([1], store).security_profile() == 2


def test_security_profile_cannot_be_lowered() -> None:
    model = DeviceModel([1], InMemoryStore({"SecurityCtrlr.SecurityProfile": "2"}))
    result = model.set_variables([_set("SecurityCtrlr", "SecurityProfile", "1")])
    assert _statuses(result) == ["Rejected"]
    assert "lowered" in result[0]["attributeStatusInfo"]["additionalInfo"]


def test_write_only_password_is_set_but_never_read_back(model: DeviceModel) -> None:
    assert _statuses(
        model.set_variables([_set("SecurityCtrlr", "BasicAuthPassword", "short")])
    ) == ["Rejected"]
    password = "a-very-secret-password-1"
    result = model.set_variables([_set("SecurityCtrlr", "BasicAuthPassword", password)])
    assert _statuses(result) == ["Accepted"]
    assert model.basic_auth_password() == password
    assert _statuses(model.get_variables([_get("SecurityCtrlr", "BasicAuthPassword")])) == [
        "Rejected"
    ]


@pytest.mark.parametrize(
    ("component", "variable", "good", "bad", "kwargs"),
    [
        ("SmartChargingCtrlr", "Enabled", "FALSE", "no", {}),
        ("SmartChargingCtrlr", "LimitChangeSignificance", "2.5", "101", {}),
        ("TxCtrlr", "TxStartPoint", "EVConnected,Authorized", "EVConnected,Sometimes", {}),
        ("TxCtrlr", "TxStopPoint", "EVConnected", "EVConnected,EVConnected", {}),
        ("SampledDataCtrlr", "TxUpdatedMeasurands", "SoC,Voltage", "Temperature", {}),
        ("AuthCacheCtrlr", "Policy", "FIFO", "Random", {}),
        ("SecurityCtrlr", "OrganizationName", "Acme", "x" * 51, {}),
        ("V2XCtrlr", "BackupReserveSoC", "35", "-1", {}),
        (
            "V2XCtrlr",
            "FreqWattCurve",
            "[[49.5, -3000], [50.5, 3000]]",
            "[[50.5, 0], [49.5, 1]]",
            {},
        ),
        ("EVSE", "Power", "7000", "60000", {"evse": 1, "attribute": "MaxSet"}),
        ("EVSE", "Power", "7000", "-100", {"evse": 1, "attribute": "MaxSet"}),
    ],
)
def test_values_are_checked_against_data_type_and_characteristics(
    model: DeviceModel,
    component: str,
    variable: str,
    good: str,
    bad: str,
    kwargs: dict[str, Any],
) -> None:
    assert _statuses(model.set_variables([_set(component, variable, bad, **kwargs)])) == [
        "Rejected"
    ]
    assert _statuses(model.set_variables([_set(component, variable, good, **kwargs)])) == [
        "Accepted"
    ]
    read = model.get_variables([_get(component, variable, **kwargs)])[0]["attributeValue"]
    assert read == (good.lower() if good in ("FALSE",) else good)


@pytest.mark.parametrize(
    ("curve", "ok"),
    [
        ("[[49.0, -7000], [51.0, 7000]]", True),
        ("not json", False),
        ("[[50, 0]]", False),
        ("[[50, 0], [50, 1]]", False),
        ("[[50, 0], [51, true]]", False),
        ("[[30, 0], [51, 1]]", False),
        ('{"a": 1}', False),
    ],
)
def test_freq_watt_curve_format(curve: str, ok: bool) -> None:
    assert (freq_watt_curve_error(curve) is None) is ok


def test_typed_accessors_follow_values(model: DeviceModel) -> None:
    assert model.negative_limit_is_discharge() is True
    assert model.rate_units() == ("A", "W")
    assert model.tx_start_points() == ("PowerPathClosed",)
    assert model.freq_watt_curve()[0] == (49.0, -7000.0)
    assert model.items_per_message("GetReport") == 50
    assert model.charging_profile_entries_max() == 100
    assert model.evse_max_power_w(2) == 50000
    model.set_variables(
        [
            _set("V2XCtrlr", "NegativeLimitIsDischarge", "false"),
            _set("SampledDataCtrlr", "TxEndedMeasurands", ""),
            _set("OCPPCommCtrlr", "MessageTimeout", "45", instance="Default"),
        ]
    )
    assert model.negative_limit_is_discharge() is False
    assert model.sampled_measurands("TxEnded") == ()
    assert model.message_timeout() == 45


def test_value_understands_flattened_and_instance_free_names(model: DeviceModel) -> None:
    assert model.value("DeviceDataCtrlr", "ItemsPerMessageGetReport") == "50"
    assert model.value("SmartChargingCtrlr", "Entries") == "0"
    with pytest.raises(KeyError):
        model.value("DeviceDataCtrlr", "ItemsPerMessage")  # three instances: ambiguous
    with pytest.raises(KeyError):
        model.value("Nope", "Nope")


def test_on_change_listeners_and_internal_updates(model: DeviceModel) -> None:
    seen: list[tuple[VariableRef, str]] = []
    model.on_change("OCPPCommCtrlr", "HeartbeatInterval", lambda ref, v: seen.append((ref, v)))
    model.on_change("EVSE", "AvailabilityState", lambda ref, v: seen.append((ref, v)))
    model.set_variables([_set("OCPPCommCtrlr", "HeartbeatInterval", "60")])
    model.set_variables([_set("OCPPCommCtrlr", "HeartbeatInterval", "60")])  # no change
    model.set_variables([_set("OCPPCommCtrlr", "HeartbeatInterval", "-5")])  # rejected
    model.set_internal("EVSE", "AvailabilityState", "Occupied", evse_id=2)
    assert [(ref.component, ref.evse_id, v) for ref, v in seen] == [
        ("OCPPCommCtrlr", None, "60"),
        ("EVSE", 2, "Occupied"),
    ]
    with pytest.raises(ValueError, match="not one of"):
        model.set_internal("EVSE", "AvailabilityState", "Sleepy", evse_id=2)


def test_defaults_override_and_bad_defaults_raise() -> None:
    model = DeviceModel(
        [1],
        InMemoryStore(),
        defaults={"ChargingStation.Model": "LEAF-V2H", "EVSE/1.Power.MaxSet": "6000"},
    )
    assert model.value("ChargingStation", "Model") == "LEAF-V2H"
    assert model.evse_max_power_w(1) == 6000
    with pytest.raises(KeyError):
        DeviceModel([1], InMemoryStore(), defaults={"Nope.Nope": "1"})
    with pytest.raises(ValueError):
        DeviceModel([1], InMemoryStore(), defaults={"OCPPCommCtrlr.HeartbeatInterval": "x"})


def test_snake_case_input_and_output_for_the_ocpp_library(model: DeviceModel) -> None:
    """Handlers of the `ocpp` library receive snake_case keys; either form is accepted."""
    request = {
        "component": {"name": "Connector", "evse": {"id": 1, "connector_id": 1}},
        "variable": {"name": "ConnectorType"},
        "attribute_type": "Actual",
    }
    result = model.get_variables([request], style="snake")
    assert result[0]["attribute_status"] == "Accepted"
    assert result[0]["attribute_value"] == "cCHAdeMO"
    assert result[0]["component"]["evse"] == {"id": 1, "connector_id": 1}
    set_result = model.set_variables(
        [{"component": {"name": "TxCtrlr"}, "variable": {"name": "EVConnectionTimeOut"},
          "attribute_value": "90"}],
        style="snake",
    )  # fmt: skip
    assert set_result[0]["attribute_status"] == "Accepted"
    assert model.ev_connection_timeout() == 90
    report = model.report(None, component_variables=[request], style="snake")
    assert report[0]["variable_characteristics"]["data_type"] == "OptionList"


def test_unknown_attribute_type_is_not_supported(model: DeviceModel) -> None:
    assert _statuses(model.get_variables([_get("AuthCtrlr", "Enabled", attribute="Bogus")])) == [
        "NotSupportedAttributeType"
    ]
    bogus = _set("AuthCtrlr", "Enabled", "true", attribute="Bogus")
    assert _statuses(model.set_variables([bogus])) == ["NotSupportedAttributeType"]


def test_on_any_change_reports_component_and_variable(model: DeviceModel) -> None:
    seen: list[tuple[str, str]] = []
    model.on_any_change(lambda component, variable: seen.append((component, variable)))
    model.set_variables([_set("AuthCtrlr", "LocalPreAuthorize", "true")])
    model.set_internal("SmartChargingCtrlr", "Entries", "3")
    assert seen == [("AuthCtrlr", "LocalPreAuthorize"), ("SmartChargingCtrlr", "Entries")]
    assert model.charging_profile_entries_max() == 100
    assert model.local_auth_list_entries_max() == 1000
