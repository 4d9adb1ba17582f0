"""Issue 11, finding 10: API tokens have scopes (read < operate < admin), every route declares
the one it needs (shown in OpenAPI), and a valid token without it gets 403 naming the scope."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from csms.api.app import API_PREFIX, ROUTERS, create_api
from csms.api.deps import required_scope
from csms.api.ocpp_actions import action_scope
from csms.domain.models import ApiScope
from tests.support.api_harness import ApiHarness, api_harness

# GETs that need more than read: the token inventory is for admins.
GET_NOT_READ = {("GET", "/api-tokens"): ApiScope.ADMIN}


def _operations() -> list[tuple[str, str, ApiScope]]:
    """(method, concrete path, scope) of every /api/v1 operation, from the OpenAPI document."""
    app = create_api(services=None)  # type: ignore[arg-type]  # routes only, never called
    found = []
    for path, operations in app.openapi()["paths"].items():
        if not path.startswith(API_PREFIX):
            continue
        concrete = re.sub(r"\{[^}]+\}", "999", path)  # no such station, token, ...
        for method, operation in sorted(operations.items()):
            [requirement] = operation["security"]
            [scopes] = requirement.values()
            found.append((method.upper(), concrete, ApiScope(scopes[0])))
    return found


# The live-update stream never ends, and httpx's ASGI transport waits for the whole body: its
# scope is checked over a real socket in tests/integration/test_dashboard_api.py.
STREAMS = {("GET", "/api/v1/dashboard/live")}
OPERATIONS = [op for op in _operations() if op[:2] not in STREAMS]


async def _client(api: ApiHarness, scope: str) -> httpx.AsyncClient:
    created = await api.client.post("/api/v1/api-tokens", json={"name": scope, "scope": scope})
    assert created.status_code == 201, created.text
    assert created.json()["token"]["scope"] == scope
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api.app),
        base_url="http://api",
        headers={"Authorization": f"Bearer {created.json()['plaintext']}"},
    )


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[ApiHarness]:
    async with api_harness(tmp_path) as harness:
        yield harness


def test_finding10_every_route_declares_a_scope() -> None:
    routes = [route for router in ROUTERS for route in router.routes]
    assert len(routes) >= 50
    for route in routes:
        assert isinstance(route, APIRoute)
        scope = required_scope(route.dependencies)
        assert scope is not None, f"{route.methods} {route.path} declares no scope"
        for method in route.methods:
            if method in ("GET", "HEAD"):
                expected = GET_NOT_READ.get((method, route.path), ApiScope.READ)
                assert scope is expected, (method, route.path, scope)
            else:
                assert scope is not ApiScope.READ, (method, route.path)


def test_finding10_openapi_shows_the_scope_of_every_operation() -> None:
    app = create_api(services=None)  # type: ignore[arg-type]
    spec = app.openapi()
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert len(OPERATIONS) >= 50
    by_scope = {scope: [op for op in OPERATIONS if op[2] is scope] for scope in ApiScope}
    assert all(by_scope.values())  # each scope is in use
    assert ("DELETE", "/api/v1/stations/999", ApiScope.ADMIN) in OPERATIONS
    assert ("POST", "/api/v1/stations/999/commands/reset", ApiScope.OPERATE) in OPERATIONS
    assert ("GET", "/api/v1/stations", ApiScope.READ) in OPERATIONS


async def test_finding10_read_token_cannot_delete_stations(api: ApiHarness) -> None:
    await api.add_station("KEEP")
    async with await _client(api, "read") as reader:
        assert (await reader.get("/api/v1/stations/KEEP")).status_code == 200
        denied = await reader.delete("/api/v1/stations/KEEP")
    assert denied.status_code == 403
    assert denied.json() == {
        "detail": "this API token has scope 'read'; this operation needs 'admin'",
        "required_scope": "admin",
    }
    assert 'error="insufficient_scope"' in denied.headers["www-authenticate"]
    assert (await api.client.get("/api/v1/stations/KEEP")).status_code == 200


async def test_finding10_read_token_gets_403_on_every_non_read_route(api: ApiHarness) -> None:
    async with await _client(api, "read") as reader, await _client(api, "operate") as operator:
        for method, path, scope in OPERATIONS:
            as_reader = await reader.request(method, path, json={})
            if scope is ApiScope.READ:
                assert as_reader.status_code != 403, (method, path)
            else:
                assert as_reader.status_code == 403, (method, path, as_reader.text)
                assert as_reader.json()["required_scope"] == scope.value
            as_operator = await operator.request(method, path, json={})
            if scope is ApiScope.ADMIN:
                assert as_operator.status_code == 403, (method, path)
                assert as_operator.json()["required_scope"] == "admin"
            else:
                # Whatever else is wrong with the request, it is not the scope.
                assert as_operator.status_code != 403, (method, path, as_operator.text)


async def test_finding10_admin_token_passes_every_scope_check(api: ApiHarness) -> None:
    for method, path, _scope in OPERATIONS:
        response = await api.client.request(method, path, json={})
        assert response.status_code not in (401, 403), (method, path, response.text)


@pytest.mark.parametrize(
    ("action", "payload", "scope"),
    [
        ("SetNetworkProfile", {}, ApiScope.ADMIN),
        ("InstallCertificate", {}, ApiScope.ADMIN),
        ("UpdateFirmware", {}, ApiScope.ADMIN),
        ("GetLog", {}, ApiScope.ADMIN),
        ("SendLocalList", {}, ApiScope.ADMIN),
        (
            "SetVariables",
            {
                "setVariableData": [
                    {
                        "component": {"name": "SecurityCtrlr"},
                        "variable": {"name": "BasicAuthPassword"},
                        "attributeValue": "x" * 20,
                    }
                ]
            },
            ApiScope.ADMIN,
        ),
        (
            "SetVariables",
            {
                "setVariableData": [
                    {
                        "component": {"name": "OCPPCommCtrlr"},
                        "variable": {"name": "NetworkConfigurationPriority"},
                        "attributeValue": "2",
                    }
                ]
            },
            ApiScope.ADMIN,
        ),
        (
            "SetVariables",
            {
                "setVariableData": [
                    {
                        "component": {"name": "OCPPCommCtrlr"},
                        "variable": {"name": "HeartbeatInterval"},
                        "attributeValue": "60",
                    }
                ]
            },
            ApiScope.OPERATE,
        ),
        ("Reset", {"type": "OnIdle"}, ApiScope.OPERATE),
        ("SetVariables", {"setVariableData": "not a list"}, ApiScope.OPERATE),
    ],
)
def test_finding10_action_scope(action: str, payload: Any, scope: ApiScope) -> None:
    assert action_scope(action, payload) is scope


async def test_finding10_operate_token_cannot_send_admin_actions(api: ApiHarness) -> None:
    await api.add_station("CS1")  # offline: an allowed command gets 409, not 403
    security_variable = {
        "variables": [
            {"component": "SecurityCtrlr", "variable": "BasicAuthPassword", "value": "y" * 20}
        ]
    }
    async with await _client(api, "operate") as operator:
        network = await operator.post(
            "/api/v1/stations/CS1/ocpp/SetNetworkProfile",
            json={"configurationSlot": 1, "connectionData": {}},
        )
        assert network.status_code == 403
        assert network.json()["required_scope"] == "admin"
        typed = await operator.post(
            "/api/v1/stations/CS1/commands/set-variables", json=security_variable
        )
        assert typed.status_code == 403
        reset = await operator.post("/api/v1/stations/CS1/commands/reset", json={})
        assert reset.status_code == 409  # allowed; the station is just not connected
        # Session context is operate; vehicle parameters are admin.
        vehicle = {"id": "ev1", "capacity_kwh": 60, "max_charge_kw": 7, "max_discharge_kw": 7}
        assert (await api.client.post("/api/v1/vehicles", json=vehicle)).status_code == 201
        session = await operator.patch("/api/v1/vehicles/ev1", json={"target_soc": 0.7})
        assert session.status_code == 200, session.text
        parameters = await operator.patch("/api/v1/vehicles/ev1", json={"capacity_kwh": 80})
        assert parameters.status_code == 403
    assert (await api.client.get("/api/v1/vehicles/ev1")).json()["capacity_kwh"] == 60


async def test_finding10_api_token_route_takes_a_scope(api: ApiHarness) -> None:
    default = await api.client.post("/api/v1/api-tokens", json={"name": "least"})
    assert default.status_code == 201
    assert default.json()["token"]["scope"] == "read"  # least privilege unless asked
    bad = await api.client.post("/api/v1/api-tokens", json={"name": "x", "scope": "root"})
    assert bad.status_code == 422
    listed = {t["name"]: t["scope"] for t in (await api.client.get("/api/v1/api-tokens")).json()}
    assert listed == {"tests": "admin", "least": "read"}
    async with await _client(api, "operate") as operator:
        # Only admins make tokens: no way up from operate.
        escalate = await operator.post("/api/v1/api-tokens", json={"name": "y", "scope": "admin"})
        assert escalate.status_code == 403
        assert (await operator.get("/api/v1/api-tokens")).status_code == 403


async def test_finding10_revoked_scoped_token_is_401(api: ApiHarness) -> None:
    async with await _client(api, "operate") as operator:
        assert (await operator.get("/api/v1/stations")).status_code == 200
        tokens = (await api.client.get("/api/v1/api-tokens")).json()
        [token_id] = [t["id"] for t in tokens if t["name"] == "operate"]
        assert (await api.client.delete(f"/api/v1/api-tokens/{token_id}")).status_code == 204
        assert (await operator.get("/api/v1/stations")).status_code == 401
