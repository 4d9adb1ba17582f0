"""Sampled meter data per transaction (J02): TxUpdatedInterval counted from each transaction's
start, and TxEndedInterval samples carried in the Ended event's meterValue list."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from chargepoint_firmware.blocks.transactions.sampling import next_boundary
from chargepoint_firmware.ocpp_edge.timefmt import iso_ms, parse_iso
from tests.integration.test_agent_transactions import set_variable
from tests.support.agent_fakes import ManualClock
from tests.support.agent_harness import Harness, eventually, start_harness

CARD = {"id_token": "CARD-1", "type": "ISO14443"}


def manual(h: Harness) -> ManualClock:
    assert isinstance(h.clock, ManualClock)
    return h.clock


def periodic(h: Harness, evse_id: int) -> list[dict[str, Any]]:
    return [
        e
        for e in h.csms.actions("TransactionEvent")
        if e["triggerReason"] == "MeterValuePeriodic" and e["evse"]["id"] == evse_id
    ]


async def start_tx(h: Harness, evse_id: int, token: str) -> datetime:
    h.evses[evse_id].plug_in()
    await eventually(lambda: h.agent.transactions.evses[evse_id].plugged)
    status = await h.agent.present_id_token(evse_id, {"id_token": token, "type": "ISO14443"})
    assert status == "Accepted"
    started_at = h.agent.transactions.evses[evse_id].tx_started_at
    assert started_at is not None
    return parse_iso(started_at)


async def advance(h: Harness, seconds: float) -> None:
    manual(h).advance(seconds)
    await asyncio.sleep(0.05)  # let the woken loops run


def test_next_boundary_counts_from_the_start() -> None:
    start = datetime.fromisoformat("2026-01-01T12:00:00+00:00")
    assert next_boundary(start, 60, start) == start + timedelta(seconds=60)
    assert next_boundary(start, 60, start + timedelta(seconds=59)) == start + timedelta(seconds=60)
    assert next_boundary(start, 60, start + timedelta(seconds=60)) == start + timedelta(seconds=120)
    assert next_boundary(start, 50, start + timedelta(seconds=70)) == start + timedelta(seconds=100)


async def test_j02_periodic_samples_timed_from_each_transaction_start(tmp_path: Path) -> None:
    h = await start_harness(tmp_path, manual_clock=True, evse_count=2)
    try:
        await set_variable(h, "SampledDataCtrlr", "TxUpdatedInterval", "60")
        t1 = await start_tx(h, 1, "CARD-1")
        await advance(h, 20)
        t2 = await start_tx(h, 2, "CARD-2")
        assert t2 - t1 == timedelta(seconds=20)
        await advance(h, 39)  # t1 + 59
        assert periodic(h, 1) == [] and periodic(h, 2) == []
        await advance(h, 1)  # t1 + 60
        await h.csms.wait_for(
            "TransactionEvent",
            lambda e: e["triggerReason"] == "MeterValuePeriodic" and e["evse"]["id"] == 1,
        )
        assert periodic(h, 2) == []  # its transaction is only 40 s old
        await advance(h, 20)  # t1 + 80 = t2 + 60
        await h.csms.wait_for(
            "TransactionEvent",
            lambda e: e["triggerReason"] == "MeterValuePeriodic" and e["evse"]["id"] == 2,
        )
        assert [e["timestamp"] for e in periodic(h, 1)] == [iso_ms(t1 + timedelta(seconds=60))]
        assert [e["timestamp"] for e in periodic(h, 2)] == [iso_ms(t2 + timedelta(seconds=60))]
        for e in periodic(h, 1) + periodic(h, 2):
            contexts = {sv["context"] for mv in e["meterValue"] for sv in mv["sampledValue"]}
            assert contexts == {"Sample.Periodic"}
    finally:
        await h.close()


async def test_j02_interval_change_recomputed_from_the_transaction_start(tmp_path: Path) -> None:
    h = await start_harness(tmp_path, manual_clock=True)
    try:
        await set_variable(h, "SampledDataCtrlr", "TxUpdatedInterval", "60")
        t1 = await start_tx(h, 1, "CARD-1")
        await advance(h, 70)
        await h.csms.wait_for(
            "TransactionEvent", lambda e: e["triggerReason"] == "MeterValuePeriodic"
        )
        await set_variable(h, "SampledDataCtrlr", "TxUpdatedInterval", "50")
        await advance(h, 29)  # t1 + 99
        assert len(periodic(h, 1)) == 1
        await advance(h, 1)  # t1 + 100 = 2 x 50
        await h.csms.wait_for(
            "TransactionEvent", lambda e: e["triggerReason"] == "MeterValuePeriodic", count=2
        )
        assert periodic(h, 1)[1]["timestamp"] == iso_ms(t1 + timedelta(seconds=100))
    finally:
        await h.close()


async def test_j02_tx_ended_interval_samples_go_in_the_ended_event(tmp_path: Path) -> None:
    h = await start_harness(tmp_path, manual_clock=True)
    try:
        await set_variable(h, "SampledDataCtrlr", "TxUpdatedInterval", "0")
        await set_variable(h, "SampledDataCtrlr", "TxEndedInterval", "100")
        t1 = await start_tx(h, 1, "CARD-1")
        for taken in (2, 3):  # Transaction.Begin, then one per interval
            h.evse.add_energy(import_wh=1000.0)
            await advance(h, 100)
            await eventually(
                lambda n=taken: len(h.agent.transactions.evses[1].ended_samples) >= n,
                message="TxEndedInterval sample not taken",
            )
        h.evse.add_energy(import_wh=500.0)
        await advance(h, 50)
        assert await h.agent.present_id_token(1, CARD) == "Accepted"  # stop
        ended = (await h.csms.wait_for("TransactionEvent", lambda e: e["eventType"] == "Ended"))[0]
        values = ended["meterValue"]
        assert [mv["timestamp"] for mv in values] == [
            iso_ms(t1 + timedelta(seconds=s)) for s in (0, 100, 200, 250)
        ]
        contexts = [values[i]["sampledValue"][0]["context"] for i in range(4)]
        assert contexts == [
            "Transaction.Begin",
            "Sample.Periodic",
            "Sample.Periodic",
            "Transaction.End",
        ]
        energy = [
            next(
                sv["value"]
                for sv in mv["sampledValue"]
                if sv["measurand"] == "Energy.Active.Import.Register"
            )
            for mv in values
        ]
        assert energy == [0.0, 1000.0, 2000.0, 2500.0]
        assert periodic(h, 1) == []  # TxUpdatedInterval 0: no Updated samples
    finally:
        await h.close()


async def test_j02_without_tx_ended_interval_only_the_end_value(tmp_path: Path) -> None:
    h = await start_harness(tmp_path, manual_clock=True)
    try:
        await start_tx(h, 1, "CARD-1")
        await advance(h, 100)
        assert await h.agent.present_id_token(1, CARD) == "Accepted"
        ended = (await h.csms.wait_for("TransactionEvent", lambda e: e["eventType"] == "Ended"))[0]
        assert len(ended["meterValue"]) == 1
        assert ended["meterValue"][0]["sampledValue"][0]["context"] == "Transaction.End"
    finally:
        await h.close()
