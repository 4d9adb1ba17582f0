"""A broker outage fails every liveness refresh: it is logged once at WARNING (no traceback),
each failure's traceback at DEBUG, and the recovery at INFO (issue 17, failover findings)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import pytest

from csms.routing.broker import BrokerRouter


class _FlakyBroker(BrokerRouter):
    """Only the liveness refresh is used: it fails `failures` times, then works."""

    def __init__(self, failures: int) -> None:
        super().__init__(node_id="n1", node_ttl_s=0.03)
        self.failures = failures
        self.refreshed = asyncio.Event()

    async def _announce(self) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("broker unreachable")
        self.refreshed.set()

    async def _connect(self) -> None: ...
    async def _disconnect(self) -> None: ...
    async def _write_claim(self, station_id: str) -> int:
        raise NotImplementedError

    async def _release_claim(self, station_id: str, revision: int) -> None: ...
    async def _publish_notice(self, body: bytes) -> None: ...
    async def _holder(self, station_id: str) -> Any:
        return None

    async def _node_incarnation(self, node_id: str) -> str | None:
        return None

    async def _scan_presence(self, cursor: int, count: int) -> Any:
        return 0, []

    async def _drop_record(self, key: str, claimed: Any) -> None: ...
    async def _withdraw(self) -> None: ...
    async def _request(self, node_id: str, request: bytes, wait_s: float) -> bytes:
        raise NotImplementedError


async def test_outage_of_five_refreshes_logs_one_warning_without_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    router = _FlakyBroker(failures=5)
    caplog.set_level(logging.DEBUG, logger="csms.routing.broker")
    beat = asyncio.create_task(router._beat())
    try:
        await asyncio.wait_for(router.refreshed.wait(), 5)
    finally:
        beat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beat
    records = [r for r in caplog.records if "liveness refresh" in r.getMessage()]
    warnings = [r for r in records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].exc_info is None
    assert "ConnectionError('broker unreachable')" in warnings[0].getMessage()
    assert len([r for r in records if r.levelno == logging.DEBUG and r.exc_info]) == 5
    assert [r.getMessage() for r in records if r.levelno == logging.INFO] == [
        "router n1: liveness refresh works again"
    ]
