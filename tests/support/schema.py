"""A migrated schema read back, for the migration tests: its table names, and how it differs
from the code's definitions of some tables."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Collection, Iterator

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from csms.persistence.tables import metadata


@contextlib.contextmanager
def expression_index_warnings_ignored() -> Iterator[None]:
    """Expression indexes (uq_meter_values_reading, 0017) cannot be reflected from SQLite:
    SQLAlchemy and Alembic warn and leave them out of a comparison there."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based")
        warnings.filterwarnings("ignore", "autogenerate skipping metadata-specified expression")
        yield


async def table_names(url: str) -> set[str]:
    """The tables of the database at `url`, Alembic's own left out."""
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
    await engine.dispose()
    return names - {"alembic_version"}


def table_of(obj: object, name: str | None, type_: str) -> str | None:
    """The table a schema object compared by Alembic belongs to (None: not a table's)."""
    return name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)


async def compare_with(
    url: str, defined: sa.MetaData, include_object: Callable[..., bool]
) -> list[object]:
    """Alembic's differences between the database at `url` and the tables `defined`, only
    the objects `include_object` (Alembic's hook of that name) keeps."""
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        with expression_index_warnings_ignored():
            diff = await conn.run_sync(
                lambda c: compare_metadata(
                    MigrationContext.configure(c, opts={"include_object": include_object}),
                    defined,
                )
            )
    await engine.dispose()
    return list(diff)


async def tables_diff(
    url: str, tables: Collection[str], foreign_key_targets: Collection[str] = ()
) -> list[object]:
    """Differences between the database at `url` and the code's definitions of `tables` only
    (the tables their foreign keys point at are defined beside them, not compared)."""
    ours = sa.MetaData(naming_convention=metadata.naming_convention)
    for name in (*foreign_key_targets, *tables):
        metadata.tables[name].to_metadata(ours)

    def only_ours(obj: object, name: str | None, type_: str, *_: object) -> bool:
        return table_of(obj, name, type_) in tables

    return await compare_with(url, ours, only_ours)
