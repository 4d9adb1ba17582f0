"""Durable agent storage: queue order, atomic groups, reopen after close."""

from __future__ import annotations

from pathlib import Path

import pytest

from chargepoint_firmware.storage import AgentStorage


def test_outbox_is_fifo_and_survives_reopen(tmp_path: Path) -> None:
    db = tmp_path / "a.sqlite3"
    s = AgentStorage(db)
    for n in range(3):
        s.enqueue(f"m{n}", "TransactionEvent", {"seq_no": n})
    first = s.peek()
    assert first is not None and first.message_id == "m0"
    s.remove(first.seq)
    s.close()
    again = AgentStorage(db)
    assert [m.payload["seq_no"] for m in again.pending()] == [1, 2]
    assert again.queue_length() == 2
    assert again.count_attempt(again.pending()[0].seq) == 1
    again.close()


def test_wal_and_full_sync(tmp_path: Path) -> None:
    s = AgentStorage(tmp_path / "a.sqlite3")
    assert s._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert s._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    s.close()


def test_atomic_rolls_back_everything(tmp_path: Path) -> None:
    s = AgentStorage(tmp_path / "a.sqlite3")
    with pytest.raises(RuntimeError), s.atomic():
        s.put("evse:1", {"seq_no": 5})
        s.enqueue("x", "TransactionEvent", {})
        raise RuntimeError("crash between the two writes")
    assert s.get("evse:1") is None
    assert s.queue_length() == 0
    with s.atomic(), s.atomic():  # nested joins the outer block
        s.put("k", 1)
    assert s.get("k") == 1
    s.close()


def test_profiles_and_local_list(tmp_path: Path) -> None:
    s = AgentStorage(tmp_path / "a.sqlite3")
    s.save_profile(3, 1, {"id": 3})
    s.save_profile(3, 2, {"id": 3, "stackLevel": 1})
    assert s.load_profiles() == [(2, {"id": 3, "stackLevel": 1})]
    s.delete_profile(3)
    assert s.load_profiles() == []
    s.replace_local_list(2, [("A", "Central", {"status": "Accepted"})])
    s.update_local_list(3, [("A", "Central", None), ("B", "Central", {"status": "Blocked"})])
    assert s.local_list_version() == 3
    assert s.local_list_entry("A", "Central") is None
    assert s.local_list_entry("B", "Central") == {"status": "Blocked"}
    s.cache_put("C", "ISO14443", {"status": "Accepted"})
    s.cache_clear()
    assert s.cache_get("C", "ISO14443") is None
    s.close()
