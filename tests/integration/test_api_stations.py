"""REST API: station registration, listing, changes, deletion, EVSEs, auth (no websocket)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.api_harness import STATION_PASSWORD, ApiHarness, api_harness


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[ApiHarness]:
    async with api_harness(tmp_path) as harness:
        yield harness


async def test_every_api_route_needs_a_bearer_token(api: ApiHarness) -> None:
    for method, path in [
        ("GET", "/api/v1/stations"),
        ("POST", "/api/v1/stations"),
        ("GET", "/api/v1/stations/CS1"),
        ("GET", "/api/v1/id-tokens"),
        ("GET", "/api/v1/api-tokens"),
        ("POST", "/api/v1/stations/CS1/ocpp/Reset"),
    ]:
        response = await api.anonymous.request(method, path)
        assert response.status_code == 401, (method, path)
        assert response.headers["www-authenticate"] == "Bearer"
    wrong = await api.anonymous.get(
        "/api/v1/stations", headers={"Authorization": "Bearer csms_not-a-token"}
    )
    assert wrong.status_code == 401


async def test_register_show_and_list_stations(api: ApiHarness) -> None:
    created = await api.add_station("CS1", boot_policy="Pending")
    assert created["id"] == "CS1"
    assert created["security_profile"] == 1
    assert created["boot_policy"] == "Pending"
    assert created["has_password"] is True
    assert created["connected"] is False
    assert "password" not in created
    for number in range(2, 6):
        await api.add_station(f"CS{number}")

    shown = await api.client.get("/api/v1/stations/CS1")
    assert shown.status_code == 200
    assert shown.json()["registration_status"] == "Unknown"

    page = (await api.client.get("/api/v1/stations", params={"limit": 2, "offset": 1})).json()
    assert page["total"] == 5
    assert page["limit"] == 2 and page["offset"] == 1
    assert [s["id"] for s in page["items"]] == ["CS2", "CS3"]


async def test_register_errors(api: ApiHarness) -> None:
    await api.add_station("CS1")
    duplicate = await api.client.post(
        "/api/v1/stations", json={"id": "CS1", "password": STATION_PASSWORD}
    )
    assert duplicate.status_code == 409
    short = await api.client.post("/api/v1/stations", json={"id": "CS9", "password": "short"})
    assert short.status_code == 422
    assert short.json()["errors"][0]["field"] == "password"
    no_password = await api.client.post("/api/v1/stations", json={"id": "CS9"})
    assert no_password.status_code == 422
    assert "password" in no_password.json()["detail"]
    bad_profile = await api.client.post(
        "/api/v1/stations", json={"id": "CS9", "password": STATION_PASSWORD, "security_profile": 4}
    )
    assert bad_profile.status_code == 422
    assert bad_profile.json()["errors"][0]["field"] == "security_profile"
    assert (await api.client.get("/api/v1/stations/NOPE")).status_code == 404


async def test_update_and_delete_station(api: ApiHarness) -> None:
    await api.add_station("CS1")
    changed = await api.client.patch(
        "/api/v1/stations/CS1", json={"boot_policy": "Rejected", "security_profile": 2}
    )
    assert changed.status_code == 200
    assert changed.json()["boot_policy"] == "Rejected"
    assert changed.json()["security_profile"] == 2
    new_password = await api.client.patch(
        "/api/v1/stations/CS1", json={"password": "another-password-123"}
    )
    assert new_password.status_code == 200
    bad = await api.client.patch("/api/v1/stations/CS1", json={"boot_policy": "Maybe"})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "boot_policy"
    assert (await api.client.patch("/api/v1/stations/NOPE", json={})).status_code == 404

    deleted = await api.client.delete("/api/v1/stations/CS1")
    assert deleted.status_code == 204
    assert (await api.client.get("/api/v1/stations/CS1")).status_code == 404
    assert (await api.client.delete("/api/v1/stations/CS1")).status_code == 404


async def test_security_profile_upgrade_only_goes_up(api: ApiHarness) -> None:
    await api.add_station("CS1")
    upgraded = await api.client.post(
        "/api/v1/stations/CS1/security-profile", json={"security_profile": 2}
    )
    assert upgraded.status_code == 200
    assert upgraded.json() == {
        "station_id": "CS1",
        "security_profile": 2,
        "status": "Accepted",
        "applied": True,
    }
    assert (await api.client.get("/api/v1/stations/CS1")).json()["security_profile"] == 2
    again = await api.client.post(
        "/api/v1/stations/CS1/security-profile", json={"security_profile": 2}
    )
    assert again.status_code == 409
    unknown = await api.client.post(
        "/api/v1/stations/NOPE/security-profile", json={"security_profile": 3}
    )
    assert unknown.status_code == 404


async def test_evses_of_unknown_station_is_404(api: ApiHarness) -> None:
    await api.add_station("CS1")
    evses = await api.client.get("/api/v1/stations/CS1/evses")
    assert evses.status_code == 200
    assert evses.json() == []
    assert (await api.client.get("/api/v1/stations/NOPE/evses")).status_code == 404


async def test_openapi_and_docs_are_served(api: ApiHarness) -> None:
    schema = (await api.anonymous.get("/openapi.json")).json()
    assert "/api/v1/stations/{station_id}/ocpp/{action}" in schema["paths"]
    assert "StationCreate" in schema["components"]["schemas"]
    assert "StationRead" in schema["components"]["schemas"]
    docs = await api.anonymous.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
