"""Issue 15 finding 6: /docs (Swagger UI) and /redoc load nothing from the internet.

Every script, style and icon the two pages name is served by the CSMS itself (the
fastapi-offline package ships them), and the pages name no external address at all.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from csms.api.app import create_api
from csms.services.container import build_services
from csms.settings import Settings

# Any absolute address: scheme://..., or protocol-relative //host/...
EXTERNAL = re.compile(r"""(?:[a-z][a-z0-9+.-]*:)?//[^\s"'<>]+""", re.IGNORECASE)
ASSET = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", re.IGNORECASE)


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    services = build_services(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'd.db'}"))
    await services.start(migrate=True)
    try:
        transport = httpx.ASGITransport(app=create_api(services))
        async with httpx.AsyncClient(transport=transport, base_url="http://csms") as http:
            yield http
    finally:
        await services.close()


@pytest.mark.parametrize(
    ("page", "needed"),
    [
        ("/docs", {"swagger-ui-bundle.js", "swagger-ui.css"}),
        ("/redoc", {"redoc.standalone.js"}),
    ],
)
async def test_finding6_docs_pages_name_no_external_address_and_their_assets_are_served(
    client: httpx.AsyncClient, page: str, needed: set[str]
) -> None:
    response = await client.get(page)
    assert response.status_code == 200
    html = response.text
    assert EXTERNAL.findall(html) == []
    assets = ASSET.findall(html)
    assert needed <= {asset.rsplit("/", 1)[-1] for asset in assets}
    for asset in assets:
        assert asset.startswith("/"), asset  # served here
        served = await client.get(asset)
        assert served.status_code == 200, asset
        assert len(served.content) > 1000, asset
    # The OpenAPI document the page loads is ours too.
    assert "/openapi.json" in html
    assert (await client.get("/openapi.json")).json()["info"]["title"] == "CSMS REST API"


async def test_finding6_swagger_ui_does_not_send_the_spec_to_the_online_validator(
    client: httpx.AsyncClient,
) -> None:
    html = (await client.get("/docs")).text
    assert re.search(r'"validatorUrl":\s*null', html)
