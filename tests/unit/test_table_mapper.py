"""The row<->record mapper of the repositories (csms/persistence/repositories/mapper.py)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa

from csms.domain.models import IdToken, IdTokenStatus, Transaction, TransactionState
from csms.persistence import tables as t
from csms.persistence.repositories.id_tokens import ID_TOKENS
from csms.persistence.repositories.mapper import AS_BOOL, TableMapper, stored_enum
from csms.persistence.repositories.transactions import TRANSACTIONS

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Colour(enum.StrEnum):
    RED = "Red"
    BLUE = "Blue"


@dataclass(frozen=True, slots=True)
class Thing:
    name: str
    colour: Colour
    shiny: bool
    label: str = "none"  # no column: keeps its default
    id: int | None = None


_meta = sa.MetaData()
_things = sa.Table(
    "things",
    _meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(20), nullable=False),
    sa.Column("colour", sa.String(8), nullable=False),
    sa.Column("shiny", sa.Boolean, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)
THINGS = TableMapper(
    _things,
    Thing,
    codecs={"colour": stored_enum(Colour), "shiny": AS_BOOL},
    supplied=("updated_at",),
    generated=("id",),
)


def test_values_follow_table_order_with_codecs_supplied_and_generated_columns() -> None:
    values = THINGS.values(Thing("a", Colour.BLUE, True, id=7), updated_at=T0)
    assert values == {"name": "a", "colour": "Blue", "shiny": True, "updated_at": T0}
    assert list(values) == ["name", "colour", "shiny", "updated_at"]  # no id: generated
    assert THINGS.columns == ("name", "colour", "shiny", "updated_at")


def test_supplied_columns_must_be_given_exactly() -> None:
    with pytest.raises(TypeError):
        THINGS.values(Thing("a", Colour.RED, False))
    with pytest.raises(TypeError):
        THINGS.values(Thing("a", Colour.RED, False), updated_at=T0, other=1)


def test_rows_read_back_by_name_with_decoding() -> None:
    engine = sa.create_engine("sqlite://")
    _meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            _things.insert(),
            [
                THINGS.values(Thing("a", Colour.BLUE, True), updated_at=T0.replace(tzinfo=None)),
                THINGS.values(Thing("b", Colour.RED, False), updated_at=T0.replace(tzinfo=None)),
            ],
        )
        rows = conn.execute(_things.select().order_by(_things.c.id)).all()
    assert THINGS.records(rows) == [
        Thing("a", Colour.BLUE, True, id=1),
        Thing("b", Colour.RED, False, id=2),
    ]
    found = THINGS.record(rows[0])
    assert type(found.colour) is Colour and type(found.shiny) is bool


def test_a_field_without_column_or_default_is_refused_when_the_mapper_is_built() -> None:
    @dataclass(frozen=True)
    class Orphan:
        name: str
        missing: int

    with pytest.raises(ValueError, match="missing"):
        TableMapper(_things, Orphan)
    with pytest.raises(ValueError, match="no field"):
        TableMapper(_things, Thing, codecs={"nope": AS_BOOL})
    with pytest.raises(ValueError, match="no column"):
        TableMapper(_things, Thing, supplied=("nope",))


def test_the_project_mappers_round_trip_a_record() -> None:
    token = IdToken("A1", "ISO14443", IdTokenStatus.BLOCKED, T0, "G", T0)
    values = ID_TOKENS.values(token, created_at=T0)
    assert values["status"] == "Blocked"
    assert ID_TOKENS.record(_row(t.id_tokens, values)) == token

    tx = Transaction("S", "T", TransactionState.ACTIVE, 1, 1, offline_seen=True, updated_at=T0)
    values = TRANSACTIONS.values(tx, updated_at=T0)
    assert "id" not in values and values["state"] == "Active"
    assert TRANSACTIONS.record(_row(t.transactions, values)) == tx


def _row(table: sa.Table, values: dict[str, Any]) -> Any:
    """What the mapper reads of a result row of `table` holding `values`: its `_mapping`."""
    return SimpleNamespace(_mapping={c.key: values.get(c.key) for c in table.columns})
