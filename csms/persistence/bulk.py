"""Executemany without SQLAlchemy's per-row work (issue 17).

`conn.execute(insert, [dict, ...])` compiles nothing (the statement is cached) but still runs,
for every row, SQLAlchemy's parameter construction: a lookup per bind name and the bind
processor of every typed column, through several Python frames. On the write path (a
TransactionEvent with its meter values: four executemanys of ~1-40 rows per group commit)
that was the largest single cost in the writer thread after SQLite itself.

`execute_many` compiles each (statement, dialect, column keys) once, keeps the driver SQL, the
order of its positional parameters and the bind processors of the typed columns (the SAME
processors SQLAlchemy would call, so the stored form is identical: the test compares rows
written both ways), and sends tuples straight to the driver through `exec_driver_sql`: one
C-level `itemgetter` per row plus the processors of the columns that have one. Anything the
fast form cannot express (a statement with no positional form, rows whose keys differ from the
first row's) goes through `conn.execute` as before.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.sql.base import Executable

# (statement, dialect name, driver, column keys) -> compiled form; statements are module-level
# constants or cached upserts, so this stays small; bounded all the same.
_MAX_CACHED = 512
_compiled: dict[tuple[Any, str, str, tuple[str, ...]], _DriverForm | None] = {}


@dataclass(frozen=True, slots=True)
class _DriverForm:
    sql: str
    width: int
    getter: Callable[[dict[str, Any]], Any]
    processors: tuple[tuple[int, Callable[[Any], Any]], ...]

    def row(self, values: dict[str, Any]) -> tuple[Any, ...]:
        if len(values) != self.width:
            raise KeyError("row keys differ from the statement's")
        picked = self.getter(values)
        if self.width == 1:
            picked = (picked,)
        if not self.processors:
            return picked
        out = list(picked)
        for index, process in self.processors:
            out[index] = process(out[index])  # None too: a JSON column may store it as 'null'
        return tuple(out)


def _driver_form(statement: Executable, dialect: Any, keys: tuple[str, ...]) -> _DriverForm | None:
    cache_key = (statement, dialect.name, dialect.driver, keys)
    if cache_key in _compiled:
        return _compiled[cache_key]
    form = None
    if dialect.positional:
        compiled = statement.compile(dialect=dialect, column_keys=list(keys))  # type: ignore[attr-defined]
        order = tuple(compiled.positiontup or ())
        # Every parameter is one of the row's keys, each row key is used: nothing rendered
        # at execution time (expanding IN, literal binds), no defaults filled per row.
        if order and set(order) == set(keys) and len(order) == len(keys):
            processors = []
            for index, name in enumerate(order):
                # A type's own one-call form where it has one (tables.UtcDateTime), else the
                # processor SQLAlchemy applies per row.
                fast = getattr(compiled.binds[name].type, "driver_bind", None)
                process = fast(dialect.name) if fast else compiled._bind_processors.get(name)
                if process is not None:
                    processors.append((index, process))
            form = _DriverForm(
                sql=compiled.string,
                width=len(keys),
                getter=operator.itemgetter(*order),
                processors=tuple(processors),
            )
    if len(_compiled) >= _MAX_CACHED:
        _compiled.clear()
    _compiled[cache_key] = form
    return form


async def execute_many(conn: Any, statement: Executable, rows: Sequence[dict[str, Any]]) -> None:
    """`conn.execute(statement, rows)` (an INSERT/upsert with the same keys in every row), with
    the rows handed to the driver as tuples."""
    if not rows:
        return
    form = _driver_form(statement, conn.dialect, tuple(rows[0]))
    if form is not None:
        try:
            params = [form.row(r) for r in rows]
        except KeyError:
            params = None
        if params is not None:
            await conn.exec_driver_sql(form.sql, params if len(params) > 1 else params[0])
            return
    await conn.execute(statement, list(rows) if len(rows) > 1 else rows[0])
