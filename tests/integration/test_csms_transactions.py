"""Block E over a real websocket: TransactionEvent storage, idempotent retries, seqNo gaps
after offline periods (GetTransactionStatus), running cost, restart mid-transaction."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from ocpp.v201 import call

from csms.domain.models import TransactionState
from tests.support.csms_harness import Connected, Csms, connect_station, running_csms
from tests.support.csms_payloads import tx_event


@pytest.fixture
async def csms(tmp_path: Path) -> AsyncIterator[Csms]:
    async with running_csms(tmp_path) as running:
        await running.add_station("CS1")
        yield running


async def _boot(conn: Connected) -> None:
    boot = await conn.station.call(
        call.BootNotification(
            charging_station={"model": "m", "vendor_name": "v"}, reason="PowerUp"
        ),
        suppress=False,
    )
    assert boot.status == "Accepted"


@pytest.fixture
async def station(csms: Csms) -> AsyncIterator[Connected]:
    async with connect_station(csms, "CS1") as conn:
        await _boot(conn)
        yield conn


async def send_tx(conn: Connected, payload: dict[str, Any]) -> Any:
    """TransactionEvent through the ocpp library (it validates our answer against the schema)."""
    return await conn.station.call(
        call.TransactionEvent(
            event_type=payload["eventType"],
            timestamp=payload["timestamp"],
            trigger_reason=payload["triggerReason"],
            seq_no=payload["seqNo"],
            transaction_info=payload["transactionInfo"],
            evse=payload.get("evse"),
            offline=payload.get("offline"),
            meter_value=payload.get("meterValue"),
            id_token=payload.get("idToken"),
        ),
        suppress=False,
    )


async def test_e01_started_updated_ended_with_cost(csms: Csms, station: Connected) -> None:
    await csms.services.tariffs.set("CS1", currency="AUD", price_per_kwh=0.30)
    await csms.services.id_tokens.create("TOK1")
    started = await send_tx(
        station,
        tx_event("Started", 0, energy_wh=1000, id_token="TOK1", timestamp="2026-01-01T10:00:00Z"),
    )
    assert started.id_token_info == {"status": "Accepted"}
    assert started.total_cost is None  # no running cost in the answer to Started
    updated = await send_tx(
        station, tx_event("Updated", 1, energy_wh=6000, timestamp="2026-01-01T10:30:00Z")
    )
    assert updated.total_cost == pytest.approx(1.5)
    ended = await send_tx(
        station, tx_event("Ended", 2, energy_wh=11000, timestamp="2026-01-01T11:00:00Z")
    )
    assert ended.total_cost == pytest.approx(3.0)
    detail = await csms.services.transactions.get("CS1", "TX1")
    tx = detail.transaction
    assert tx.state is TransactionState.ENDED
    assert (tx.evse_id, tx.connector_id, tx.id_token) == (1, 1, "TOK1")
    assert tx.energy_wh == 10000
    assert tx.stopped_reason == "Local"
    assert tx.started_at is not None and tx.ended_at is not None
    assert (tx.ended_at - tx.started_at).total_seconds() == 3600
    assert [e.event_type for e in detail.events] == ["Started", "Updated", "Ended"]
    assert [s.value for s in detail.meter_values] == [1000, 6000, 11000]
    assert all(s.transaction_id == "TX1" for s in detail.meter_values)
    page = await csms.services.transactions.list(station_id="CS1", state=TransactionState.ENDED)
    assert [t.transaction_id for t in page.items] == ["TX1"]


async def test_e_retried_event_is_idempotent(csms: Csms, station: Connected) -> None:
    await csms.services.tariffs.set("CS1", currency="AUD", price_per_kwh=1.0)
    await send_tx(station, tx_event("Started", 0, energy_wh=0))
    first = await send_tx(station, tx_event("Updated", 1, energy_wh=2000))
    retry = await send_tx(station, tx_event("Updated", 1, energy_wh=2000))
    assert first.total_cost == retry.total_cost == pytest.approx(2.0)
    detail = await csms.services.transactions.get("CS1", "TX1")
    assert [e.seq_no for e in detail.events] == [0, 1]
    assert [s.value for s in detail.meter_values] == [0, 2000]
    tx = detail.transaction
    assert (tx.first_seq_no, tx.last_seq_no, tx.seq_count) == (0, 1, 2)


async def test_e_event_for_unseen_transaction_is_recorded(csms: Csms, station: Connected) -> None:
    answer = await send_tx(station, tx_event("Updated", 5, tx_id="GHOST", energy_wh=10))
    assert answer is not None
    tx = (await csms.services.transactions.get("CS1", "GHOST")).transaction
    assert tx.state is TransactionState.ACTIVE
    assert tx.started_unseen
    await send_tx(station, tx_event("Ended", 6, tx_id="GHOST"))
    tx = (await csms.services.transactions.get("CS1", "GHOST")).transaction
    assert tx.state is TransactionState.ENDED


async def test_e_id_token_info_in_answer_for_unknown_token(station: Connected) -> None:
    answer = await send_tx(station, tx_event("Started", 0, id_token="STRANGER"))
    assert answer.id_token_info == {"status": "Unknown"}


async def test_e07_offline_ended_with_seq_gap_asks_transaction_status(
    csms: Csms, station: Connected
) -> None:
    await send_tx(station, tx_event("Started", 0))
    # seqNo 1 and 2 were lost while offline.
    await send_tx(station, tx_event("Updated", 3, offline=True))
    await send_tx(station, tx_event("Ended", 4, offline=True))
    asked = await station.station.wait_for("GetTransactionStatus")
    assert asked == {"transaction_id": "TX1"}
    tx = (await csms.services.transactions.get("CS1", "TX1")).transaction
    assert tx.offline_seen and (tx.first_seq_no, tx.last_seq_no, tx.seq_count) == (0, 4, 3)


async def test_e07_no_status_request_without_gap(csms: Csms, station: Connected) -> None:
    await send_tx(station, tx_event("Started", 0))
    await send_tx(station, tx_event("Updated", 1, offline=True))
    await send_tx(station, tx_event("Ended", 2, offline=True))
    await station.station.call(call.Heartbeat(), suppress=False)
    await asyncio.sleep(0.2)
    assert not [a for a, _ in station.station.received if a == "GetTransactionStatus"]


async def test_restart_mid_transaction_loses_nothing(csms: Csms) -> None:
    await csms.services.tariffs.set("CS1", currency="AUD", price_per_kwh=0.5)
    async with connect_station(csms, "CS1") as conn:
        await _boot(conn)
        await send_tx(conn, tx_event("Started", 0, energy_wh=0))
        await send_tx(conn, tx_event("Updated", 1, energy_wh=1000))
        await csms.restart_server()
        async with asyncio.timeout(5):
            await conn.ws.wait_closed()
    assert not await csms.services.router.is_connected("CS1")
    # The station reconnects (no new boot needed: it was Accepted) and carries on.
    async with connect_station(csms, "CS1") as conn:
        assert (await conn.station.call(call.Heartbeat(), suppress=False)).current_time
        await send_tx(conn, tx_event("Updated", 2, energy_wh=2000))
        ended = await send_tx(conn, tx_event("Ended", 3, energy_wh=3000))
        assert ended.total_cost == pytest.approx(1.5)
        assert await csms.services.router.is_connected("CS1")
    detail = await csms.services.transactions.get("CS1", "TX1")
    assert [e.seq_no for e in detail.events] == [0, 1, 2, 3]
    assert [s.value for s in detail.meter_values] == [0, 1000, 2000, 3000]
    assert detail.transaction.state is TransactionState.ENDED


async def test_restart_whole_csms_keeps_committed_state(tmp_path: Path) -> None:
    """Everything answered before a full stop (services and server) is there after it."""
    async with running_csms(tmp_path) as csms:
        await csms.add_station("CS1")
        async with connect_station(csms, "CS1") as conn:
            await _boot(conn)
            await send_tx(conn, tx_event("Started", 0, energy_wh=0))
    from csms.services.container import build_services

    services = build_services(csms.settings)
    await services.start()
    try:
        tx = (await services.transactions.get("CS1", "TX1")).transaction
        assert tx.state is TransactionState.ACTIVE
        assert (await services.stations.get("CS1")).registration_status.value == "Accepted"
    finally:
        await services.close()
