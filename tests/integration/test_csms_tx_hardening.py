"""Issue 11, transactions and meter data over a real websocket, on SQLite and (marker
`postgres`) PostgreSQL: an int64 seqNo gap answered at once (finding 1), a transaction row
that does not grow with its events and retries found inside the span (finding 6), a stale
Active transaction superseded by a new one on its EVSE (finding 7), repeated meter samples
stored once (finding 8), and migration 0005 carrying existing rows up and down."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import ClientConnection

from csms.domain.models import Transaction, TransactionState
from csms.domain.transactions import SUPERSEDED, TransactionEventInput
from csms.ocpp_server.blocks._common import meter_samples
from csms.persistence import migrate
from csms.persistence import repositories as repo
from csms.services.common import parse_ocpp_datetime
from csms.services.transaction_events import SUPERSEDED_EVENT, TransactionEventWrite
from tests.support.csms_db import fresh_postgres_database, postgres_url_or_skip, run_sql
from tests.support.csms_harness import Csms, raw_boot, raw_connect, raw_exchange, running_csms
from tests.support.csms_payloads import PROFILE, tx_event

INT64_MAX = 2**63 - 1


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def csms(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Csms]:
    """A running CSMS with stations CS1 and CS2, on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        async with running_csms(tmp_path) as running:
            await running.add_station("CS1")
            await running.add_station("CS2")
            yield running
        return
    base = postgres_url_or_skip()
    async with (
        fresh_postgres_database(base) as url,
        running_csms(tmp_path, database_url=url) as running,
    ):
        await running.add_station("CS1")
        await running.add_station("CS2")
        yield running


async def _station(csms: Csms, station_id: str) -> ClientConnection:
    ws = await raw_connect(csms, station_id)
    assert (await raw_boot(ws))[0] == 3
    return ws


async def _call(ws: ClientConnection, action: str, payload: dict[str, Any]) -> list[Any]:
    return await raw_exchange(ws, [2, f"{action}-{id(payload)}", action, payload])


async def _next_call(ws: ClientConnection) -> list[Any]:
    async with asyncio.timeout(5):
        frame: list[Any] = orjson.loads(await ws.recv())
    return frame


# ---- finding 1 ------------------------------------------------------------------------------


async def test_finding1_offline_ended_seqno_int64(csms: Csms) -> None:
    """The exact attack: offline Started seqNo 0, offline Ended seqNo 2^63-1. Before, the gap
    check built a list of 2^63 values on the event loop (3 GB in 7 s, nobody answered)."""
    attacker = await _station(csms, "CS1")
    bystander = await _station(csms, "CS2")
    try:
        started = await _call(attacker, "TransactionEvent", tx_event("Started", 0, offline=True))
        assert started[0] == 3
        # raw_exchange waits 5 s at most for the answer.
        ended = await _call(
            attacker, "TransactionEvent", tx_event("Ended", INT64_MAX, offline=True)
        )
        # The OCPP edge may refuse a seqNo beyond its bound (a CALLERROR naming the
        # constraint); what must never happen is an InternalError or no answer.
        assert ended[0] == 3 or (ended[0] == 4 and ended[2] != "InternalError"), ended
        assert (await _call(bystander, "Heartbeat", {}))[0] == 3
        if ended[0] == 3:
            tx = (await csms.services.transactions.get("CS1", "TX1")).transaction
            assert tx.state is TransactionState.ENDED
            assert (tx.first_seq_no, tx.last_seq_no, tx.seq_count) == (0, INT64_MAX, 2)
            # E07: a gap of 2^63-2 lost events, counted: the CSMS asks about the queue.
            ask = await _next_call(attacker)
            assert ask[2] == "GetTransactionStatus"
            assert ask[3] == {"transactionId": "TX1"}
        assert (await _call(attacker, "Heartbeat", {}))[0] == 3
    finally:
        await attacker.close()
        await bystander.close()


# ---- finding 6 ------------------------------------------------------------------------------


async def _transaction_row(csms: Csms) -> str:
    rows = await run_sql(
        csms.settings.database_url, "SELECT * FROM transactions WHERE transaction_id = 'TX1'"
    )
    assert len(rows) == 1
    return repr(rows[0])


async def test_finding6_seen_seqnos_row_does_not_grow(csms: Csms) -> None:
    """Before, every event rewrote a JSON list of every seqNo seen (the row grew with the
    transaction and latency doubled over 8,000 events); now the row keeps three numbers."""
    ws = await _station(csms, "CS1")
    try:
        assert (await _call(ws, "TransactionEvent", tx_event("Started", 0)))[0] == 3
        assert (await _call(ws, "TransactionEvent", tx_event("Updated", 1)))[0] == 3
        small = await _transaction_row(csms)
        for n in range(2, 300):
            assert (await _call(ws, "TransactionEvent", tx_event("Updated", n)))[0] == 3
        large = await _transaction_row(csms)
    finally:
        await ws.close()
    # Only the digits of last_seq_no/seq_count and the update time may differ.
    assert len(large) - len(small) < 16
    tx = (await csms.services.transactions.get("CS1", "TX1")).transaction
    assert (tx.first_seq_no, tx.last_seq_no, tx.seq_count) == (0, 299, 300)


async def test_finding6_seen_seqnos_retry_inside_the_span_changes_nothing(csms: Csms) -> None:
    ws = await _station(csms, "CS1")
    try:
        for n in range(4):
            event = tx_event("Started" if n == 0 else "Updated", n, energy_wh=1000.0 * n)
            assert (await _call(ws, "TransactionEvent", event))[0] == 3
        # A retry of seqNo 1 (not the latest) and one of 0, changed payloads: both ignored.
        retry = tx_event("Updated", 1, energy_wh=99_999.0, timestamp="2026-01-02T04:00:00Z")
        assert (await _call(ws, "TransactionEvent", retry))[0] == 3
        assert (await _call(ws, "TransactionEvent", tx_event("Started", 0)))[0] == 3
        # Offline events out of order: 10 then 6 (inside the span, new) then 6 again.
        for n in (10, 6, 6):
            event = tx_event("Updated", n, offline=True, energy_wh=1000.0 * n)
            assert (await _call(ws, "TransactionEvent", event))[0] == 3
    finally:
        await ws.close()
    detail = await csms.services.transactions.get("CS1", "TX1")
    assert [e.seq_no for e in detail.events] == [0, 1, 2, 3, 6, 10]
    assert [s.value for s in detail.meter_values] == [0, 1000, 2000, 3000, 6000, 10000]
    tx = detail.transaction
    assert (tx.first_seq_no, tx.last_seq_no, tx.seq_count) == (0, 10, 6)
    assert tx.energy_wh == 10000


def _write(seq_no: int, event_type: str = "Updated") -> TransactionEventWrite:
    payload = tx_event(event_type, seq_no, energy_wh=10.0 * seq_no)
    event = TransactionEventInput(
        station_id="CS1",
        transaction_id="TX1",
        event_type=event_type,
        timestamp=parse_ocpp_datetime(payload["timestamp"]),
        seq_no=seq_no,
        trigger_reason=payload["triggerReason"],
        evse_id=1,
    )
    samples = meter_samples("CS1", payload["meterValue"], evse_id=1, transaction_id="TX1")
    return TransactionEventWrite(event, payload, datetime.now(UTC), samples)


async def test_finding6_seen_seqnos_group_commit_batch_with_repeats(csms: Csms) -> None:
    """One group-commit batch holding new events, repeats of each other and retries of
    stored ones: each seqNo is stored and counted once."""
    engine = csms.services.db.engine
    async with engine.begin() as conn:
        first = await TransactionEventWrite.run_batch(
            conn, [_write(0, "Started"), _write(1), _write(1), _write(2)]
        )
    assert [fresh for _, fresh in first] == [True, True, False, True]
    async with engine.begin() as conn:
        second = await TransactionEventWrite.run_batch(
            conn, [_write(1), _write(5), _write(3), _write(5), _write(0), _write(3)]
        )
    assert [fresh for _, fresh in second] == [False, True, True, False, False, False]
    detail = await csms.services.transactions.get("CS1", "TX1")
    assert [e.seq_no for e in detail.events] == [0, 1, 2, 3, 5]
    tx = detail.transaction
    assert (tx.first_seq_no, tx.last_seq_no, tx.seq_count) == (0, 5, 5)


# ---- finding 7 ------------------------------------------------------------------------------


def _at(hour: int, minute: int = 0) -> str:
    return f"2026-01-02T{hour:02d}:{minute:02d}:00.000Z"


async def test_finding7_new_transaction_supersedes_the_stale_one_on_its_evse(
    csms: Csms,
) -> None:
    ws = await _station(csms, "CS1")
    try:
        for payload in (
            tx_event("Started", 0, tx_id="OLD", timestamp=_at(9), energy_wh=0),
            {**tx_event("Started", 1, tx_id="E2", timestamp=_at(9)), "evse": {"id": 2}},
            # OLD was never ended; NEW starts on the same EVSE.
            tx_event("Started", 2, tx_id="NEW", timestamp=_at(10), energy_wh=5000),
        ):
            assert (await _call(ws, "TransactionEvent", payload))[0] == 3
    finally:
        await ws.close()
    old = (await csms.services.transactions.get("CS1", "OLD")).transaction
    assert old.state is TransactionState.ENDED
    assert (old.stopped_reason, old.ended_at) == (SUPERSEDED, parse_ocpp_datetime(_at(10)))
    running = await csms.services.transactions.list(station_id="CS1", state=TransactionState.ACTIVE)
    assert sorted(t.transaction_id for t in running.items) == ["E2", "NEW"]
    events = (await csms.services.events.list("CS1", kind=SUPERSEDED_EVENT)).items
    assert [e.payload for e in events] == [
        {
            "transactionId": "OLD",
            "supersededBy": "NEW",
            "evseId": 1,
            "endedAt": "2026-01-02T10:00:00.000Z",
        }
    ]


async def test_finding7_a_transaction_first_seen_without_started_supersedes_too(
    csms: Csms,
) -> None:
    """NEW's Started was lost: its first event is an Updated. The running transactions on its
    EVSE are read after the batch's first read (which carries only those of Started events),
    and OLD is superseded all the same."""
    ws = await _station(csms, "CS1")
    try:
        for payload in (
            tx_event("Started", 0, tx_id="OLD", timestamp=_at(9), energy_wh=0),
            tx_event("Updated", 7, tx_id="NEW", timestamp=_at(10), energy_wh=100),
        ):
            assert (await _call(ws, "TransactionEvent", payload))[0] == 3
    finally:
        await ws.close()
    old = (await csms.services.transactions.get("CS1", "OLD")).transaction
    assert (old.state, old.stopped_reason) == (TransactionState.ENDED, SUPERSEDED)
    new = (await csms.services.transactions.get("CS1", "NEW")).transaction
    assert new.state is TransactionState.ACTIVE


async def test_finding7_late_real_ended_still_stores_its_data(csms: Csms) -> None:
    ws = await _station(csms, "CS1")
    try:
        for payload in (
            tx_event("Started", 0, tx_id="OLD", timestamp=_at(9), energy_wh=0),
            tx_event("Started", 1, tx_id="NEW", timestamp=_at(10)),
            # The station's queued Ended of OLD arrives after all.
            tx_event(
                "Ended",
                2,
                tx_id="OLD",
                timestamp=_at(9, 45),
                energy_wh=7000,
                offline=True,
                stopped_reason="EVDisconnected",
            ),
        ):
            assert (await _call(ws, "TransactionEvent", payload))[0] == 3
    finally:
        await ws.close()
    detail = await csms.services.transactions.get("CS1", "OLD")
    old = detail.transaction
    assert (old.stopped_reason, old.ended_at) == ("EVDisconnected", parse_ocpp_datetime(_at(9, 45)))
    assert old.energy_wh == 7000
    assert [e.event_type for e in detail.events] == ["Started", "Ended"]
    new = (await csms.services.transactions.get("CS1", "NEW")).transaction
    assert new.state is TransactionState.ACTIVE


async def test_finding7_late_offline_start_of_an_older_one_does_not_end_the_running_one(
    csms: Csms,
) -> None:
    ws = await _station(csms, "CS1")
    try:
        started = tx_event("Started", 5, tx_id="NOW", timestamp=_at(10))
        assert (await _call(ws, "TransactionEvent", started))[0] == 3
        replayed = tx_event("Started", 0, tx_id="EARLIER", timestamp=_at(8), offline=True)
        assert (await _call(ws, "TransactionEvent", replayed))[0] == 3
    finally:
        await ws.close()
    running = (await csms.services.transactions.get("CS1", "NOW")).transaction
    assert running.state is TransactionState.ACTIVE


async def test_finding7_k01_fr33_tx_profile_for_the_newest_running_transaction(
    csms: Csms,
) -> None:
    """Rows left by the old code: two Active transactions on EVSE 1. The pre-check picked the
    oldest and refused a valid TxProfile for the running one with 422 (K01.FR.09 mismatch)."""
    now = datetime.now(UTC)
    for tx_id, started in (("STALE", now - timedelta(days=1)), ("RUNNING", now)):
        tx = Transaction("CS1", tx_id, TransactionState.ACTIVE, evse_id=1, started_at=started)
        await csms.services.db.write(lambda c, tx=tx: repo.save_transaction(c, tx, now))
    ws = await _station(csms, "CS1")
    try:
        profile = {**PROFILE, "chargingProfilePurpose": "TxProfile", "transactionId": "RUNNING"}
        sending = asyncio.create_task(
            csms.services.commands.send(
                "CS1", "SetChargingProfile", {"evseId": 1, "chargingProfile": profile}
            )
        )
        request = await _next_call(ws)
        assert request[2] == "SetChargingProfile"
        assert request[3]["chargingProfile"]["transactionId"] == "RUNNING"
        await ws.send(orjson.dumps([3, request[1], {"status": "Accepted"}]).decode())
        async with asyncio.timeout(5):
            assert (await sending)["status"] == "Accepted"
    finally:
        await ws.close()


# ---- finding 8 ------------------------------------------------------------------------------


def _sample(ts: str, value: float, **extra: Any) -> dict[str, Any]:
    return {"timestamp": ts, "sampledValue": [{"value": value, **extra}]}


async def test_finding8_repeated_meter_samples_stored_once(csms: Csms) -> None:
    ws = await _station(csms, "CS1")
    try:
        first = {**tx_event("Started", 0), "meterValue": [_sample(_at(9), 100)]}
        # The SAP simulator resends the previous sample beside each new one.
        second = {
            **tx_event("Updated", 1),
            "meterValue": [
                _sample(_at(9), 100),
                _sample(_at(9, 1), 200),
                _sample(_at(9), 230.0, measurand="Voltage", phase="L1-N"),
                _sample(_at(9), 231.0, measurand="Voltage", phase="L2-N"),
            ],
        }
        third = {
            **tx_event("Updated", 2),
            "meterValue": [
                _sample(_at(9, 1), 200),
                _sample(_at(9), 230.0, measurand="Voltage", phase="L1-N"),
                _sample(_at(9, 1), 150, context="Sample.Clock"),  # another context: kept
            ],
        }
        for payload in (first, second, third):
            assert (await _call(ws, "TransactionEvent", payload))[0] == 3
        # MeterValues outside a transaction: keyed by station and EVSE.
        for evse_id in (1, 1, 2):
            mv = {"evseId": evse_id, "meterValue": [_sample(_at(11), 42, location="Inlet")]}
            assert (await _call(ws, "MeterValues", mv))[0] == 3
    finally:
        await ws.close()
    detail = await csms.services.transactions.get("CS1", "TX1")
    assert sorted(
        (s.timestamp.minute, s.measurand, s.phase or "", s.context or "", s.value)
        for s in detail.meter_values
    ) == [
        (0, "Energy.Active.Import.Register", "", "", 100),
        (0, "Voltage", "L1-N", "", 230.0),
        (0, "Voltage", "L2-N", "", 231.0),
        (1, "Energy.Active.Import.Register", "", "", 200),
        (1, "Energy.Active.Import.Register", "", "Sample.Clock", 150),
    ]
    rows = await run_sql(
        csms.settings.database_url,
        "SELECT evse_id, sampled_values FROM meter_values WHERE transaction_id IS NULL"
        " ORDER BY evse_id",
    )
    # one row per MeterValue (0017), its sampled values packed: [measurand, value, ...]
    assert [(evse, [s[1] for s in orjson.loads(packed)]) for evse, packed in rows] == [
        (1, [42.0]),
        (2, [42.0]),
    ]


# ---- migration 0005 -------------------------------------------------------------------------


async def _migration_0005(url: str) -> None:
    await migrate.upgrade_async(url, "0004")
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    await run_sql(
        url,
        "INSERT INTO stations (id, created_at, updated_at) VALUES ('CS1', :now, :now)",
        now=now,
    )
    for tx_id, seen in (("TX1", [0, 3, 4]), ("EMPTY", [])):
        await run_sql(
            url,
            "INSERT INTO transactions (station_id, transaction_id, state, evse_id, last_seq_no,"
            " seen_seq_nos, updated_at) VALUES ('CS1', :tx, 'Active', 1, :last, :seen, :now)",
            tx=tx_id,
            last=max(seen, default=None),
            seen=json.dumps(seen),
            now=now,
        )
    for seq in (0, 3, 4):
        await run_sql(
            url,
            "INSERT INTO transaction_events (station_id, transaction_id, seq_no, event_type,"
            " trigger_reason, timestamp, payload, received_at)"
            " VALUES ('CS1', 'TX1', :seq, 'Updated', 'Authorized', :now, '{}', :now)",
            seq=seq,
            now=now,
        )
    samples: list[tuple[str | None, int | None, str | None, float]] = [
        ("TX1", 1, None, 1.0),
        ("TX1", 1, None, 2.0),  # repeat (NULL phase): removed
        ("TX1", 1, "L1", 3.0),
        ("TX1", 1, "L1", 4.0),  # repeat: removed
        (None, 1, None, 5.0),
        (None, 1, None, 6.0),  # repeat without a transaction: removed
        (None, 2, None, 7.0),
    ]
    for tx_id, evse_id, phase, value in samples:
        await run_sql(
            url,
            "INSERT INTO meter_values (station_id, evse_id, transaction_id, timestamp,"
            " measurand, phase, value) VALUES ('CS1', :evse, :tx, :now, 'Power', :phase, :v)",
            evse=evse_id,
            tx=tx_id,
            now=now,
            phase=phase,
            v=value,
        )
    await migrate.upgrade_async(url, "0005")
    assert await run_sql(
        url,
        "SELECT transaction_id, first_seq_no, last_seq_no, seq_count FROM transactions"
        " ORDER BY transaction_id",
    ) == [("EMPTY", None, None, 0), ("TX1", 0, 4, 3)]
    assert await run_sql(url, "SELECT value FROM meter_values ORDER BY value") == [
        (1.0,),
        (3.0,),
        (5.0,),
        (7.0,),
    ]
    await migrate.downgrade_async(url, "0004")
    stored = await run_sql(
        url, "SELECT transaction_id, seen_seq_nos FROM transactions ORDER BY transaction_id"
    )
    assert [(tx, json.loads(s) if isinstance(s, str) else s) for tx, s in stored] == [
        ("EMPTY", []),
        ("TX1", [0, 3, 4]),
    ]
    await migrate.upgrade_async(url)


async def test_finding6_seen_seqnos_and_finding8_duplicates_migrated_sqlite(
    tmp_path: Path,
) -> None:
    await _migration_0005(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")


@pytest.mark.postgres
async def test_finding6_seen_seqnos_and_finding8_duplicates_migrated_postgres() -> None:
    base = postgres_url_or_skip()
    async with fresh_postgres_database(base) as url:
        await _migration_0005(url)


@pytest.mark.parametrize(
    ("sampled", "what"),
    [
        ({"value": 1.0, "unitOfMeasure": {"multiplier": 400}}, "multiplier"),
        ({"value": 1.0, "unitOfMeasure": {"multiplier": -(2**31)}}, "multiplier"),
        ({"value": 1e308, "unitOfMeasure": {"multiplier": 1}}, "value"),
        ({"value": -1e16}, "value"),
    ],
)
async def test_finding3_meter_value_out_of_bounds_refused_not_stored(
    csms: Csms, sampled: dict[str, Any], what: str
) -> None:
    """10.0**400 raised OverflowError inside the write (InternalError, a traceback per frame);
    1e308 x 10 was stored as inf. Now the sender gets PropertyConstraintViolation."""
    ws = await _station(csms, "CS1")
    bystander = await _station(csms, "CS2")
    try:
        bad = [{"timestamp": _at(9), "sampledValue": [sampled]}]
        for action, payload in (
            ("TransactionEvent", {**tx_event("Started", 0), "meterValue": bad}),
            ("MeterValues", {"evseId": 1, "meterValue": bad}),
        ):
            answer = await _call(ws, action, payload)
            assert answer[0] == 4 and answer[2] == "PropertyConstraintViolation", answer
            assert what in answer[3]
        assert (await _call(bystander, "Heartbeat", {}))[0] == 3
        # The same station carries on with good values.
        good = {**tx_event("Started", 0), "meterValue": [_sample(_at(9), 5.0)]}
        assert (await _call(ws, "TransactionEvent", good))[0] == 3
    finally:
        await ws.close()
        await bystander.close()
    rows = await run_sql(csms.settings.database_url, "SELECT sampled_values FROM meter_values")
    assert [s[1] for (packed,) in rows for s in orjson.loads(packed)] == [5.0]
    assert [e.seq_no for e in (await csms.services.transactions.get("CS1", "TX1")).events] == [0]


@pytest.mark.parametrize("when", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"])
async def test_finding3_timestamp_beyond_utc_range_is_a_property_violation(
    csms: Csms, when: str
) -> None:
    """Schema-valid date-times a UTC conversion cannot hold raised OverflowError
    (InternalError with a traceback); they are the sender's PropertyConstraintViolation now
    (well-formed, but out of range)."""
    ws = await _station(csms, "CS1")
    try:
        for action, payload in (
            ("TransactionEvent", tx_event("Started", 0, timestamp=when)),
            ("MeterValues", {"evseId": 1, "meterValue": [_sample(when, 1.0)]}),
        ):
            answer = await _call(ws, action, payload)
            assert answer[0] == 4 and answer[2] == "PropertyConstraintViolation", answer
    finally:
        await ws.close()
    assert await run_sql(csms.settings.database_url, "SELECT id FROM transaction_events") == []
