"""The message log of station messages: buffered (no database write per message), bounded,
and what it shows hides secrets, certificates and id tokens."""

from __future__ import annotations

import asyncio
from typing import Any

from csms.services.records import MessageLogService
from csms.services.redaction import redact_logged


class CountingDb:
    """Stands in for `Database`: counts the writes the message log makes."""

    def __init__(self) -> None:
        self.writes: list[Any] = []

    async def write_rows(self, *writes: Any) -> None:
        self.writes.extend(writes)


def _service(db: CountingDb, **kw: Any) -> MessageLogService:
    return MessageLogService(db, log_incoming=True, **kw)  # type: ignore[arg-type]


async def test_appending_station_messages_makes_no_database_write_until_a_batch() -> None:
    db = CountingDb()
    ml = _service(db, flush_interval_s=3600)
    for n in range(1000):
        ml.append_exchange("CS1", f"m{n}", "Heartbeat", {}, "CALLRESULT", {"t": n})
    assert db.writes == []  # nothing on the hot path
    assert await ml.flush() == 2000
    assert len(db.writes) == 1 and len(db.writes[0].rows) == 2000  # one batch
    assert await ml.flush() == 0 and len(db.writes) == 1


async def test_the_background_writer_flushes_within_its_interval_and_on_close() -> None:
    db = CountingDb()
    ml = _service(db, flush_interval_s=0.05)
    ml.start()
    ml.append_exchange("CS1", "m1", "Heartbeat", {}, "CALLRESULT", {})
    await asyncio.sleep(0.3)
    assert len(db.writes) == 1
    ml.append_exchange("CS1", "m2", "Heartbeat", {}, "CALLERROR", {"code": "FormatViolation"})
    await ml.close()  # what is buffered is written before the database closes
    assert len(db.writes) == 2


async def test_a_full_buffer_drops_and_counts_instead_of_growing() -> None:
    db = CountingDb()
    dropped: list[int] = []
    ml = _service(db, flush_interval_s=3600, max_buffered=10, on_dropped=dropped.append)
    for n in range(5):
        ml.append_exchange("CS1", f"m{n}", "Heartbeat", {}, "CALLRESULT", {})
    ml.append_exchange("CS1", "x", "Heartbeat", {}, "CALLRESULT", {})  # 12 > 10: dropped
    assert ml.dropped == 2 and dropped == [2]
    assert await ml.flush() == 10


def test_logged_payloads_hide_id_tokens_certificates_csrs_and_passwords() -> None:
    tx = {
        "eventType": "Started",
        "idToken": {"idToken": "CONTRACT-AU-123456789", "type": "eMAID"},
        "groupIdToken": {"idToken": "FLEET", "type": "Central"},
    }
    shown = redact_logged("TransactionEvent", tx)
    assert shown["idToken"] == {"idToken": "***6789", "type": "eMAID"}
    assert shown["groupIdToken"]["idToken"] == "***"  # short: nothing kept
    assert tx["idToken"]["idToken"] == "CONTRACT-AU-123456789"  # the input is not changed
    csr = redact_logged("SignCertificate", {"csr": "X" * 900})
    assert csr == {"csr": "*** (900 characters)"}
    chain = redact_logged("CertificateSigned", {"certificateChain": "PEM" * 10})
    assert chain["certificateChain"] == "*** (30 characters)"
    secret = redact_logged("DataTransfer", {"vendorId": "v", "data": {"password": "pw-123"}})
    assert secret["data"]["password"] == "***"
    # Hidden once when stored, read back unchanged; a token that only looks hidden is not.
    assert redact_logged("TransactionEvent", shown) == shown
    sneaky = {"idToken": {"idToken": "***-REAL-TOKEN-1234", "type": "Central"}}
    assert redact_logged("Authorize", sneaky)["idToken"]["idToken"] == "***1234"
    heartbeat: dict[str, Any] = {}
    assert redact_logged("Heartbeat", heartbeat) is heartbeat  # not walked
