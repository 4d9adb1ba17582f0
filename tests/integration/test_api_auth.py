"""Every /api/v1 route refuses a request without a valid bearer token (401), whatever else is
wrong with it; docs, schema and metrics stay public."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from csms.api.app import API_PREFIX, create_api
from tests.support.api_harness import ApiHarness, api_harness


def _api_routes() -> list[tuple[str, str]]:
    """Every (method, path) of the OpenAPI document under /api/v1, path parameters filled."""
    app = create_api(services=None)  # type: ignore[arg-type]  # routes only, never called
    found = []
    for path, operations in app.openapi()["paths"].items():
        if path.startswith(API_PREFIX):
            concrete = re.sub(r"\{[^}]+\}", "1", path)
            found.extend((method.upper(), concrete) for method in sorted(operations))
    return found


API_ROUTES = _api_routes()


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[ApiHarness]:
    async with api_harness(tmp_path) as harness:
        yield harness


def test_the_route_table_is_complete() -> None:
    assert len(API_ROUTES) >= 30
    assert ("POST", "/api/v1/stations/1/ocpp/1") in API_ROUTES


async def test_every_api_route_is_401_without_a_valid_token(api: ApiHarness) -> None:
    for method, path in API_ROUTES:
        missing = await api.anonymous.request(method, path, json={})
        assert missing.status_code == 401, (method, path, missing.text)
        wrong = await api.anonymous.request(
            method, path, json={}, headers={"Authorization": "Bearer csms_wrong"}
        )
        assert wrong.status_code == 401, (method, path)
        basic = await api.anonymous.request(
            method, path, json={}, headers={"Authorization": "Basic dXNlcjpwYXNz"}
        )
        assert basic.status_code == 401, (method, path)


async def test_public_endpoints(api: ApiHarness) -> None:
    for path in ("/docs", "/openapi.json", "/metrics"):
        assert (await api.anonymous.get(path)).status_code == 200, path
