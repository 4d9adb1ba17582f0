"""The frequency rule's lean read of the connected vehicles (V2gService._plugged: a few queries)
picks the same vehicles, transactions and SoC as the full session contexts (_connected)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncConnection

from csms.domain.models import Transaction, TransactionState
from csms.persistence import repositories as repo
from csms.persistence import tables as t
from csms.persistence.repositories import v2g as vrepo
from tests.support.v2g_nodes import (
    frequency_nodes,
    plug_in,
    report_soc,
    soc_sample,
    vehicle,
)

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)


async def test_lean_read_matches_the_session_contexts(tmp_path: Path) -> None:
    async with frequency_nodes(f"sqlite+aiosqlite:///{tmp_path / 'reads.db'}", 1) as nodes:
        db, service = nodes.dbs[0], nodes.services[0]
        stations = [f"CS{k}" for k in range(6)]
        await plug_in(db, stations, T0 - timedelta(hours=2), soc_pct=70.0)
        await report_soc(db, "CS0", 64.0, T0 - timedelta(minutes=5))  # the latest counts

        async def arrange(c: AsyncConnection) -> None:
            # CS1: its transaction ended -> not connected.
            ended = Transaction(
                "CS1", "tx-CS1", TransactionState.ENDED, evse_id=1, started_at=T0, ended_at=T0
            )
            await repo.save_transaction(c, ended, T0)
            # CS2: a newer transaction on EVSE 2 (the vehicle is on EVSE 1) and none on EVSE 1.
            await repo.save_transaction(
                c, Transaction("CS2", "tx-CS2", TransactionState.ENDED, evse_id=1), T0
            )
            await repo.save_transaction(
                c, Transaction("CS2", "other", TransactionState.ACTIVE, evse_id=2), T0
            )
            # CS3: a new transaction without SoC: the latest SoC of the EVSE is used.
            await repo.save_transaction(
                c, Transaction("CS3", "tx-CS3", TransactionState.ENDED, evse_id=1), T0
            )
            await repo.save_transaction(
                c,
                Transaction("CS3", "new", TransactionState.ACTIVE, evse_id=1, started_at=T0),
                T0,
            )
            # CS4: no SoC at all -> not connected.
            await c.execute(t.meter_values.delete().where(t.meter_values.c.station_id == "CS4"))
            # CS5's vehicle is unlinked; a vehicle on CS5 EVSE 2 has no transaction there.
            await vrepo.save_vehicle(c, vehicle(5), T0)
            await vrepo.save_vehicle(c, vehicle(6, "CS5", evse_id=2), T0)
            await repo.insert_meter_samples(c, [soc_sample("CS5", 90.0, T0)])

        await db.write(arrange)
        full = {
            ctx.vehicle.id: (ctx.transaction.transaction_id if ctx.transaction else None, ctx.soc)
            for ctx in await service._connected(T0)
        }
        lean = {
            p.vehicle.id: (p.transaction.transaction_id, p.soc) for p in await service._plugged()
        }
        assert lean == full
        assert lean == {"ev0": ("tx-CS0", 0.64), "ev3": ("new", 0.7)}
