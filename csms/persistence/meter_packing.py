"""The stored form of meter values (issue 17, migration 0017): one row per OCPP MeterValue
(station, transaction, EVSE, timestamp) with its sampled values packed in one text column.

Packing is a compact JSON array, one array per sampled value in the order received:
``[measurand, value, phase, location, context, unit]``, trailing nulls left out. JSON text
(not PostgreSQL JSONB) because the database never looks inside on write: PostgreSQL parses
nothing per row, SQLite and PostgreSQL store the same bytes, orjson packs and unpacks in C,
and a value round-trips exactly (shortest repr of a finite float; the protocol edge bounds
every value to +-1e15). Readers that filter by measurand find rows in SQL by a substring
match (LIKE, or strpos/instr for the API's pages) on `measurand_token` and count that
measurand's sampled values in a row by its occurrences.

Pure: no I/O. The repository (csms/persistence/repositories/meter_values.py) writes and reads
these rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from csms.domain.models import MeterSample

# (measurand, phase, location, context): what makes two sampled values of one MeterValue the
# same sample (0005's unique key beyond station, transaction, EVSE and timestamp).
SampleKey = tuple[str, str | None, str | None, str | None]
# (station, transaction or '', EVSE or -1, timestamp): the unique key of a stored row, NULLs
# folded like the unique index uq_meter_values_reading does.
RowKey = tuple[str, str, int, datetime]


def row_key(
    station_id: str, transaction_id: str | None, evse_id: int | None, timestamp: datetime
) -> RowKey:
    return (station_id, transaction_id or "", -1 if evse_id is None else evse_id, timestamp)


@dataclass(slots=True)
class PackedRow:
    """One MeterValue as it is stored: its sampled values as (key, value, unit), each sample
    key once (the first wins, as 0005's unique index kept the first stored row)."""

    station_id: str
    evse_id: int | None
    transaction_id: str | None
    timestamp: datetime
    samples: list[list[Any]] = field(default_factory=list)
    keys: set[SampleKey] = field(default_factory=set)

    def add(self, sample: list[Any]) -> bool:
        """Add a packed sample unless its key is already there; True when added."""
        key = _sample_key(sample)
        if key in self.keys:
            return False
        self.keys.add(key)
        self.samples.append(sample)
        return True

    def encoded(self) -> str:
        return orjson.dumps(self.samples).decode()


def _sample_key(sample: list[Any]) -> SampleKey:
    n = len(sample)
    return (
        sample[0],
        sample[2] if n > 2 else None,
        sample[3] if n > 3 else None,
        sample[4] if n > 4 else None,
    )


def pack_sample(s: MeterSample) -> list[Any]:
    packed = [s.measurand, s.value, s.phase, s.location, s.context, s.unit]
    while packed[-1] is None:
        packed.pop()
    return packed


def pack(samples: Iterable[MeterSample], evse_id: int | None = None) -> dict[RowKey, PackedRow]:
    """Group samples into stored rows, in arrival order; a sample without an EVSE is stored on
    `evse_id` (the transaction's). Samples sharing a row key and a sample key: the first is
    kept (a MeterValue repeated inside one message is stored once)."""
    rows: dict[RowKey, PackedRow] = {}
    add_to(rows, samples, evse_id)
    return rows


def add_to(
    rows: dict[RowKey, PackedRow], samples: Iterable[MeterSample], evse_id: int | None = None
) -> None:
    """`pack` into an existing dict (the rows of a whole group commit)."""
    row: PackedRow | None = None
    last_key: RowKey | None = None
    for s in samples:
        evse = s.evse_id if s.evse_id is not None else evse_id
        key = row_key(s.station_id, s.transaction_id, evse, s.timestamp)
        if row is None or key != last_key:
            row = rows.get(key)
            if row is None:
                row = rows[key] = PackedRow(s.station_id, evse, s.transaction_id, s.timestamp)
            last_key = key
        row.add(pack_sample(s))


def merge(stored: str, new: PackedRow) -> str | None:
    """The stored samples of a row followed by those of `new` whose key is not among them, as
    the new column value; None when nothing is added (a repeat: the row stays as it is)."""
    merged = PackedRow(new.station_id, new.evse_id, new.transaction_id, new.timestamp)
    for sample in orjson.loads(stored):
        merged.add(sample)
    added = [s for s in new.samples if merged.add(s)]
    return merged.encoded() if added else None


def sample_count(encoded: str) -> int:
    return len(orjson.loads(encoded))


def unpack(
    station_id: str,
    evse_id: int | None,
    transaction_id: str | None,
    timestamp: datetime,
    encoded: str,
    row_id: int | None = None,
    measurands: frozenset[str] | None = None,
) -> Iterator[MeterSample]:
    """The sampled values of one stored row, in stored order (only `measurands` when given)."""
    for sample in orjson.loads(encoded):
        if measurands is not None and sample[0] not in measurands:
            continue
        n = len(sample)
        yield MeterSample(
            station_id=station_id,
            timestamp=timestamp,
            value=float(sample[1]),
            measurand=sample[0],
            evse_id=evse_id,
            transaction_id=transaction_id,
            phase=sample[2] if n > 2 else None,
            location=sample[3] if n > 3 else None,
            context=sample[4] if n > 4 else None,
            unit=sample[5] if n > 5 else None,
            id=row_id,
        )


def measurand_token(measurand: str) -> str:
    """How `measurand` begins a packed sampled value: ``["SoC",``. Exact: only a sample's own
    array opens with ``["`` (a quote inside a string is escaped), and every packed sample has a
    value after its measurand. So a LIKE on it finds exactly the rows holding the measurand and
    its number of occurrences in a row is that row's number of such sampled values."""
    return "[" + orjson.dumps(measurand).decode() + ","


@dataclass(frozen=True, slots=True)
class PackedPage:
    """One page of sampled values, still packed: the items are the sampled values of `rows`
    (only `measurands` when given) in stored order, from the `skip`-th, at most `limit`. Each
    row begins (station_id, evse_id, transaction_id, timestamp, sampled_values, id), as
    PAGE_ROW orders a select (more columns may follow): unpacked by position, as reading a
    SQLAlchemy Row's attributes took half the time of building the page's items."""

    rows: Sequence[Sequence[Any]]
    measurands: frozenset[str] | None
    skip: int
    total: int
    offset: int
    limit: int

    def samples(self) -> list[MeterSample]:
        """The page's items as MeterSamples."""
        out: list[MeterSample] = []
        stop = self.skip + self.limit
        for row in self.rows:
            station_id, evse_id, transaction_id, timestamp, packed, row_id = row[:6]
            out.extend(
                unpack(
                    station_id, evse_id, transaction_id, timestamp, packed, row_id, self.measurands
                )
            )
            if len(out) >= stop:
                break
        return out[self.skip : stop]

    def fields(self) -> list[dict[str, Any]]:
        """The page's items as dicts of MeterSample's fields but station_id and id, in its
        field order: what the API answers with, built without a MeterSample per item (a
        plain dict is several times cheaper than the frozen dataclass, then a model)."""
        items: list[dict[str, Any]] = []
        append = items.append
        only = self.measurands
        stop = self.skip + self.limit
        loads = orjson.loads
        for row in self.rows:
            _, evse_id, transaction_id, timestamp, packed, _ = row[:6]
            for sample in loads(packed):
                if only is not None and sample[0] not in only:
                    continue
                n = len(sample)
                append(
                    {
                        "timestamp": timestamp,
                        "value": float(sample[1]),
                        "measurand": sample[0],
                        "evse_id": evse_id,
                        "transaction_id": transaction_id,
                        "phase": sample[2] if n > 2 else None,
                        "location": sample[3] if n > 3 else None,
                        "context": sample[4] if n > 4 else None,
                        "unit": sample[5] if n > 5 else None,
                    }
                )
            if len(items) >= stop:
                break
        return items[self.skip : stop]


# The leading columns of a PackedPage's rows, in order.
PAGE_ROW = ("station_id", "evse_id", "transaction_id", "timestamp", "sampled_values", "id")
