"""Issue 18: each envelope command (the profile and the 2.1 DER control both go through
csms.services.envelope_attempts) is recorded as a station event with what was sent, the
station's answer, or what stopped it; on SQLite and PostgreSQL (CSMS_TEST_POSTGRES_URL)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from csms.domain.errors import (
    BrokerUnavailable,
    CallErrorReceived,
    CommandTimeout,
    CsmsError,
    InvalidRequest,
    StationDisconnected,
    StationOffline,
    UnknownStation,
)
from csms.persistence import repositories as repo
from csms.persistence.database import Database
from csms.services.envelope_attempts import send_and_record
from tests.support.csms_db import fresh_postgres_database, postgres_url_or_skip
from tests.support.v2g_nodes import node_databases

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LOG = logging.getLogger("test_envelope_attempts")


class Sender:
    """Answers every command with `answer`, or raises `error`; keeps what it was asked."""

    def __init__(self, answer: dict[str, Any] | None = None, error: CsmsError | None = None):
        self.answer, self.error = answer, error
        self.sent: list[tuple[str, str, dict[str, Any]]] = []

    async def send(
        self,
        station_id: str,
        action: str,
        payload: dict[str, Any],
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> dict[str, Any]:
        self.sent.append((station_id, action, payload))
        if self.error is not None:
            raise self.error
        assert self.answer is not None
        return self.answer


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        async with node_databases(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}", 1) as (only,):
            yield only
        return
    async with (
        fresh_postgres_database(postgres_url_or_skip()) as url,
        node_databases(url, 1) as (only,),
    ):
        yield only


async def stored(db: Database, kind: str) -> list[dict[str, Any]]:
    async with db.read() as conn:
        page = await repo.list_events(conn, "CS1", 0, 10, kind=kind)
    return [event.payload for event in page.items]


async def test_an_answered_command_is_recorded_with_the_answer_and_extra_fields(
    db: Database,
) -> None:
    sender = Sender(answer={"status": "Accepted", "statusInfo": {"reasonCode": "x"}})
    resend_at = NOW + timedelta(minutes=30)
    outcome = await send_and_record(
        db, sender, LOG, kind="KindA", station_id="CS1", action="SetChargingProfile",
        payload={"evseId": 0}, now=NOW, resend_at=resend_at, what="profile",
        recorded_with={"fingerprint": "f1"},
    )  # fmt: skip
    assert sender.sent == [("CS1", "SetChargingProfile", {"evseId": 0})]
    assert (outcome.status, outcome.detail) == ("Accepted", None)
    assert outcome.answer == sender.answer
    assert await stored(db, "KindA") == [
        {
            "action": "SetChargingProfile",
            "status": "Accepted",
            "fingerprint": "f1",
            "request": {"evseId": 0},
            "answer": sender.answer,
            "detail": None,
            "resend_at": resend_at.isoformat(),
        }
    ]
    assert await stored(db, "KindB") == []  # recorded under its own kind only


async def test_a_station_status_is_kept_to_40_characters(db: Database) -> None:
    outcome = await send_and_record(
        db, Sender(answer={"status": "Z" * 100}), LOG, kind="K", station_id="CS1",
        action="SetDERControl", payload={}, now=NOW, resend_at=None, what="SetDERControl",
    )  # fmt: skip
    assert outcome.status == "Z" * 40
    assert (await stored(db, "K"))[0]["resend_at"] is None


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (StationOffline("CS1"), "Offline"),
        (StationDisconnected("CS1"), "Offline"),
        (CommandTimeout("CS1", "SetDERControl", 5.0), "Timeout"),
        (CallErrorReceived("NotImplemented", "no"), "CallError"),
        (BrokerUnavailable("CS1", "down"), "Unreachable"),
        (UnknownStation("CS1"), "Unknown"),
        (InvalidRequest("bad profile"), "Invalid"),
        (CsmsError("something else"), "Error"),
    ],
)
async def test_a_command_that_got_no_answer_is_recorded_with_why(
    db: Database, error: CsmsError, status: str
) -> None:
    outcome = await send_and_record(
        db, Sender(error=error), LOG, kind="K", station_id="CS1", action="ClearDERControl",
        payload={"controlId": "c"}, now=NOW, resend_at=None, what="ClearDERControl",
    )  # fmt: skip
    assert (outcome.status, outcome.answer, outcome.detail) == (status, None, str(error))
    (event,) = await stored(db, "K")
    assert (event["status"], event["answer"], event["detail"]) == (status, None, str(error))
    assert event["request"] == {"controlId": "c"}
    assert "fingerprint" not in event  # nothing beyond what the caller adds
