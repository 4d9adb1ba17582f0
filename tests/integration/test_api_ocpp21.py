"""OCPP 2.1 in the REST API: per-station accepted versions, the negotiated version shown, the
typed 2.1 command routes (documented with the OCA 2.1 schemas, refused for a 2.0.1 station)
and the 2.1 data routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from csms.api.routes.ocpp21 import TYPED_ACTIONS, kebab
from csms.oca_schemas import ACTIONS_21_ADDED
from tests.support.api_harness import ApiHarness, api_harness
from tests.support.ocpp21_payloads import CSMS_REQUESTS_21, DER_CONTROL
from v2g_shared.ocpp_versions import OcppVersion

API = "/api/v1"


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[ApiHarness]:
    async with api_harness(tmp_path) as harness:
        yield harness


async def test_station_ocpp_versions_set_shown_and_cleared(api: ApiHarness) -> None:
    created = await api.add_station("CS21", ocpp_versions=["ocpp2.1"])
    assert created["ocpp_versions"] == ["ocpp2.1"]
    assert created["ocpp_version"] is None  # never connected
    bad = await api.client.post(
        f"{API}/stations", json={"id": "X", "password": "p" * 20, "ocpp_versions": ["ocpp1.6"]}
    )
    assert bad.status_code == 422
    twice = await api.client.patch(
        f"{API}/stations/CS21", json={"ocpp_versions": ["ocpp2.1", "ocpp2.1"]}
    )
    assert twice.status_code == 422
    changed = await api.client.patch(
        f"{API}/stations/CS21", json={"ocpp_versions": ["ocpp2.0.1", "ocpp2.1"]}
    )
    assert changed.json()["ocpp_versions"] == ["ocpp2.0.1", "ocpp2.1"]
    cleared = await api.client.patch(f"{API}/stations/CS21", json={"ocpp_versions": []})
    assert cleared.json()["ocpp_versions"] is None
    station = await api.services.stations.get("CS21")
    await api.services.stations.record_ocpp_version(station, OcppVersion.V21)
    shown = (await api.client.get(f"{API}/stations/CS21")).json()
    assert shown["ocpp_version"] == "ocpp2.1"


def test_typed_route_for_every_csms_initiated_21_action() -> None:
    expected = {a for a, by in ACTIONS_21_ADDED.items() if by == "csms"}
    assert set(TYPED_ACTIONS) == expected
    assert set(CSMS_REQUESTS_21) == expected
    assert kebab("SetDERControl") == "set-der-control"
    assert kebab("AFRRSignal") == "afrr-signal"


async def test_typed_routes_documented_with_oca_21_schema(api: ApiHarness) -> None:
    spec = (await api.client.get("/openapi.json")).json()
    operation = spec["paths"][f"{API}/stations/{{station_id}}/commands/set-der-control"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["isDefault", "controlId", "controlType"]
    curve = body["properties"]["curve"]  # a definition inlined, no dangling $ref
    assert "curveData" in curve["properties"]
    assert "$ref" not in str(body)


async def test_ocpp21_action_refused_422_for_201_station(api: ApiHarness) -> None:
    await api.add_station("CS201")
    station = await api.services.stations.get("CS201")
    await api.services.stations.record_ocpp_version(station, OcppVersion.V201)
    for route in ("/commands/set-der-control", "/ocpp/SetDERControl"):
        answer = await api.client.post(f"{API}/stations/CS201{route}", json=DER_CONTROL)
        assert answer.status_code == 422, answer.text
        assert "speaks OCPP 2.0.1; SetDERControl exists only in OCPP 2.1" in answer.json()["detail"]
    unknown = await api.client.post(f"{API}/stations/CS201/ocpp/NoSuchAction", json={})
    assert unknown.status_code == 404


async def test_ocpp21_action_to_offline_21_station_409(api: ApiHarness) -> None:
    await api.add_station("CS21")
    station = await api.services.stations.get("CS21")
    await api.services.stations.record_ocpp_version(station, OcppVersion.V21)
    invalid = await api.client.post(
        f"{API}/stations/CS21/commands/set-der-control", json={"controlId": "x"}
    )
    assert invalid.status_code == 422
    assert {e["field"] for e in invalid.json()["errors"]} >= {"(payload)"}
    offline = await api.client.post(
        f"{API}/stations/CS21/commands/set-der-control", json=DER_CONTROL
    )
    assert offline.status_code == 409


async def test_dynamic_schedule_update_put_get(api: ApiHarness) -> None:
    await api.add_station("CS21")
    url = f"{API}/stations/CS21/dynamic-schedules/7"
    assert (await api.client.get(url)).json() is None
    put = await api.client.put(url, json={"schedule_update": {"setpoint": -3000.0}})
    assert put.status_code == 200, put.text
    assert (await api.client.get(url)).json()["schedule_update"] == {"setpoint": -3000.0}
    bad = await api.client.put(url, json={"schedule_update": {"setpoint": "x"}})
    assert bad.status_code == 422
    assert (await api.client.get(f"{API}/stations/CS21/periodic-streams")).json() == []
    missing = await api.client.get(f"{API}/stations/NOPE/periodic-streams")
    assert missing.status_code == 404
