"""Service errors reach API clients as the HTTP codes the README documents."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from csms.api.errors import install_error_handlers
from csms.domain.errors import (
    BrokerUnavailable,
    CallErrorReceived,
    CommandNotAllowed,
    CommandTimeout,
    CsmsError,
    StationOffline,
)


def _app_raising(error: CsmsError) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise error

    return app


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (StationOffline("CP1"), 409),
        (CommandNotAllowed("CP1", "Reset", "Pending"), 409),  # B02: not while Pending
        (CommandTimeout("CP1", "Reset", 1.0), 504),
        (CallErrorReceived("NotSupported", "no"), 502),
        (BrokerUnavailable("CP1", "connection lost"), 503),
    ],
)
async def test_service_errors_map_to_documented_status(error: CsmsError, status: int) -> None:
    transport = httpx.ASGITransport(app=_app_raising(error))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/boom")
    assert response.status_code == status
    assert response.json()["detail"]
