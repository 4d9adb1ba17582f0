"""Meter values stored one row per MeterValue (migration 0017, issue 17): what is written reads
back sampled value for sampled value, a repeated sample is stored once (the guarantee of
0005), the readers page as before, and 0017 moves stored data both ways. SQLite here,
PostgreSQL as well with CSMS_TEST_POSTGRES_URL."""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import struct
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from csms.domain.models import MeterSample
from csms.persistence import meter_packing as packing
from csms.persistence import migrate
from csms.persistence import repositories as repo
from csms.persistence import tables as t
from tests.support.csms_db import fresh_postgres_database, postgres_url_or_skip, run_sql

T0 = datetime(2026, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
# OCPP 2.0.1 MeasurandEnumType / PhaseEnumType / LocationEnumType / ReadingContextEnumType
# (a few of each) and None where the field is optional; one measurand beyond ASCII, whose
# token is longer in bytes than in characters (the measurand filter counts bytes).
MEASURANDS = (
    "Energy.Active.Import.Register",
    "Power.Active.Import",
    "SoC",
    "Voltage",
    "Temp.\u00b0\u03a9",
)
PHASES = (None, "L1", "L2-N", "N")
LOCATIONS = (None, "Outlet", "EV", "Inlet")
CONTEXTS = (None, "Sample.Periodic", "Transaction.End", "Sample.Clock")
UNITS = (None, "Wh", "kW", "Percent", "V")

values = st.floats(min_value=-1e15, max_value=1e15, allow_nan=False) | st.integers(
    -(10**9), 10**9
).map(float)


@st.composite
def meter_value(draw: Any) -> list[MeterSample]:
    """One MeterValue of station S: a timestamp (few, so repeats happen), a transaction or
    none, an EVSE or none, and 1-6 sampled values."""
    timestamp = T0 + timedelta(seconds=draw(st.integers(0, 3)))
    tx = draw(st.sampled_from((None, "TX-1", "TX-2")))
    evse = draw(st.sampled_from((None, 1, 2)))
    return [
        MeterSample(
            station_id="S",
            timestamp=timestamp,
            value=draw(values),
            measurand=draw(st.sampled_from(MEASURANDS)),
            evse_id=evse,
            transaction_id=tx,
            phase=draw(st.sampled_from(PHASES)),
            location=draw(st.sampled_from(LOCATIONS)),
            context=draw(st.sampled_from(CONTEXTS)),
            unit=draw(st.sampled_from(UNITS)),
        )
        for _ in range(draw(st.integers(1, 6)))
    ]


def _fields(s: MeterSample) -> tuple[Any, ...]:
    return (
        s.timestamp,
        s.transaction_id,
        s.evse_id,
        s.measurand,
        s.phase,
        s.location,
        s.context,
        s.value,
        s.unit,
    )


def expected(batches: list[list[list[MeterSample]]]) -> list[tuple[Any, ...]]:
    """What reading back gives: each (station, transaction, EVSE, timestamp, measurand, phase,
    location, context) once, the first value written; in time order, a timestamp's sampled
    values grouped per MeterValue (transaction, EVSE) in the order each was first stored."""
    groups: dict[tuple[Any, ...], dict[tuple[Any, ...], MeterSample]] = {}
    for batch in batches:
        for mv in batch:
            for s in mv:
                key = packing.row_key(s.station_id, s.transaction_id, s.evse_id, s.timestamp)
                sample_key = (s.measurand, s.phase, s.location, s.context)
                groups.setdefault(key, {}).setdefault(sample_key, s)
    ordered = sorted(groups.items(), key=lambda item: item[0][3])  # stable: first stored first
    return [_fields(s) for _, samples in ordered for s in samples.values()]


async def _write(engine: AsyncEngine, batches: list[list[list[MeterSample]]]) -> None:
    for batch in batches:  # one group commit each
        async with engine.begin() as conn:
            await repo.insert_meter_samples(conn, [s for mv in batch for s in mv])


async def _read_back(engine: AsyncEngine) -> list[tuple[Any, ...]]:
    async with engine.connect() as conn:
        return [_fields(s) for s in await repo.list_meter_samples(conn, "S")]


async def _paged(engine: AsyncEngine, limit: int, **where: Any) -> tuple[list[Any], int]:
    items: list[Any] = []
    offset = 0
    async with engine.connect() as conn:
        while True:
            page = await repo.page_meter_samples(conn, "S", offset=offset, limit=limit, **where)
            items += [_fields(s) for s in page.items]
            offset += limit
            if offset >= page.total:
                return items, page.total


@contextlib.asynccontextmanager
async def _database(url: str | None) -> AsyncIterator[AsyncEngine]:
    """A migrated database: PostgreSQL beside `url`, else a temporary SQLite file."""
    if url is None:
        with tempfile.TemporaryDirectory() as tmp:
            sqlite_url = f"sqlite+aiosqlite:///{Path(tmp) / 'm.db'}"
            await migrate.upgrade_async(sqlite_url)
            engine = create_async_engine(sqlite_url)
            try:
                yield engine
            finally:
                await engine.dispose()
        return
    async with fresh_postgres_database(url) as pg_url:
        await migrate.upgrade_async(pg_url)
        engine = create_async_engine(pg_url)
        try:
            yield engine
        finally:
            await engine.dispose()


async def _round_trip(engine: AsyncEngine, batches: list[list[list[MeterSample]]]) -> None:
    await run_sql_on(engine, "DELETE FROM meter_values")
    await _write(engine, batches)
    want = expected(batches)
    assert await _read_back(engine) == want
    paged, total = await _paged(engine, limit=3)
    assert (paged, total) == (want, len(want))
    for measurand in ("SoC", "Voltage", MEASURANDS[-1]):
        only, total = await _paged(engine, limit=2, measurand=measurand)
        assert only == [w for w in want if w[3] == measurand] and total == len(only)


async def run_sql_on(engine: AsyncEngine, sql: str) -> None:
    async with engine.begin() as conn:
        await conn.exec_driver_sql(sql)


# Group commits (1-3), each of 1-6 MeterValues.
batches_of_meter_values = st.lists(
    st.lists(meter_value(), min_size=1, max_size=6), min_size=1, max_size=3
)


def _run_examples(url: str | None, examples: int) -> None:
    """Hypothesis drives a synchronous test; each example runs on one database kept for all."""
    loop = asyncio.new_event_loop()
    holder: dict[str, Any] = {}
    database = _database(url)
    holder["engine"] = loop.run_until_complete(database.__aenter__())

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))
    @given(batches=batches_of_meter_values)
    def check(batches: list[list[list[MeterSample]]]) -> None:
        loop.run_until_complete(_round_trip(holder["engine"], batches))

    try:
        check()
    finally:
        loop.run_until_complete(database.__aexit__(None, None, None))
        loop.close()


def test_any_meter_values_written_read_back_as_sampled_values_sqlite() -> None:
    _run_examples(None, 150)


@pytest.mark.postgres
def test_any_meter_values_written_read_back_as_sampled_values_postgres() -> None:
    _run_examples(postgres_url_or_skip(), 60)


# ---- dedupe: the guarantee of 0005, per MeterValue row ---------------------------------------


def _sample(seconds: int, value: float, **kw: Any) -> MeterSample:
    return MeterSample("S", T0 + timedelta(seconds=seconds), value, **kw)


async def _dedupe(engine: AsyncEngine) -> None:
    energy = {"measurand": "Energy.Active.Import.Register", "transaction_id": "TX", "evse_id": 1}
    first = [
        _sample(0, 100, **energy),
        _sample(0, 7, measurand="SoC", evse_id=1, transaction_id="TX"),
    ]
    await _write(engine, [[first]])
    # Re-sent after a reconnect (another value would be a different reading: the first stays).
    await _write(engine, [[first], [[_sample(0, 999, **energy)]]])
    # The same timestamp again, in one batch twice, with a sample the row lacks (another
    # context) and one it has: the new one is added to the row, the known one stays.
    more = [_sample(0, 150, context="Transaction.End", **energy), _sample(0, 101, **energy)]
    await _write(engine, [[more, more]])
    # Another EVSE or no transaction at the same time: other MeterValues, other rows.
    await _write(engine, [[[_sample(0, 5, evse_id=2, transaction_id="TX")], [_sample(0, 6)]]])
    assert await _read_back(engine) == [
        (T0, "TX", 1, "Energy.Active.Import.Register", None, None, None, 100.0, None),
        (T0, "TX", 1, "SoC", None, None, None, 7.0, None),
        (T0, "TX", 1, "Energy.Active.Import.Register", None, None, "Transaction.End", 150.0, None),
        (T0, "TX", 2, "Energy.Active.Import.Register", None, None, None, 5.0, None),
        (T0, None, None, "Energy.Active.Import.Register", None, None, None, 6.0, None),
    ]
    async with engine.connect() as conn:
        rows = (
            await conn.exec_driver_sql(
                "SELECT transaction_id, evse_id, sample_count FROM meter_values ORDER BY id"
            )
        ).all()
    assert [tuple(r) for r in rows] == [("TX", 1, 3), ("TX", 2, 1), (None, None, 1)]


async def test_a_repeated_sample_is_stored_once_sqlite() -> None:
    async with _database(None) as engine:
        await _dedupe(engine)


@pytest.mark.postgres
async def test_a_repeated_sample_is_stored_once_postgres() -> None:
    async with _database(postgres_url_or_skip()) as engine:
        await _dedupe(engine)


def test_packing_keeps_every_field_and_leaves_out_trailing_nulls() -> None:
    s = _sample(0, -0.5, measurand="Voltage", phase="L1-N", location=None, unit="V")
    rows = packing.pack([s, s], evse_id=3)  # a sample repeated in one message: once
    (row,) = rows.values()
    assert row.encoded() == '[["Voltage",-0.5,"L1-N",null,null,"V"]]'
    assert row.evse_id == 3
    (back,) = packing.unpack("S", 3, None, T0, row.encoded())
    assert back == MeterSample("S", T0, -0.5, "Voltage", evse_id=3, phase="L1-N", unit="V")
    assert (
        packing.pack([_sample(0, 1.0, measurand="SoC")])[
            packing.row_key("S", None, None, T0)
        ].encoded()
        == '[["SoC",1.0]]'
    )


# ---- migration 0017 with data -----------------------------------------------------------------

# (transaction, EVSE, second, measurand, phase, location, context, value, unit) as 0005 stored
OLD_ROWS: list[tuple[Any, ...]] = [
    ("TX1", 1, 0, "Energy.Active.Import.Register", None, None, "Transaction.Begin", 0.0, "Wh"),
    ("TX1", 1, 0, "Voltage", "L1-N", "Outlet", None, 230.5, "V"),
    (None, 2, 0, "Power.Active.Import", None, None, None, 7000.0, "W"),  # other row, same time
    ("TX1", 1, 0, "Voltage", "L2-N", "Outlet", None, 231.0, "V"),
    ("TX1", 1, 10, "Energy.Active.Import.Register", None, None, None, 1500.25, "Wh"),
    ("TX1", None, 10, "SoC", None, "EV", None, 55.0, "Percent"),
    (None, None, 20, "Energy.Active.Import.Register", None, None, None, -1e15, None),
]


def _old_insert_sql(station: str, row: tuple[Any, ...]) -> tuple[str, dict[str, Any]]:
    tx, evse, second, measurand, phase, location, context, value, unit = row
    return (
        "INSERT INTO meter_values (station_id, evse_id, transaction_id, timestamp, measurand,"
        " phase, location, context, value, unit) VALUES (:station, :evse, :tx, :ts, :m, :p,"
        " :l, :c, :v, :u)",
        {
            "station": station,
            "evse": evse,
            "tx": tx,
            "ts": T0 + timedelta(seconds=second),
            "m": measurand,
            "p": phase,
            "l": location,
            "c": context,
            "v": value,
            "u": unit,
        },
    )


async def _migration_0017(url: str) -> None:
    await migrate.upgrade_async(url, "0016")
    for station in ("A", "B"):
        for row in OLD_ROWS:
            sql, params = _old_insert_sql(station, row)
            await run_sql(url, sql, **params)
    await migrate.upgrade_async(url, "0017")
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            for station in ("A", "B"):
                got = [
                    (
                        s.transaction_id,
                        s.evse_id,
                        int((s.timestamp - T0).total_seconds()),
                        *(s.measurand, s.phase, s.location, s.context, s.value, s.unit),
                    )
                    for s in await repo.list_meter_samples(conn, station)
                ]
                # Time order; at 0 s TX1's MeterValue first (its first sample came first).
                assert got == [OLD_ROWS[i] for i in (0, 1, 3, 2, 4, 5, 6)]
                tx_page = await repo.page_meter_samples(conn, station, transaction_id="TX1")
                assert [s.value for s in tx_page.items] == [0.0, 230.5, 231.0, 1500.25, 55.0]
    finally:
        await engine.dispose()
    # One row per MeterValue: (TX1, 1, 0 s), (-, 2, 0 s), (TX1, 1, 10 s), (TX1, -, 10 s) and
    # (-, -, 20 s), for each of the two stations
    assert await run_sql(url, "SELECT count(*), sum(sample_count) FROM meter_values") == [(10, 14)]
    await migrate.downgrade_async(url, "0016")
    stored = await run_sql(
        url,
        "SELECT station_id, transaction_id, evse_id, timestamp, measurand, phase, location,"
        " context, value, unit FROM meter_values ORDER BY id",
    )
    want = []
    for station in ("A", "B"):
        for i in (0, 1, 3, 2, 4, 5, 6):
            tx, evse, second, *rest = OLD_ROWS[i]
            want.append((station, tx, evse, T0 + timedelta(seconds=second), *rest))

    def normal(row: tuple[Any, ...]) -> tuple[Any, ...]:  # SQLite hands back text timestamps
        ts = row[3]
        if isinstance(ts, str):
            ts = datetime.fromisoformat(ts).replace(tzinfo=UTC)
        return (*row[:3], ts, *row[4:])

    assert sorted(map(normal, stored), key=repr) == sorted(want, key=repr)
    # 0005's unique sample key is back: the same sample again is refused.
    columns = "station_id, evse_id, transaction_id, timestamp, measurand, phase, location, context"
    with pytest.raises(Exception, match=r"(?i)unique"):
        await run_sql(
            url,
            f"INSERT INTO meter_values ({columns}, value, unit) SELECT {columns}, value + 1, unit"
            " FROM meter_values WHERE id = (SELECT min(id) FROM meter_values)",
        )
    await migrate.upgrade_async(url)


async def test_0017_moves_stored_samples_both_ways_sqlite(tmp_path: Path) -> None:
    await _migration_0017(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")


@pytest.mark.postgres
async def test_0017_moves_stored_samples_both_ways_postgres() -> None:
    async with fresh_postgres_database(postgres_url_or_skip()) as url:
        await _migration_0017(url)


# ---- migration 0017 in SQL: the same rows as packing them in Python ---------------------------

ODD = ('q"uote', "back\\slash", "n\u00e9w\nline", "tab\t")  # strings JSON must escape


def _awkward_value(rng: random.Random) -> float:
    """Values within the protocol edge's bound whose text is easy to get wrong."""
    kind = rng.randrange(6)
    if kind == 0:
        return rng.choice((0.0, -0.0, 1e15, -1e15, 5e-324, 0.1, 0.30000000000000004, 1e-7))
    if kind == 1:  # any double in bound, every bit pattern of the mantissa
        bits = struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0]
        return bits if math.isfinite(bits) and abs(bits) <= 1e15 else rng.uniform(-1e15, 1e15)
    if kind == 2:
        return float(rng.randrange(-(10**15), 10**15))
    if kind == 3:
        return round(rng.uniform(-1e6, 1e6), rng.randrange(4))
    return rng.uniform(-1.0, 1.0) * 10.0 ** rng.randrange(-30, 15)


def _old_samples(seed: int, n: int) -> list[dict[str, Any]]:
    """`n` rows as 0005 stored them, each 0005 sample key once (its unique index)."""
    rng = random.Random(seed)
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    while len(rows) < n:
        row = {
            "station": rng.choice(("A", "B")),
            "tx": rng.choice((None, "TX1", ODD[0])),
            "evse": rng.choice((None, 1, 2)),
            "ts": T0 + timedelta(seconds=rng.randrange(40)),
            "m": rng.choice((*MEASURANDS, ODD[0])),
            "p": rng.choice(PHASES),
            "l": rng.choice((*LOCATIONS, 'a\\"\u00e9\n')),  # location: 8 characters at most
            "c": rng.choice(CONTEXTS),
            "v": _awkward_value(rng),
            "u": rng.choice((*UNITS, *ODD)),
        }
        key = (row["station"], row["tx"] or "", row["evse"] or -1, row["ts"], row["m"])
        rows.setdefault(key + tuple(row[f] or "" for f in "plc"), row)
    return list(rows.values())


def _exact(value: Any) -> str:
    """A float's exact identity (sign of zero included)."""
    return float(value).hex()


def _packed_in_python(old: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """What the row-by-row upgrade wrote for `old` (id, station, EVSE, transaction, timestamp,
    measurand, phase, location, context, value, unit; in the order of station, timestamp,
    id): per (station, timestamp) the groups of (transaction, EVSE) in the order of their first
    sample, each its first sample's head and the samples packed without trailing nulls."""
    groups: dict[tuple[Any, ...], list[Any]] = {}
    for _, station, evse, tx, ts, m, p, loc, c, v, u in old:
        key = (station, ts, tx or "", -1 if evse is None else evse)
        group = groups.setdefault(key, [station, evse, tx, ts, []])
        sample = [m, _exact(v), p, loc, c, u]
        while sample[-1] is None:
            sample.pop()
        group[4].append(sample)
    return [(s, e, tx, ts, len(samples), samples) for s, e, tx, ts, samples in groups.values()]


def _normal_time(value: Any) -> datetime:
    if isinstance(value, str):  # SQLite hands back text
        parsed = datetime.fromisoformat(value)
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed
    return value


async def _migration_0017_in_sql(url: str) -> None:
    await migrate.upgrade_async(url, "0016")
    old = _old_samples(17, 1500)
    engine = create_async_engine(url)
    stamp = t.UtcDateTime.driver_bind(engine.dialect.name)  # as the app writes it
    columns = "station_id, evse_id, transaction_id, timestamp, measurand, phase, location"
    try:
        async with engine.begin() as conn:
            await conn.execute(
                sa.text(
                    f"INSERT INTO meter_values ({columns}, context, value, unit) VALUES"
                    " (:station, :evse, :tx, :ts, :m, :p, :l, :c, :v, :u)"
                ),
                [r | {"ts": stamp(r["ts"])} for r in old],
            )
        select_old = f"SELECT id, {columns}, context, value, unit FROM meter_values"
        async with engine.connect() as conn:
            stored = [tuple(r) for r in await conn.execute(sa.text(select_old))]
        stored = [(*r[:4], _normal_time(r[4]), *r[5:]) for r in stored]
        stored.sort(key=lambda r: (r[1], r[4], r[0]))  # station, timestamp, id
        want = _packed_in_python(stored)
        await migrate.upgrade_async(url, "0017")
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.text(
                        "SELECT id, station_id, evse_id, transaction_id, timestamp, sample_count,"
                        " sampled_values FROM meter_values ORDER BY id"
                    )
                )
            ).all()
        assert [r.id for r in rows] == list(range(1, len(want) + 1))
        got = []
        for r in rows:
            samples = orjson.loads(r.sampled_values)
            for sample in samples:
                sample[1] = _exact(sample[1])
                # the token the measurand filter looks for: compact, quoted as orjson does
                assert packing.measurand_token(sample[0]) in r.sampled_values
            head = (r.station_id, r.evse_id, r.transaction_id, _normal_time(r.timestamp))
            got.append((*head, r.sample_count, samples))
        assert got == want
        await migrate.downgrade_async(url, "0016")
        async with engine.connect() as conn:
            back = [tuple(r) for r in await conn.execute(sa.text(select_old + " ORDER BY id"))]
        unpacked = [
            (s, e, tx, ts, *(sample + [None] * (6 - len(sample))))
            for s, e, tx, ts, _, samples in want
            for sample in samples
        ]
        assert [
            (s, e, tx, _normal_time(ts), m, p, loc, c, _exact(v), u)
            for _, s, e, tx, ts, m, p, loc, c, v, u in back
        ] == [(s, e, tx, ts, m, p, loc, c, v, u) for s, e, tx, ts, m, v, p, loc, c, u in unpacked]
        assert [r[0] for r in back] == list(range(1, len(back) + 1))
    finally:
        await engine.dispose()


async def test_0017_in_sql_packs_as_python_did_and_back_sqlite(tmp_path: Path) -> None:
    await _migration_0017_in_sql(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")


@pytest.mark.postgres
async def test_0017_in_sql_packs_as_python_did_and_back_postgres() -> None:
    async with fresh_postgres_database(postgres_url_or_skip()) as url:
        await _migration_0017_in_sql(url)


async def _many_of_one_measurand(engine: AsyncEngine) -> None:
    """Twelve sampled values of one measurand in one MeterValue: its filtered total counts
    each (the count divides bytes taken out by the token's bytes, not its characters)."""
    measurand = MEASURANDS[-1]
    phases = ("L1", "L2", "L3", "N", "L1-N", "L2-N", "L3-N", "L1-L2", "L2-L3", "L3-L1", None)
    samples = [_sample(0, float(i), measurand=measurand, phase=p) for i, p in enumerate(phases)]
    samples += [_sample(0, 99.0, measurand=measurand, context="Sample.Clock")]
    samples += [_sample(0, 7.0, measurand="SoC")]
    await _write(engine, [[samples]])
    async with engine.connect() as conn:
        # a page of one row (the total counted in SQL, not from the rows read)
        page = await repo.page_meter_samples(conn, "S", measurand=measurand, limit=1)
        assert page.total == 12 and [s.value for s in page.items] == [0.0]
        page = await repo.page_meter_samples(conn, "S", measurand=measurand, offset=10, limit=1)
        assert page.total == 12 and [s.value for s in page.items] == [10.0]
        assert (await repo.page_meter_samples(conn, "S", measurand="SoC")).total == 1


async def test_a_measurand_counted_in_bytes_sqlite() -> None:
    async with _database(None) as engine:
        await _many_of_one_measurand(engine)


@pytest.mark.postgres
async def test_a_measurand_counted_in_bytes_postgres() -> None:
    async with _database(postgres_url_or_skip()) as engine:
        await _many_of_one_measurand(engine)
