"""Offline behaviour: queued TransactionEvents reach the CSMS after it returns, in order, once.

Also across a SIGKILL of the agent process while offline (subprocess test).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from ocpp.v201 import call

from tests.integration.test_agent_transactions import set_variable, start_remote
from tests.support.agent_harness import STATION_ID, Harness, eventually, start_harness
from tests.support.agent_test_csms import AgentTestCsms

REPO = Path(__file__).resolve().parents[2]


async def set_attempt_variable(h: Harness, variable: str, value: str) -> None:
    """Set OCPPCommCtrlr.<variable>[TransactionEvent] (MessageAttempts, MessageAttemptInterval)."""
    result = await h.call(
        call.SetVariables(
            set_variable_data=[
                {
                    "component": {"name": "OCPPCommCtrlr"},
                    "variable": {"name": variable, "instance": "TransactionEvent"},
                    "attribute_value": value,
                }
            ]
        )
    )
    assert result.set_variable_result[0]["attribute_status"] == "Accepted"


def assert_complete_sequence(events: list[dict[str, Any]], tx_id: str) -> list[dict[str, Any]]:
    mine = [e for e in events if e["transactionInfo"]["transactionId"] == tx_id]
    seqs = [e["seqNo"] for e in mine]
    assert seqs == list(range(len(mine))), f"gaps, duplicates or disorder: {seqs}"
    assert mine[0]["eventType"] == "Started"
    assert mine[-1]["eventType"] == "Ended"
    assert all(e["eventType"] == "Updated" for e in mine[1:-1])
    return mine


async def test_e_offline_events_delivered_in_order_exactly_once(tmp_path: Path) -> None:
    h = await start_harness(tmp_path)
    try:
        await set_variable(h, "SampledDataCtrlr", "TxUpdatedInterval", "1")
        tx_id = await start_remote(h)
        await h.csms.wait_for(
            "TransactionEvent", lambda e: e["triggerReason"] == "MeterValuePeriodic"
        )
        await h.csms.stop()  # the CSMS goes away mid-transaction
        await eventually(lambda: not h.agent.online)
        for _ in range(3):
            h.evse.add_energy(import_wh=100.0)
            await asyncio.sleep(0.6)
        h.evse.unplug()
        await eventually(lambda: len(h.agent.outbox) >= 3, message="events not queued")
        queued = len(h.agent.outbox)
        before = len(h.csms.actions("TransactionEvent"))

        await h.csms.start(port=h.csms.port)  # it comes back
        await h.csms.wait_for("TransactionEvent", lambda e: e["eventType"] == "Ended", within_s=10)
        await asyncio.wait_for(h.agent.drain(), 10)
        assert len(h.agent.outbox) == 0
        mine = assert_complete_sequence(h.csms.actions("TransactionEvent"), tx_id)
        after_outage = mine[before:]
        assert len(after_outage) >= queued - 1  # queued also holds the Ended
        assert all(e.get("offline") is True for e in after_outage)
        assert mine[-1]["transactionInfo"]["stoppedReason"] == "EVDisconnected"
        energies = [
            sv["value"]
            for e in mine
            for mv in e.get("meterValue", [])
            for sv in mv["sampledValue"]
            if sv["measurand"] == "Energy.Active.Import.Register"
        ]
        assert energies == sorted(energies)  # registers arrive in the order they were read
        assert energies[-1] == 300.0
    finally:
        await h.close()


def _write_config(path: Path, url: str, state_dir: Path) -> Path:
    config = path / "station.toml"
    config.write_text(
        f'station_id = "{STATION_ID}"\n'
        f'csms_url = "{url}"\n'
        f'state_dir = "{state_dir}"\n'
        "reconnect_min_s = 0.05\n"
        "reconnect_max_s = 0.2\n"
        "message_timeout_s = 3.0\n"
        "boot_retry_default_s = 0.2\n"
        "transaction_message_retry_interval_s = 0.05\n"
        "[[evses]]\n"
        "id = 1\n"
    )
    return config


def _spawn(config: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env["AGENT_PROC_PLUG"] = "1"
    env["AGENT_PROC_VARIABLES"] = json.dumps({"SampledDataCtrlr.TxUpdatedInterval": "1"})
    env["PYTHONPATH"] = str(REPO)
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.agent_proc", str(config)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _queued(state_dir: Path) -> list[tuple[str, dict[str, Any]]]:
    db = state_dir / "agent.sqlite3"
    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT action, payload FROM outbox ORDER BY seq").fetchall()
    return [(a, json.loads(p)) for a, p in rows]


async def test_e_sigkill_while_offline_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    csms = AgentTestCsms()
    url = await csms.start()
    state_dir = tmp_path / "state"
    config = _write_config(tmp_path, url, state_dir)
    first = _spawn(config)
    second: subprocess.Popen[bytes] | None = None
    try:
        await csms.wait_for(
            "StatusNotification", lambda p: p["connectorStatus"] == "Occupied", within_s=15
        )
        result = await csms.call(
            STATION_ID,
            call.RequestStartTransaction(
                id_token={"id_token": "K9", "type": "Central"}, remote_start_id=1, evse_id=1
            ),
        )
        assert result.status == "Accepted"
        started = await csms.wait_for("TransactionEvent", lambda e: e["eventType"] == "Started")
        tx_id = started[0]["transactionInfo"]["transactionId"]
        await csms.wait_for(
            "TransactionEvent", lambda e: e["triggerReason"] == "MeterValuePeriodic"
        )
        await csms.stop()
        # Offline: periodic events pile up in the durable queue.
        await eventually(
            lambda: sum(a == "TransactionEvent" for a, _ in _queued(state_dir)) >= 2, within_s=10
        )
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        queued_before_restart = [p for a, p in _queued(state_dir) if a == "TransactionEvent"]
        assert all(p.get("offline") for p in queued_before_restart)

        second = _spawn(config)
        # The restarted agent ends the interrupted transaction (still offline: queued).
        await eventually(
            lambda: any(p["event_type"] == "Ended" for _, p in _queued(state_dir)), within_s=15
        )
        await csms.start(port=csms.port)
        await csms.wait_for("TransactionEvent", lambda e: e["eventType"] == "Ended", within_s=15)
        await eventually(lambda: not _queued(state_dir), within_s=10)
        mine = assert_complete_sequence(csms.actions("TransactionEvent"), tx_id)
        assert mine[-1]["transactionInfo"]["stoppedReason"] == "PowerLoss"
        assert mine[-1]["offline"] is True
        ids = [r.message_id for r in csms.received if r.action == "TransactionEvent"]
        assert len(ids) == len(set(ids))
        # Everything queued before the kill arrived, unchanged.
        delivered = {(e["seqNo"], e["timestamp"]) for e in mine}
        for p in queued_before_restart:
            assert (p["seq_no"], p["timestamp"]) in delivered
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
        await csms.stop()


async def test_e_unanswered_events_are_resent_with_the_same_id_until_answered(
    tmp_path: Path,
) -> None:
    h = await start_harness(tmp_path, message_timeout_s=0.3)
    try:
        # Enough attempts (E13) that nothing is discarded during this outage.
        await set_attempt_variable(h, "MessageAttempts", "10")
        h.csms.silent_actions.add("TransactionEvent")  # connected, but not answering
        tx_id = await start_remote(h)
        h.evse.add_energy(import_wh=10.0)
        await h.call(call.RequestStopTransaction(transaction_id=tx_id))
        await h.csms.wait_for("TransactionEvent", count=3, within_s=5)  # retransmissions
        assert len(h.agent.outbox) >= 2  # nothing is dropped while unanswered
        h.csms.silent_actions.clear()
        await eventually(lambda: len(h.agent.outbox) == 0, within_s=10)
        by_id: dict[str, dict[str, Any]] = {}
        order: list[str] = []
        for r in h.csms.received:
            if r.action != "TransactionEvent":
                continue
            if r.message_id in by_id:
                assert by_id[r.message_id] == r.payload  # a resend is the same message
            else:
                by_id[r.message_id] = r.payload
                order.append(r.message_id)
        assert_complete_sequence([by_id[i] for i in order], tx_id)
    finally:
        await h.close()
