"""Fixtures shared by the broker tests in this folder."""

from __future__ import annotations

import pytest

from tests.support.multinode_routing import broker_url_or_skip


@pytest.fixture(params=["nats", "redis"])
def broker(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(kind, URL) of each real broker, the test marked with its kind."""
    kind = str(request.param)
    request.applymarker(getattr(pytest.mark, kind))
    return kind, broker_url_or_skip(kind)
