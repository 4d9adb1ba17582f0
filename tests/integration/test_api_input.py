"""Issue 11, finding 10: what the API answers to bad input. Error bodies match the schema
OpenAPI documents for them; request bodies are typed strictly (nothing coerced: no number for
a date, no boolean for a number, no float for an integer, no NaN/Infinity); and no input is
answered with a 500."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator

from tests.support.api_harness import ApiHarness, api_harness

V1 = "/api/v1"
VEHICLE = {"id": "ev1", "capacity_kwh": 60, "max_charge_kw": 7, "max_discharge_kw": 7}


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[ApiHarness]:
    async with api_harness(tmp_path) as harness:
        await harness.add_station("CS1")
        created = await harness.client.post(f"{V1}/vehicles", json=VEHICLE)
        assert created.status_code == 201, created.text
        yield harness


def _documented_schema(spec: dict[str, Any], method: str, path: str, status: int) -> Any:
    operation = spec["paths"][path][method.lower()]
    schema = operation["responses"][str(status)]["content"]["application/json"]["schema"]
    # OpenAPI 3.1 schemas are JSON Schema 2020-12; refs point into the document's components.
    return {**schema, "components": spec["components"]}


def _assert_documented(
    spec: dict[str, Any], method: str, path: str, response: httpx.Response
) -> None:
    schema = _documented_schema(spec, method, path, response.status_code)
    errors = list(Draft202012Validator(schema).iter_errors(response.json()))
    assert not errors, (method, path, response.json(), [e.message for e in errors])


# (method, OpenAPI path, concrete path, JSON body) -> 422
INVALID = [
    ("POST", "/api/v1/stations", "/api/v1/stations", {"id": 5}),
    ("POST", "/api/v1/stations", "/api/v1/stations", {"id": "ok", "surprise": 1}),
    ("PATCH", "/api/v1/stations/{station_id}", "/api/v1/stations/CS1", {"password": "short"}),
    ("POST", "/api/v1/id-tokens", "/api/v1/id-tokens", {"id_token": "a", "expires_at": 0}),
    ("PUT", "/api/v1/vehicles/{vehicle_id}/link", "/api/v1/vehicles/ev1/link", {"evse_id": "x"}),
    (
        "POST",
        "/api/v1/stations/{station_id}/ocpp/{action}",
        "/api/v1/stations/CS1/ocpp/Reset",
        {"type": "Sideways"},
    ),
    ("GET", "/api/v1/stations", "/api/v1/stations?limit=0", None),
    ("GET", "/api/v1/transactions", "/api/v1/transactions?offset=-1", None),
    ("DELETE", "/api/v1/api-tokens/{token_id}", "/api/v1/api-tokens/x", None),
]


async def test_finding10_422_bodies_match_the_documented_schema(api: ApiHarness) -> None:
    spec = api.app.openapi()
    assert "HTTPValidationError" not in spec["components"]["schemas"]  # never sent
    for method, documented, concrete, body in INVALID:
        response = await api.client.request(method, concrete, json=body)
        assert response.status_code == 422, (method, concrete, response.text)
        assert response.json()["errors"], response.text
        _assert_documented(spec, method, documented, response)
    malformed = await api.client.post(
        f"{V1}/stations", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert malformed.status_code == 422
    _assert_documented(spec, "POST", "/api/v1/stations", malformed)


async def test_finding10_401_403_404_bodies_match_the_documented_schema(
    api: ApiHarness,
) -> None:
    spec = api.app.openapi()
    missing = await api.anonymous.delete(f"{V1}/stations/CS1")
    assert missing.status_code == 401
    _assert_documented(spec, "DELETE", "/api/v1/stations/{station_id}", missing)
    reader = (await api.client.post(f"{V1}/api-tokens", json={"name": "r"})).json()["plaintext"]
    denied = await api.anonymous.delete(
        f"{V1}/stations/CS1", headers={"Authorization": f"Bearer {reader}"}
    )
    assert denied.status_code == 403
    _assert_documented(spec, "DELETE", "/api/v1/stations/{station_id}", denied)
    unknown = await api.client.get(f"{V1}/stations/NOPE")
    assert unknown.status_code == 404
    _assert_documented(spec, "GET", "/api/v1/stations/{station_id}", unknown)


ISO = "2026-12-05T18:00:00+10:00"
PRICE = {"start": ISO, "interval_s": 1800, "import_c_kwh": 20.0, "export_c_kwh": 5.0}

# (method, path, body, field named in the answer): each is a wrong JSON type for its field
# that lax validation would have coerced (or a value that is no number at all).
BAD_TYPES: list[tuple[str, str, dict[str, Any], str]] = [
    ("POST", "/id-tokens", {"id_token": "a", "expires_at": 0}, "expires_at"),
    ("POST", "/id-tokens", {"id_token": "a", "expires_at": 1.7e9}, "expires_at"),
    ("POST", "/id-tokens", {"id_token": "a", "expires_at": True}, "expires_at"),
    ("PUT", "/prices", {"intervals": [{**PRICE, "export_c_kwh": False}]}, "export_c_kwh"),
    ("PUT", "/prices", {"intervals": [{**PRICE, "import_c_kwh": "20"}]}, "import_c_kwh"),
    ("PUT", "/prices", {"intervals": [{**PRICE, "interval_s": 1800.0}]}, "interval_s"),
    ("PUT", "/prices", {"intervals": [{**PRICE, "start": 1733385600}]}, "start"),
    ("POST", "/stations", {"id": "CS2", "security_profile": "2"}, "security_profile"),
    ("POST", "/stations", {"id": "CS2", "security_profile": 2.0}, "security_profile"),
    ("POST", "/stations", {"id": "CS2", "security_profile": True}, "security_profile"),
    ("PATCH", "/vehicles/ev1", {"capacity_kwh": "60"}, "capacity_kwh"),
    ("PATCH", "/vehicles/ev1", {"capacity_kwh": True}, "capacity_kwh"),
    ("PATCH", "/vehicles/ev1", {"departure": 0}, "departure"),
    ("PUT", "/vehicles/ev1/link", {"station_id": "CS1", "evse_id": 1e19}, "evse_id"),
    ("PUT", "/vehicles/ev1/link", {"station_id": "CS1", "evse_id": 1.0}, "evse_id"),
    ("POST", "/v2g/dispatch", {"target_kw": "5"}, "target_kw"),
    ("POST", "/v2g/dispatch", {"target_kw": 5, "duration_s": 60.5}, "duration_s"),
    ("POST", "/grid/frequency", {"hz": True, "at": ISO}, "hz"),
    ("POST", "/grid/frequency", {"hz": 49.5, "at": 0}, "at"),
    (
        "PUT",
        "/stations/CS1/v2g/frequency-response",
        {"enabled": "true"},
        "enabled",
    ),
    (
        "PUT",
        "/stations/CS1/v2g/frequency-response",
        {"enabled": True, "curve": [["49", 100]]},
        "curve.0.0",
    ),
    ("PUT", "/stations/CS1/v2g/emergency-backup", {"enabled": 1}, "enabled"),
    ("PUT", "/stations/CS1/tariff", {"currency": "AUD", "price_per_kwh": "0.3"}, "price_per_kwh"),
    ("PUT", "/stations/CS1/tariff", {"currency": "AUD", "price_per_kwh": 1e300}, "price_per_kwh"),
    ("POST", "/stations/CS1/commands/reset", {"evse_id": 1.0}, "evse_id"),
    ("POST", "/stations/CS1/commands/request-start", {"id_token": 7}, "id_token"),
    (
        "POST",
        "/stations/CS1/commands/request-start",
        {"id_token": "a", "remote_start_id": 2**31},
        "remote_start_id",
    ),
    (
        "POST",
        "/stations/CS1/charging-profiles",
        {"evse_id": 1e19, "charging_profile": {}},
        "evse_id",
    ),
    ("POST", "/api-tokens", {"name": "x", "scope": 2}, "scope"),
]


@pytest.mark.parametrize(("method", "path", "body", "field"), BAD_TYPES)
async def test_finding10_strict_types(
    api: ApiHarness, method: str, path: str, body: dict[str, Any], field: str
) -> None:
    response = await api.client.request(method, V1 + path, json=body)
    assert response.status_code == 422, response.text
    fields = [error["field"] for error in response.json()["errors"]]
    assert any(f == field or f.endswith("." + field) for f in fields), fields


async def test_finding10_strict_bodies_still_take_their_json_types(api: ApiHarness) -> None:
    """The strict types are JSON types: ISO strings for dates, integers for floats, arrays for
    pairs all still pass (strict mode alone would refuse all three)."""
    token = await api.client.post(f"{V1}/id-tokens", json={"id_token": "a", "expires_at": ISO})
    assert token.status_code == 201, token.text
    assert token.json()["expires_at"] == "2026-12-05T08:00:00Z"
    prices = await api.client.put(
        f"{V1}/prices", json={"intervals": [{**PRICE, "import_c_kwh": 20}]}
    )
    assert prices.status_code == 200, prices.text
    vehicle = await api.client.patch(
        f"{V1}/vehicles/ev1", json={"departure": ISO, "capacity_kwh": 75}
    )
    assert vehicle.status_code == 200, vehicle.text
    assert vehicle.json()["capacity_kwh"] == 75.0


# Raw bodies: Python's JSON parser takes NaN/Infinity literals that JSON does not have.
NON_FINITE = [
    ("PUT", "/stations/CS1/tariff", '{"currency": "AUD", "price_per_kwh": NaN}'),
    ("PATCH", "/vehicles/ev1", '{"capacity_kwh": Infinity}'),
    ("POST", "/v2g/dispatch", '{"target_kw": -Infinity}'),
    # Free-form OCPP payloads have no model to refuse them: the body check does.
    ("POST", "/stations/CS1/ocpp/DataTransfer", '{"vendorId": "v", "data": {"x": NaN}}'),
    (
        "POST",
        "/stations/CS1/charging-profiles",
        '{"evse_id": 1, "charging_profile": {"limit": Infinity}}',
    ),
]


@pytest.mark.parametrize(("method", "path", "raw"), NON_FINITE)
async def test_finding10_non_finite_numbers_are_422(
    api: ApiHarness, method: str, path: str, raw: str
) -> None:
    response = await api.client.request(
        method, V1 + path, content=raw.encode(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert "finite" in response.text or "NaN" in response.text
    no_type = await api.client.request(method, V1 + path, content=raw.encode())
    assert no_type.status_code == 422, no_type.text


async def test_finding10_deeply_nested_json_is_422(api: ApiHarness) -> None:
    deep: Any = 1
    for _ in range(40):
        deep = {"d": deep}
    response = await api.client.post(
        f"{V1}/stations/CS1/ocpp/DataTransfer", json={"vendorId": "v", "data": deep}
    )
    assert response.status_code == 422, response.text
    assert "nested deeper" in response.json()["detail"]
    # 1,000 levels: refused, not a 500 (the parser's recursion never reaches a handler).
    raw = '{"vendorId": "v", "data": ' + "[" * 1000 + "]" * 1000 + "}"
    response = await api.client.post(
        f"{V1}/stations/CS1/ocpp/DataTransfer",
        content=raw.encode(),
        headers={"content-type": "application/json"},
    )
    assert response.status_code in (400, 422), response.text


async def test_finding10_huge_integers_in_paths_and_queries_are_422(api: ApiHarness) -> None:
    huge = str(10**30)
    for path in (
        f"/api-tokens/{huge}",
        f"/stations/CS1/charging-profiles/{huge}",
    ):
        response = await api.client.delete(V1 + path)
        assert response.status_code == 422, (path, response.text)
    for path in (f"/stations?offset={huge}", f"/transactions?offset={2**63}"):
        response = await api.client.get(V1 + path)
        assert response.status_code == 422, (path, response.text)


async def test_finding10_capacity_5e_324_is_422_not_500(api: ApiHarness) -> None:
    """5e-324 is finite and > 0, so `gt=0` let it through; the planner then divided by it
    (SoC = energy / capacity) and overflowed. Subnormal numbers are refused in every body."""
    patched = await api.client.patch(f"{V1}/vehicles/ev1", json={"capacity_kwh": 5e-324})
    assert patched.status_code == 422, patched.text
    assert patched.json()["errors"][0]["field"] == "capacity_kwh"
    # Refused by the capacity bound (>= 1 kWh) or, for a field without one, as subnormal.
    message = patched.json()["errors"][0]["message"]
    assert "subnormal" in message or "greater than or equal to 1" in message
    assert (await api.client.get(f"{V1}/vehicles/ev1")).json()["capacity_kwh"] == 60
    for method, path, body in (
        ("POST", "/vehicles", {**VEHICLE, "id": "ev2", "capacity_kwh": 5e-324}),
        ("PUT", "/stations/CS1/tariff", {"currency": "AUD", "price_per_kwh": 5e-324}),
        ("POST", "/v2g/dispatch", {"target_kw": -5e-324}),
        ("PUT", "/prices", {"intervals": [{**PRICE, "import_c_kwh": 1e-320}]}),
    ):
        response = await api.client.request(method, V1 + path, json=body)
        assert response.status_code == 422, (path, response.text)
    # Zero stays a number like any other.
    zero = await api.client.put(
        f"{V1}/stations/CS1/tariff", json={"currency": "AUD", "price_per_kwh": 0.0}
    )
    assert zero.status_code == 200, zero.text
