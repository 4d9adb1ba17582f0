"""csms/persistence/bulk.py: rows handed to the driver as tuples are stored exactly as
SQLAlchemy's own executemany stores them (SQLite here; PostgreSQL with CSMS_TEST_POSTGRES_URL)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from csms.persistence import tables as t
from csms.persistence.bulk import execute_many
from csms.persistence.migrate import upgrade_async
from csms.persistence.repositories.statements import dialect_insert
from tests.support.csms_db import fresh_postgres_database, postgres_url_or_skip

T0 = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)
offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
aware = st.datetimes(
    min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31), timezones=offsets
)


@pytest.mark.parametrize("dialect", [sqlite.dialect(), postgresql.dialect()], ids=lambda d: d.name)
@given(value=aware)
def test_utc_datetime_driver_bind_is_sqlalchemys_processor(dialect: Any, value: datetime) -> None:
    column_type = t.UtcDateTime()
    sqlalchemy_form = column_type.dialect_impl(dialect).bind_processor(dialect)
    assert t.UtcDateTime.driver_bind(dialect.name)(value) == (
        sqlalchemy_form(value)
        if sqlalchemy_form
        else column_type.process_bind_param(value, dialect)
    )


def test_utc_datetime_driver_bind_refuses_naive_datetimes_like_the_type() -> None:
    with pytest.raises(ValueError, match="naive"):
        t.UtcDateTime.driver_bind("sqlite")(datetime(2026, 1, 1))
    assert t.UtcDateTime.driver_bind("sqlite")(None) is None


def _rows(station: str) -> dict[sa.Table, list[dict[str, Any]]]:
    def meter(i: int, **kw: Any) -> dict[str, Any]:
        row = {
            "station_id": station,
            "evse_id": 1,
            "transaction_id": "tx-1",
            "timestamp": T0 + timedelta(seconds=i),
            "sample_count": 1,
            "sampled_values": f'[["SoC",{50.5 + i},null,"EV","Sample.Periodic","Percent"]]',
        }
        row.update(kw)
        return row

    return {
        t.meter_values: [
            meter(0),
            meter(1, sample_count=2, sampled_values="[]"),
            meter(2, evse_id=None),
        ],
        t.transaction_events: [
            {
                "station_id": station,
                "transaction_id": "tx-1",
                "seq_no": seq,
                "event_type": "Updated",
                "trigger_reason": "MeterValuePeriodic",
                "timestamp": T0.astimezone(timezone(timedelta(hours=10))) + timedelta(seconds=seq),
                "offline": seq == 2,
                "payload": {"seqNo": seq, "nested": [1, 2.5, None, "é"]},
                "received_at": T0,
            }
            for seq in (1, 2)
        ],
        t.events: [
            {
                "station_id": station,
                "kind": "Note",
                "timestamp": None,
                "payload": None,  # JSON null, as SQLAlchemy's processor stores it
                "received_at": T0,
            }
        ],
    }


async def _stored(engine: AsyncEngine, table: sa.Table, station: str) -> list[tuple[Any, ...]]:
    """The rows as the database holds them (raw driver values), without id and station."""
    columns = [c.name for c in table.columns if c.name not in ("id", "station_id")]
    quoted = ", ".join(f'"{c}"' for c in columns)
    async with engine.connect() as conn:
        result = await conn.exec_driver_sql(
            f'SELECT {quoted} FROM "{table.name}" WHERE station_id = '
            + ("?" if engine.dialect.name == "sqlite" else "$1")
            + " ORDER BY id",
            (station,),
        )
        return [tuple(r) for r in result]


async def _same_rows_both_ways(engine: AsyncEngine) -> None:
    dialect = engine.dialect.name
    async with engine.begin() as conn:
        for table, rows in _rows("FAST").items():
            await execute_many(conn, dialect_insert(dialect, table), rows)
        for table, rows in _rows("SQLA").items():
            await conn.execute(dialect_insert(dialect, table), rows)
    for table in _rows("x"):
        fast, sqla = await _stored(engine, table, "FAST"), await _stored(engine, table, "SQLA")
        assert fast == sqla and len(fast) == len(_rows("x")[table]), table.name


@contextlib.asynccontextmanager
async def _sqlite(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bulk.db'}"
    await upgrade_async(url)
    engine = create_async_engine(url)
    try:
        yield engine
    finally:
        await engine.dispose()


async def test_sqlite_rows_through_the_driver_are_stored_as_sqlalchemy_stores_them(
    tmp_path: Path,
) -> None:
    async with _sqlite(tmp_path) as engine:
        await _same_rows_both_ways(engine)


async def test_postgres_rows_through_the_driver_are_stored_as_sqlalchemy_stores_them() -> None:
    base = postgres_url_or_skip()
    async with fresh_postgres_database(base) as url:
        await upgrade_async(url)
        engine = create_async_engine(url)
        try:
            await _same_rows_both_ways(engine)
        finally:
            await engine.dispose()


async def test_rows_with_other_keys_than_the_first_take_sqlalchemys_path(tmp_path: Path) -> None:
    # The tuple form needs every row's keys to be the first row's; a row with another key of
    # the same count goes to SQLAlchemy's path and fails there exactly as it does on its own.
    first, second = _rows("MIXED")[t.meter_values][:2]
    odd = {k: v for k, v in second.items() if k != "sample_count"} | {"bogus": "x"}
    insert = dialect_insert("sqlite", t.meter_values)
    async with _sqlite(tmp_path) as engine:
        failures = []
        for run in (execute_many, lambda conn, stmt, rows: conn.execute(stmt, rows)):
            with pytest.raises(sa.exc.StatementError) as caught:
                async with engine.begin() as conn:
                    await run(conn, insert, [first, odd])
            failures.append((type(caught.value), str(caught.value.orig)))
        assert failures[0] == failures[1]
        async with engine.begin() as conn:  # reordered keys are the same keys
            await execute_many(conn, insert, [first, dict(reversed(list(second.items())))])
        assert len(await _stored(engine, t.meter_values, "MIXED")) == 2
