"""V2XCtrlr.DepartureTime / DepartureSoC in the device model reach EvseHardware.set_departure."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from chargepoint_firmware.device_model import DeviceModel
from chargepoint_firmware.device_model.store import InMemoryStore
from chargepoint_firmware.main import stored_departure, wire_departures
from tests.support.agent_fakes import FakeEvse

DEPARTURE = datetime(2026, 11, 27, 7, 30, tzinfo=UTC)


def _set(name: str, value: str, evse_id: int = 1) -> dict[str, Any]:
    return {
        "component": {"name": "V2XCtrlr", "evse": {"id": evse_id}},
        "variable": {"name": name},
        "attributeValue": value,
    }


def _wired(store: InMemoryStore | None = None) -> tuple[DeviceModel, dict[int, FakeEvse]]:
    model = DeviceModel([1, 2], store or InMemoryStore())
    hardware = {1: FakeEvse(1), 2: FakeEvse(2)}
    wire_departures(model, hardware)
    return model, hardware


def test_no_departure_by_default() -> None:
    model, hardware = _wired()
    assert stored_departure(model, 1) == (None, None)
    assert hardware[1].departures == [(None, None)]  # pushed once at start


def test_set_variables_reach_the_hardware_of_that_evse_only() -> None:
    model, hardware = _wired()
    results = model.set_variables(
        [_set("DepartureTime", "2026-11-27T07:30:00Z"), _set("DepartureSoC", "80")]
    )
    assert [r["attributeStatus"] for r in results] == ["Accepted", "Accepted"]
    assert hardware[1].departures[-1] == (DEPARTURE, 80.0)
    assert hardware[2].departures == [(None, None)]
    # Each change is pushed; the time alone already travels before the SoC arrives.
    assert hardware[1].departures[1] == (DEPARTURE, None)


def test_other_time_zones_are_converted() -> None:
    model, hardware = _wired()
    model.set_variables([_set("DepartureTime", "2026-11-27T18:30:00+11:00", evse_id=2)])
    assert hardware[2].departures[-1] == (DEPARTURE, None)


def test_invalid_values_are_rejected_and_not_pushed() -> None:
    model, hardware = _wired()
    results = model.set_variables(
        [
            _set("DepartureTime", "tomorrow morning"),
            _set("DepartureTime", "2026-11-27T07:30:00"),  # no time zone
            _set("DepartureSoC", "120"),
            _set("DepartureSoC", "-1"),
        ]
    )
    assert [r["attributeStatus"] for r in results] == ["Rejected"] * 4
    assert hardware[1].departures == [(None, None)]


def test_the_station_level_v2x_controller_has_no_departure() -> None:
    model, _ = _wired()
    result = model.set_variables(
        [
            {
                "component": {"name": "V2XCtrlr"},
                "variable": {"name": "DepartureSoC"},
                "attributeValue": "80",
            }
        ]
    )
    assert result[0]["attributeStatus"] == "UnknownVariable"


def test_departures_persist_and_are_pushed_again_at_start() -> None:
    store = InMemoryStore()
    model, _ = _wired(store)
    model.set_variables(
        [_set("DepartureTime", "2026-11-27T07:30:00Z", 2), _set("DepartureSoC", "65.5", 2)]
    )
    _, hardware = _wired(store)  # a restart on the same store
    assert hardware[2].departures == [(DEPARTURE, 65.5)]
    assert hardware[1].departures == [(None, None)]


def test_unchanged_values_are_not_pushed_again() -> None:
    model, hardware = _wired()
    model.set_variables([_set("DepartureSoC", "80")])
    model.set_variables([_set("DepartureSoC", "80")])
    assert hardware[1].departures == [(None, None), (None, 80.0)]


def test_the_get_report_lists_the_departure_variables_per_evse() -> None:
    model, _ = _wired()
    entries = model.report(
        None,
        component_variables=[{"component": {"name": "V2XCtrlr", "evse": {"id": 2}}}],
    )
    by_name = {e["variable"]["name"]: e for e in entries}
    assert set(by_name) == {"DepartureTime", "DepartureSoC"}
    assert by_name["DepartureTime"]["variableCharacteristics"]["dataType"] == "dateTime"
    soc = by_name["DepartureSoC"]["variableCharacteristics"]
    assert (soc["unit"], soc["minLimit"], soc["maxLimit"]) == ("Percent", 0, 100)
    assert by_name["DepartureSoC"]["variableAttribute"][0]["mutability"] == "ReadWrite"
