"""Finding 4 (online password guessing): failed station logins against a real CSMS websocket
are throttled per station id and per source address, each burst stores one security event and
is counted in /metrics, and every refused attempt logs at most one line naming the station and
the address. Loopback only (127.0.0.1 and 127.0.0.2 as two source addresses)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from prometheus_client import generate_latest
from websockets.exceptions import InvalidStatus
from websockets.http11 import Response

from csms.api.metrics import CsmsMetrics
from csms.ocpp_server.server import SECURITY_EVENT_KIND
from tests.support.csms_harness import PASSWORD, Csms, basic_auth, running_csms

ATTACKER, BYSTANDER = "127.0.0.1", "127.0.0.2"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def csms(tmp_path: Path) -> AsyncIterator[Csms]:
    async with running_csms(
        tmp_path,
        auth_free_failures_per_station=3,
        auth_free_failures_per_address=8,
        auth_backoff_base_s=10.0,
        auth_backoff_max_s=60.0,
    ) as running:
        await running.add_station("CS1")
        await running.add_station("CS2")
        yield running


async def attempt(
    csms: Csms, station_id: str, password: str | None, source: str = ATTACKER
) -> Response | None:
    """One login; the refusing HTTP response, or None when the websocket opened."""
    kwargs: dict[str, Any] = {"subprotocols": ["ocpp2.0.1"], "local_addr": (source, 0)}
    if password is not None:
        kwargs["additional_headers"] = basic_auth(station_id, password)
    try:
        ws = await websockets.connect(f"{csms.url}/{station_id}", open_timeout=5, **kwargs)
    except InvalidStatus as refused:
        return refused.response
    await ws.close()
    return None


def status(response: Response | None) -> int:
    return 101 if response is None else response.status_code


async def security_events(csms: Csms, station_id: str) -> list[dict[str, Any]]:
    page = await csms.services.events.list(station_id, kind=SECURITY_EVENT_KIND)
    return [event.payload for event in page.items]


async def test_finding4_password_burst_is_throttled_and_bystander_connects(csms: Csms) -> None:
    clock = FakeClock()
    csms.server.monotonic = clock
    statuses = [status(await attempt(csms, "CS1", f"wrong-guess-{i:08d}")) for i in range(40)]
    # 3 free failures, the 4th starts the back-off; the rest are refused unchecked.
    assert statuses[:4] == [401] * 4
    assert set(statuses[4:]) == {429}
    refused = await attempt(csms, "CS1", "another-wrong-guess")
    assert refused is not None and refused.headers["Retry-After"] == "10"
    # Even the right password is not checked while the id is blocked...
    assert status(await attempt(csms, "CS1", PASSWORD)) == 429
    # ...while another station, from another address, is not slowed down at all.
    assert status(await attempt(csms, "CS2", PASSWORD, source=BYSTANDER)) == 101
    # Once the back-off clears, the right password works at once.
    clock.now += 10.0
    assert status(await attempt(csms, "CS1", PASSWORD)) == 101
    counts = csms.server.auth_counts
    assert counts[("refused", "bad_password")] == 4
    assert counts[("throttled", "station")] == 36 + 1 + 1
    events = await security_events(csms, "CS1")
    assert len(events) == 1
    assert events[0]["type"] == "AuthenticationThrottled"
    assert events[0]["scope"] == "station" and events[0]["address"] == ATTACKER
    assert events[0]["failures"] == 4


async def test_finding4_new_burst_after_success_stores_a_second_event(csms: Csms) -> None:
    clock = FakeClock()
    csms.server.monotonic = clock
    for burst in range(2):
        for i in range(6):
            await attempt(csms, "CS2", f"wrong-guess-{burst}-{i:04d}")
        clock.now += 60.0
        assert status(await attempt(csms, "CS2", PASSWORD, source=BYSTANDER)) == 101
    events = await security_events(csms, "CS2")
    assert [e["scope"] for e in events] == ["station", "station"]
    assert csms.server.security_event_counts["AuthenticationThrottled"] == 2


async def test_finding4_unknown_ids_are_throttled_per_address(csms: Csms) -> None:
    clock = FakeClock()
    csms.server.monotonic = clock
    statuses = [status(await attempt(csms, f"GUESS{i}", PASSWORD)) for i in range(20)]
    # OCPP-J: 404 for an unknown id, but enumeration is rate-limited like guessing.
    assert statuses[:9] == [404] * 9
    assert set(statuses[9:]) == {429}
    # The address is blocked for every id; the bystander's address is not.
    assert status(await attempt(csms, "CS1", PASSWORD)) == 429
    assert status(await attempt(csms, "CS1", PASSWORD, source=BYSTANDER)) == 101
    assert csms.server.auth_counts[("refused", "unknown_station")] == 9
    assert len(csms.server.throttle.stations) == 0  # made-up ids take no table room
    events = await security_events(csms, "GUESS8")
    assert [(e["scope"], e["reason"]) for e in events] == [("address", "unknown_station")]


async def test_finding4_guessing_does_not_lock_out_the_station_at_its_address(
    csms: Csms,
) -> None:
    clock = FakeClock()
    csms.server.monotonic = clock
    assert status(await attempt(csms, "CS1", PASSWORD, source=BYSTANDER)) == 101
    for i in range(8):
        await attempt(csms, "CS1", f"wrong-guess-{i:08d}")
    assert status(await attempt(csms, "CS1", PASSWORD)) == 429
    assert status(await attempt(csms, "CS1", PASSWORD, source=BYSTANDER)) == 101


async def test_finding4_one_log_line_per_attempt_naming_station_and_address(
    csms: Csms, caplog: pytest.LogCaptureFixture
) -> None:
    csms.server.monotonic = FakeClock()
    caplog.set_level(logging.INFO)
    attempts = 12
    for i in range(attempts):
        await attempt(csms, "CS1", f"wrong-guess-{i:08d}")
    await attempt(csms, "NOPE", PASSWORD, source=BYSTANDER)
    lines = [r for r in caplog.records if r.levelno >= logging.INFO]
    # 12 guesses: 4 checked (one line each), 8 throttled (DEBUG only); 1 unknown id.
    assert len(lines) == 5
    assert all("station='CS1' address=127.0.0.1" in r.getMessage() for r in lines[:4])
    assert "throttling per station" in lines[3].getMessage()
    assert lines[3].levelno == logging.WARNING  # a burst starts
    assert "station='NOPE' address=127.0.0.2 reason=unknown_station" in lines[4].getMessage()
    assert not [r for r in caplog.records if r.name.startswith("websockets")]


async def test_finding4_log_line_escapes_control_characters(
    csms: Csms, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await attempt(csms, "EVIL%0Afake-line", PASSWORD)
    (line,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert "\n" not in line and "EVIL\\nfake-line" in line


async def test_finding4_unknown_id_answered_401_when_configured(tmp_path: Path) -> None:
    async with running_csms(tmp_path, unknown_station_status=401) as csms:
        await csms.add_station("CS1")
        unknown = await attempt(csms, "NOPE", PASSWORD)
        wrong = await attempt(csms, "CS1", "wrong-password-0001")
        assert status(unknown) == status(wrong) == 401
        assert unknown is not None and wrong is not None
        assert unknown.body == wrong.body


async def test_finding4_metrics_count_refusals_and_events(csms: Csms) -> None:
    csms.server.monotonic = FakeClock()
    for i in range(6):
        await attempt(csms, "CS1", f"wrong-guess-{i:08d}")
    await attempt(csms, "CS1", None)
    text = generate_latest(CsmsMetrics(dict, csms.server).registry).decode()
    assert 'csms_station_logins_refused_total{outcome="refused",reason="bad_password"} 4.0' in text
    assert 'csms_station_logins_refused_total{outcome="throttled",reason="station"} 3.0' in text
    assert 'csms_security_events_total{type="AuthenticationThrottled"} 1.0' in text


async def test_finding4_concurrent_handshakes_get_no_extra_checks(csms: Csms) -> None:
    clock = FakeClock()
    csms.server.monotonic = clock
    for i in range(3):  # the free failures
        assert status(await attempt(csms, "CS1", f"wrong-guess-{i:08d}")) == 401
    guesses = [attempt(csms, "CS1", f"parallel-guess-{i:04d}") for i in range(30)]
    statuses = [status(response) for response in await asyncio.gather(*guesses)]
    assert statuses.count(401) == 1 and statuses.count(429) == 29


async def test_finding4_unreadable_station_is_503_in_one_line_without_traceback(
    csms: Csms, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def database_down(station_id: str) -> None:
        raise ConnectionError("database unreachable")

    monkeypatch.setattr(csms.services.stations, "admission", database_down)
    caplog.set_level(logging.INFO)
    assert status(await attempt(csms, "CS1", PASSWORD)) == 503
    (line,) = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert "station='CS1' address=127.0.0.1" in line.getMessage() and line.exc_info is None


async def test_finding4_throttled_attempts_cost_no_database_read(
    csms: Csms, monkeypatch: pytest.MonkeyPatch
) -> None:
    csms.server.monotonic = FakeClock()
    reads: list[str] = []
    admission = csms.services.stations.admission

    async def counted(station_id: str) -> Any:
        reads.append(station_id)
        return await admission(station_id)

    monkeypatch.setattr(csms.services.stations, "admission", counted)
    statuses = [status(await attempt(csms, "CS1", f"wrong-guess-{i:08d}")) for i in range(50)]
    assert statuses.count(401) == 4 and len(reads) == 4


async def test_finding4_behind_a_trusted_proxy_the_forwarded_address_is_throttled(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_csms(
        tmp_path, trusted_proxies="127.0.0.1", auth_free_failures_per_address=2
    ) as csms:
        await csms.add_station("CS1")
        csms.server.monotonic = FakeClock()
        caplog.set_level(logging.INFO)

        async def via_proxy(client: str, station_id: str, password: str) -> int:
            headers = {**basic_auth(station_id, password), "X-Forwarded-For": client}
            try:
                ws = await websockets.connect(
                    f"{csms.url}/{station_id}",
                    subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
                    additional_headers=headers,
                    open_timeout=5,
                )
            except InvalidStatus as refused:
                return refused.response.status_code
            await ws.close()
            return 101

        codes = [await via_proxy("198.51.100.7", f"GUESS{i}", PASSWORD) for i in range(5)]
        assert codes == [404, 404, 404, 429, 429]
        # Another client behind the same proxy is not blocked by the first one's guesses.
        assert await via_proxy("198.51.100.8", "CS1", PASSWORD) == 101
        logins = [r for r in caplog.records if r.name == "csms.ocpp_server.server"]
        assert "address=198.51.100.7" in logins[0].getMessage()
