"""Plug & Charge OCSP answers kept in the database (ocsp_responses): a restarted CSMS or another
node reuses a valid answer instead of asking the responder again; expired answers are asked for
again; the table is bounded."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from csms.domain.iso15118 import OcspAnswer, OcspRequestData
from csms.persistence import tables as t
from csms.services.pnc import OcspStore, PlugAndChargeService
from tests.support.v2g_nodes import node_databases

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)


class CountingResponder:
    """An OCSP client that answers `good` until T0 + 1 h and counts what it was asked."""

    def __init__(self) -> None:
        self.asked = 0

    async def fetch(
        self, wanted: OcspRequestData, known: Sequence[object], now: datetime
    ) -> OcspAnswer:
        self.asked += 1
        return OcspAnswer(
            "good", b"\x30\x03der", T0, T0 + timedelta(hours=1), verified=True, reason=""
        )


def _wanted(serial: str) -> OcspRequestData:
    return OcspRequestData.from_ocpp(
        {
            "hashAlgorithm": "SHA256",
            "issuerNameHash": "aa" * 32,
            "issuerKeyHash": "bb" * 32,
            "serialNumber": serial,
            "responderURL": "http://127.0.0.1:9/ocsp",
        }
    )


async def test_m06_ocsp_answer_reused_after_a_restart_and_by_another_node(tmp_path: Path) -> None:
    async with node_databases(f"sqlite+aiosqlite:///{tmp_path / 'ocsp.db'}", 2) as (db1, db2):
        responder = CountingResponder()
        now = [T0 + timedelta(minutes=1)]

        def service(db: object) -> PlugAndChargeService:
            return PlugAndChargeService(
                responder,  # type: ignore[arg-type]
                None,
                store=OcspStore(db, keep=3),  # type: ignore[arg-type]
                responder_hosts="127.0.0.1",
                clock=lambda: now[0],
            )

        first = await service(db1).ocsp(_wanted("01"))
        assert first.status == "good" and responder.asked == 1
        # A restarted node (a new service, empty memory) and another node: from the database.
        for db in (db1, db2):
            again = await service(db).ocsp(_wanted("01"))
            assert again == first
        assert responder.asked == 1
        # Past nextUpdate the answer is not reused: the responder is asked again.
        now[0] = T0 + timedelta(hours=2)
        await service(db2).ocsp(_wanted("01"))
        assert responder.asked == 2

        # Bounded: at most `keep` rows, those expiring first dropped.
        now[0] = T0 + timedelta(minutes=1)
        for serial in ("02", "03", "04", "05"):
            await service(db1).ocsp(_wanted(serial))
        async with db1.read() as conn:
            rows = await conn.execute(sa.select(sa.func.count()).select_from(t.ocsp_responses))
            assert rows.scalar_one() == 3
        assert responder.asked == 6
