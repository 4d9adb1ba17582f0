"""V2G on several CSMS nodes, in one process: each node has its own Database (engine and
group-commit writer) on one shared database, its own router and V2gService. Stations,
vehicles, running transactions and SoC samples are written straight to the database."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from csms.domain.models import (
    BootPolicy,
    MeterSample,
    SecurityProfile,
    Transaction,
    TransactionState,
)
from csms.domain.v2g_records import PriceRow, VehicleRecord
from csms.persistence import migrate
from csms.persistence import repositories as repo
from csms.persistence.database import Database
from csms.persistence.repositories import v2g as vrepo
from csms.services.v2g import V2gService, V2gSettings
from tests.support.csms_db import fresh_postgres_database, postgres_url_or_skip


class CountingSender:
    """A node's CommandSender that answers Accepted and records what it sent."""

    def __init__(self, node: str, sent: list[tuple[str, str, str, dict[str, Any]]]) -> None:
        self.node = node
        self.sent = sent  # shared by the nodes: (node, station, action, payload) in order

    async def send(
        self,
        station_id: str,
        action: str,
        payload: dict[str, Any],
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> dict[str, Any]:
        self.sent.append((self.node, station_id, action, payload))
        return {"status": "Accepted"}


@dataclass
class Nodes:
    dbs: list[Database]
    services: list[V2gService] = field(default_factory=list)
    sent: list[tuple[str, str, str, dict[str, Any]]] = field(default_factory=list)

    def sends(self, action: str) -> list[tuple[str, str]]:
        """(node, station) of each `action` sent, in order."""
        return [(n, s) for n, s, a, _ in self.sent if a == action]


@contextlib.asynccontextmanager
async def node_databases(url: str, count: int = 2) -> AsyncIterator[list[Database]]:
    """`count` started Database objects (one per node) on the database at `url`, migrated."""
    await migrate.upgrade_async(url)
    dbs = [Database(url) for _ in range(count)]
    for db in dbs:
        await db.start()
    try:
        yield dbs
    finally:
        for db in dbs:
            await db.close()


# Parametrize a `db` fixture with these to run a repository test on both databases.
DATABASE_KINDS = ("sqlite", pytest.param("postgresql", marks=pytest.mark.postgres))


@contextlib.asynccontextmanager
async def one_database(kind: str, tmp_path: Path) -> AsyncIterator[Database]:
    """One started, migrated Database: a SQLite file in `tmp_path`, or ("postgresql") a fresh
    PostgreSQL database dropped afterwards (skipped with a reason where none is configured)."""
    if kind == "sqlite":
        async with node_databases(f"sqlite+aiosqlite:///{tmp_path / 'test.db'}", 1) as dbs:
            yield dbs[0]
        return
    async with (
        fresh_postgres_database(postgres_url_or_skip()) as url,
        node_databases(url, 1) as dbs,
    ):
        yield dbs[0]


@contextlib.asynccontextmanager
async def frequency_nodes(
    url: str, count: int = 2, settings: V2gSettings | None = None
) -> AsyncIterator[Nodes]:
    """Nodes whose V2gService sends through a CountingSender (the frequency rule does not
    care which node holds a station)."""
    async with node_databases(url, count) as dbs:
        nodes = Nodes(dbs)
        for k, db in enumerate(dbs):
            nodes.services.append(
                V2gService(db, CountingSender(f"n{k}", nodes.sent), settings=settings)
            )
        try:
            yield nodes
        finally:
            for service in nodes.services:
                await service.close()


def vehicle(
    k: int, station_id: str | None = None, evse_id: int | None = None, **changes: Any
) -> VehicleRecord:
    """ev<k>, on the station's EVSE `evse_id` (1 by default) when a station is given."""
    return VehicleRecord(
        id=f"ev{k}",
        capacity_kwh=40.0,
        chemistry="NMC",
        soc_min=0.0,
        soc_max=1.0,
        max_charge_kw=7.0,
        max_discharge_kw=7.0,
        round_trip_efficiency=0.9,
        driving_reserve_soc=0.2,
        backup_reserve_soc=0.1,
        station_id=station_id,
        evse_id=evse_id if evse_id is not None else 1 if station_id is not None else None,
        **changes,
    )


async def plug_in(
    db: Database,
    stations: Sequence[str],
    started: datetime,
    soc_pct: float = 70.0,
    departure: datetime | None = None,
) -> None:
    """Per station: the station, vehicle ev<k> linked to its EVSE 1, a running transaction
    tx-<station> and a SoC sample at `started`."""

    async def write(conn: Any) -> None:
        for k, station_id in enumerate(stations):
            await repo.insert_station(
                conn, station_id, None, SecurityProfile.BASIC_AUTH, BootPolicy.ACCEPTED, started
            )
            await vrepo.save_vehicle(conn, vehicle(k, station_id, departure=departure), started)
            tx = Transaction(
                station_id,
                f"tx-{station_id}",
                TransactionState.ACTIVE,
                evse_id=1,
                connector_id=1,
                started_at=started,
            )
            await repo.save_transaction(conn, tx, started)
        await repo.insert_meter_samples(conn, [soc_sample(s, soc_pct, started) for s in stations])

    await db.write(write)


def soc_sample(station_id: str, soc_pct: float, at: datetime) -> MeterSample:
    return MeterSample(
        station_id, at, soc_pct, "SoC", evse_id=1, transaction_id=f"tx-{station_id}", unit="Percent"
    )


async def report_soc(db: Database, station_id: str, soc_pct: float, at: datetime) -> None:
    await db.write(lambda c: repo.insert_meter_samples(c, [soc_sample(station_id, soc_pct, at)]))


async def put_prices(service: V2gService, start: datetime, hours: int = 24) -> None:
    """Hourly prices from `start`: cheap for 4 h, a 2 h peak, then mid."""
    await service.put_prices(
        [
            PriceRow(start + timedelta(hours=h), 3600, p, p * 0.9, "test")
            for h in range(hours)
            for p in [10.0 if h < 4 else 60.0 if h < 6 else 20.0]
        ]
    )
