"""The meter-value endpoints answer, byte for byte, the JSON of pydantic's PageRead over the
repository's MeterSamples (the answer before issue 17's fast path), on SQLite and PostgreSQL:
rows of several sampled values, awkward floats, missing fields, unicode, measurand filters,
pages cut inside a row."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from csms.api.schemas import MeterValueRead, PageRead, page_read
from csms.domain.models import MeterSample, Transaction, TransactionState
from csms.persistence import repositories as repo
from tests.support.api_harness import ApiHarness, api_harness
from tests.support.csms_db import fresh_postgres_database, postgres_url_or_skip

T0 = datetime(2026, 3, 1, 8, 0, 0, 250_000, tzinfo=UTC)
VALUES = [0.1, 1e-7, 1e16, -0.0, 123456789012345.6, 5e-324, 42.0, -3200.5, 1e15]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def api(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ApiHarness]:
    if request.param == "sqlite":
        async with api_harness(tmp_path) as harness:
            await harness.add_station("CS1")
            yield harness
        return
    async with (
        fresh_postgres_database(postgres_url_or_skip()) as url,
        api_harness(tmp_path, database_url=url) as harness,
    ):
        await harness.add_station("CS1")
        yield harness


def _samples() -> list[MeterSample]:
    out = []
    for n in range(40):
        at = T0 + timedelta(seconds=10 * n)
        tx = "tx-ü" if n < 30 else None  # the last ones outside the transaction
        evse = 1 if n % 7 else None
        out += [
            MeterSample(
                "CS1",
                at,
                VALUES[n % len(VALUES)],
                "Energy.Active.Import.Register",
                evse,
                tx,
                unit="Wh",
            ),
            MeterSample(
                "CS1", at, float(n), "SoC", evse, tx, context="Sample.Periodic", unit="Percent"
            ),
        ]
        if n % 3 == 0:  # three phases: one measurand three times in a row
            out += [
                MeterSample(
                    "CS1",
                    at,
                    230.0 + k / 3,
                    "Voltage",
                    evse,
                    tx,
                    phase=f"L{k}-N",
                    location="Outlet",
                    unit="V ✓",
                )
                for k in (1, 2, 3)
            ]
    return out


async def _seed(api: ApiHarness) -> None:
    tx = Transaction(
        station_id="CS1",
        transaction_id="tx-ü",
        state=TransactionState.ACTIVE,
        evse_id=1,
        connector_id=1,
        id_token="TOKEN-1",
        id_token_type="ISO14443",
        started_at=T0,
        ended_at=None,
        first_seq_no=0,
        last_seq_no=0,
        seq_count=1,
    )

    async def write(conn: AsyncConnection) -> None:
        await repo.save_transaction(conn, tx, T0)
        await repo.insert_meter_samples(conn, _samples())

    await api.services.db.write(write)


async def _expected(api: ApiHarness, **query: object) -> bytes:
    async with api.services.db.read() as conn:
        page = await repo.page_meter_samples(conn, "CS1", **query)  # type: ignore[arg-type]
    read: PageRead[MeterValueRead] = page_read(MeterValueRead, page)
    return read.model_dump_json().encode()


PAGES = [
    {},
    {"limit": 7},
    {"offset": 5, "limit": 4},  # starts inside a row
    {"offset": 1, "limit": 1000},
    {"offset": 500},
    {"measurand": "Voltage", "limit": 4},
    {"measurand": "Voltage", "offset": 2, "limit": 5},
    {"measurand": "SoC", "offset": 3},
    {"measurand": "Nope"},
]


async def test_a_transactions_pages_are_pydantics_bytes(api: ApiHarness) -> None:
    await _seed(api)
    for params in PAGES:
        response = await api.client.get(
            "/api/v1/stations/CS1/transactions/tx-ü/meter-values", params=params
        )
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        want = await _expected(api, transaction_id="tx-ü", **params)
        assert response.content == want, params


async def test_a_stations_range_pages_are_pydantics_bytes(api: ApiHarness) -> None:
    await _seed(api)
    since, until = T0 + timedelta(seconds=15), T0 + timedelta(seconds=385)
    for params in PAGES:
        query = {"since": since.isoformat(), "until": until.isoformat(), **params}
        response = await api.client.get("/api/v1/stations/CS1/meter-values", params=query)
        assert response.status_code == 200
        want = await _expected(api, since=since, until=until, **params)
        assert response.content == want, params
        assert response.json()["total"] > 0 or params.get("measurand") == "Nope"
