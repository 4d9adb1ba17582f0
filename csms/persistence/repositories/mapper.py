"""One table <-> one domain dataclass, by name: the row<->record conversion of every repository.

A `TableMapper` pairs a table's columns with a frozen dataclass's fields of the same name. The
exceptions are stated where the mapper is built, never per call:

- `codecs`: a field whose stored form differs in type (an enum stored as its value, a flag
  that SQLite may return as 0/1);
- `computed`: a field read from the row by a function (`Station.has_password` from the hash);
- `supplied`: a column the caller gives when writing (`updated_at=now`, a derived key), in place
  of the record's same-named field if it has one;
- `generated`: a column the database fills (an autoincrement id), never written.

Hot paths (a TransactionEvent, a connect storm) convert rows all the time, so the mapper
compiles its two conversions once per table, when the module that builds it loads, into plain
functions: the same code as a hand-written `Record(a=m["a"], ...)` and `{"a": r.a, ...}`, the
way `dataclasses` makes `__init__`. `TableMapper.source` shows that code.
"""

from __future__ import annotations

import dataclasses
import keyword
import operator
from collections.abc import Callable, Iterable, Mapping
from enum import Enum
from typing import Any, Generic, TypeVar

import sqlalchemy as sa

R = TypeVar("R")


@dataclasses.dataclass(frozen=True, slots=True)
class Codec:
    """How a field's value differs from its column's: `decode` on reading, `encode` (if any)
    on writing."""

    decode: Callable[[Any], Any]
    encode: Callable[[Any], Any] | None = None


_VALUE = operator.attrgetter("value")


def stored_enum(enum_type: type[Enum]) -> Codec:
    """An enum field stored as its value."""
    return Codec(enum_type, _VALUE)


# A Boolean column whose record field is a bool (bool() on reading, as stored on writing).
AS_BOOL = Codec(bool)


class TableMapper(Generic[R]):
    """Rows of `table` to `record` instances (`record`), and `record` instances to column
    values for an insert or upsert (`values`)."""

    __slots__ = ("_from_mapping", "_to_values", "columns", "source", "supplied")

    def __init__(
        self,
        table: sa.Table,
        record: type[R],
        *,
        codecs: Mapping[str, Codec] | None = None,
        computed: Mapping[str, Callable[[Any], Any]] | None = None,
        supplied: Iterable[str] = (),
        generated: Iterable[str] = (),
    ) -> None:
        codecs = dict(codecs or {})
        computed = dict(computed or {})
        supplied_set = frozenset(supplied)
        generated_set = frozenset(generated)
        fields = {f.name: f for f in dataclasses.fields(record) if f.init}  # type: ignore[arg-type]
        columns = [c.key for c in table.columns]
        for name in (*codecs, *computed):
            if name not in fields:
                raise ValueError(f"{record.__name__} has no field {name!r}")
        for name in supplied_set | generated_set:
            if name not in columns:
                raise ValueError(f"table {table.name} has no column {name!r}")
        for name in supplied_set:
            if not name.isidentifier() or keyword.iskeyword(name) or name in ("r", "Record"):
                raise ValueError(f"supplied column {name!r} cannot be a parameter name")

        env: dict[str, Any] = {"Record": record}

        # Reading: every init field from its same-named column, unless computed; a field with
        # neither a column nor a computation keeps its default.
        reads: list[str] = []
        for name, f in fields.items():
            if name in computed:
                env[f"compute_{name}"] = computed[name]
                reads.append(f"{name}=compute_{name}(m)")
            elif name in columns:
                item = f"m[{name!r}]"
                if name in codecs:
                    env[f"decode_{name}"] = codecs[name].decode
                    item = f"decode_{name}({item})"
                reads.append(f"{name}={item}")
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ValueError(f"{record.__name__}.{name}: no column {table.name}.{name}")

        # Writing: the table's columns in table order, each from the caller (supplied) or from
        # the record's same-named field; generated columns and columns the record lacks are
        # left to the database.
        writes: list[str] = []
        written: list[str] = []
        for column in columns:
            if column in generated_set:
                continue
            if column in supplied_set:
                value = column
            elif column in fields and column not in computed:
                value = f"r.{column}"
                codec = codecs.get(column)
                if codec is not None and codec.encode is not None:
                    env[f"encode_{column}"] = codec.encode
                    value = f"encode_{column}({value})"
            else:
                continue
            writes.append(f"{column!r}: {value}")
            written.append(column)
        self.columns = tuple(written)
        self.supplied = tuple(c for c in columns if c in supplied_set)

        keywords = "".join(f", {c}" for c in self.supplied)
        self.source = (
            "def from_mapping(m):\n"
            f"    return Record({', '.join(reads)})\n"
            "\n"
            f"def to_values(r{', *' if keywords else ''}{keywords}):\n"
            f"    return {{{', '.join(writes)}}}\n"
        )
        namespace: dict[str, Any] = {}
        exec(compile(self.source, f"<TableMapper {table.name}>", "exec"), env, namespace)
        self._from_mapping: Callable[[Any], R] = namespace["from_mapping"]
        self._to_values: Callable[..., dict[str, Any]] = namespace["to_values"]

    def record(self, row: sa.Row[Any]) -> R:
        """The record of one result row (its columns found by name, so joins work too)."""
        return self._from_mapping(row._mapping)

    def records(self, rows: Iterable[sa.Row[Any]]) -> list[R]:
        from_mapping = self._from_mapping
        return [from_mapping(row._mapping) for row in rows]

    def values(self, record: R, **supplied: Any) -> dict[str, Any]:
        """Column -> value for an insert or upsert of `record`, in table column order; the
        supplied columns must be given, by name, and no others."""
        return self._to_values(record, **supplied)
