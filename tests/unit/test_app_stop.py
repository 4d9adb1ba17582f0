"""`RunningCsms.stop()`: every part is closed, even when the REST API server had crashed."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
import uvicorn

from csms.app import RunningCsms
from csms.routing.inprocess import InProcessRouter
from csms.services.container import Services
from csms.services.live import LiveFeed
from csms.settings import Settings


class _Closable:
    def __init__(self, log: list[str], name: str) -> None:
        self.log, self.name = log, name
        self.router = InProcessRouter("n")
        self.live = LiveFeed()  # the dashboard viewers' fan-out, ended first at stop
        self.port = 0

    async def close(self) -> None:
        self.log.append(self.name)


async def _crashed() -> None:
    raise RuntimeError("API server crashed")


async def test_stop_closes_ocpp_server_and_database_after_an_api_crash() -> None:
    closed: list[str] = []
    api_task = asyncio.create_task(_crashed())
    await asyncio.sleep(0)  # let it fail
    running = RunningCsms(
        settings=cast(Settings, None),
        services=cast(Services, _Closable(closed, "services")),
        ocpp_server=_Closable(closed, "ocpp_server"),
        api_server=cast(uvicorn.Server, _FakeUvicorn()),
        api_task=api_task,
        api_port=0,
    )
    with pytest.raises(RuntimeError, match="API server crashed"):
        await running.stop()
    assert closed == ["ocpp_server", "services"]


class _FakeUvicorn:
    should_exit: Any = False
