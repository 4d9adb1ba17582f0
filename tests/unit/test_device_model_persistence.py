"""Device model persistence (JSON file, atomic) and reports (B07 GetBaseReport, B08 GetReport)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import ocpp.v201
import pytest

from chargepoint_firmware.device_model import DeviceModel, paginate_report
from chargepoint_firmware.device_model.store import InMemoryStore, JsonFileStore

SCHEMAS = Path(ocpp.v201.__file__).parent / "schemas"


def _set(component: str, variable: str, value: str, evse: int | None = None) -> dict[str, Any]:
    comp: dict[str, Any] = {"name": component}
    if evse is not None:
        comp["evse"] = {"id": evse}
    return {"component": comp, "variable": {"name": variable}, "attributeValue": value}


def test_values_survive_a_restart_through_the_json_file(tmp_path: Path) -> None:
    path = tmp_path / "agent" / "device_model.json"
    model = DeviceModel([1], JsonFileStore(path))
    results = model.set_variables(
        [
            _set("OCPPCommCtrlr", "HeartbeatInterval", "77"),
            _set("V2XCtrlr", "DrivingReserveSoC", "42.5"),
            _set("SecurityCtrlr", "BasicAuthPassword", "0123456789abcdef"),
        ]
    )
    assert [r["attributeStatus"] for r in results] == ["Accepted"] * 3
    model.set_internal("EVSE", "AvailabilityState", "Faulted", evse_id=1)  # not persistent
    cap = {**_set("EVSE", "Power", "7000", evse=1), "attributeType": "MaxSet"}
    assert model.set_variables([cap])[0]["attributeStatus"] == "Accepted"

    reloaded = DeviceModel([1], JsonFileStore(path))
    assert reloaded.heartbeat_interval() == 77
    assert reloaded.driving_reserve_soc() == 42.5
    assert reloaded.basic_auth_password() == "0123456789abcdef"
    assert reloaded.value("EVSE", "AvailabilityState", evse_id=1) == "Available"
    assert reloaded.evse_max_power_w(1) == 7000
    saved = json.loads(path.read_text())
    assert saved["OCPPCommCtrlr.HeartbeatInterval"] == "77"
    assert not any("AvailabilityState" in k for k in saved)
    # No temporary files are left behind.
    assert os.listdir(path.parent) == ["device_model.json"]


def test_invalid_stored_values_are_ignored_on_load() -> None:
    store = InMemoryStore(
        {
            "OCPPCommCtrlr.HeartbeatInterval": "-3",
            "Gone.Variable": "1",
            "AuthCtrlr.Enabled": "false",
        }
    )
    model = DeviceModel([1], store)
    assert model.heartbeat_interval() == 300
    assert model.value("AuthCtrlr", "Enabled") == "false"


def test_json_store_rejects_a_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "dm.json"
    path.write_text("[1, 2]")
    with pytest.raises(ValueError):
        JsonFileStore(path).load()


def test_json_store_keeps_the_old_file_when_a_write_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "dm.json"
    store = JsonFileStore(path)
    store.save("A.B", "1")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        store.save("A.B", "2")
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"A.B": "1"}
    assert os.listdir(tmp_path) == ["dm.json"]


# ---------- reports ----------


def test_b07_full_configuration_and_summary_inventories() -> None:
    model = DeviceModel([1, 2], InMemoryStore())
    full = model.report("FullInventory")
    config = model.report("ConfigurationInventory")
    summary = model.report("SummaryInventory")
    assert len(full) == len(model.definitions())
    assert 0 < len(summary) < len(config) < len(full)
    assert all(
        any(a["mutability"] != "ReadOnly" for a in entry["variableAttribute"]) for entry in config
    )
    assert {e["variable"]["name"] for e in summary} == {"AvailabilityState", "Available", "Problem"}
    password = next(e for e in full if e["variable"]["name"] == "BasicAuthPassword")
    assert "value" not in password["variableAttribute"][0]
    connector = next(e for e in full if e["variable"]["name"] == "ConnectorType")
    assert connector["component"] == {"name": "Connector", "evse": {"id": 1, "connectorId": 1}}
    with pytest.raises(ValueError):
        model.report("Everything")


def test_b08_get_report_filters() -> None:
    model = DeviceModel([1, 2], InMemoryStore())
    by_component = model.report(None, component_variables=[{"component": {"name": "V2XCtrlr"}}])
    assert {e["variable"]["name"] for e in by_component} == {
        "NegativeLimitIsDischarge",
        "FreqWattCurve",
        "FreqWattEnabled",
        "BackupReserveSoC",
        "DrivingReserveSoC",
        "OfflineSafeLimit",
        # per-EVSE departure, read by the safety supervisor's departure floor
        "DepartureTime",
        "DepartureSoC",
    }
    one = model.report(
        None,
        component_variables=[
            {"component": {"name": "EVSE", "evse": {"id": 2}}, "variable": {"name": "Power"}}
        ],
    )
    assert len(one) == 1
    assert [a["type"] for a in one[0]["variableAttribute"]] == ["Actual", "MaxSet"]
    model.set_variables([_set("AuthCacheCtrlr", "Enabled", "false")])
    enabled = model.report(None, component_criteria=["Enabled"])
    components = {e["component"]["name"] for e in enabled}
    assert "SmartChargingCtrlr" in components
    assert "AuthCacheCtrlr" not in components
    assert model.report(None, component_variables=[{"component": {"name": "Nope"}}]) == []


def test_b07_paginate_report_into_notify_report_messages() -> None:
    model = DeviceModel([1, 2], InMemoryStore())
    data = model.report("FullInventory")
    at = datetime(2026, 3, 2, 1, 2, 3, tzinfo=UTC)
    messages = paginate_report(data, 40, request_id=7, generated_at=at)
    assert [m["seqNo"] for m in messages] == list(range(len(messages)))
    assert [m["tbc"] for m in messages] == [True] * (len(messages) - 1) + [False]
    assert len(messages) == -(-len(data) // 40)
    assert [e for m in messages for e in m["reportData"]] == data
    schema = json.loads((SCHEMAS / "NotifyReportRequest.json").read_text())
    for message in messages:
        jsonschema.Draft4Validator(schema).validate(message)
        assert message["generatedAt"] == "2026-03-02T01:02:03.000Z"
    assert paginate_report([], 10) == []
    single = paginate_report(data[:3], 10)
    assert single == [{"tbc": False, "seqNo": 0, "reportData": data[:3]}]
    with pytest.raises(ValueError):
        paginate_report(data, 0)
