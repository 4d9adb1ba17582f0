"""A database that cannot be reached, named as such: which database, where, and which setting.

The driver's own words ("Connect call failed ('127.0.0.1', 5432)", "Name or service not
known") say what failed but not that it was the database; an operator reading them beside a
port and a broker URL has to guess. The password never appears (the URL is rebuilt without it).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

SETTING = "database_url (--database-url, CSMS_DATABASE_URL)"


def describe_database(database_url: str) -> str:
    """'PostgreSQL database test at 127.0.0.1:5432 (user postgres)' or 'SQLite file ./csms.db'."""
    try:
        url = make_url(database_url)
    except ArgumentError:
        return "the database (unreadable URL)"
    if url.get_backend_name() == "sqlite":
        return f"SQLite file {url.database or ':memory:'}"
    host = url.host or "localhost"
    host = f"[{host}]" if ":" in host else host
    user = f" (user {url.username})" if url.username else ""
    return f"PostgreSQL database {url.database or '(default)'} at {host}:{url.port or 5432}{user}"


class DatabaseUnreachable(OSError):
    """The database named by the settings could not be opened or migrated."""

    def __init__(self, database_url: str, cause: BaseException) -> None:
        inner = cause.orig if isinstance(cause, DBAPIError) and cause.orig is not None else cause
        lines = str(inner).strip().splitlines()
        reason = f"{type(inner).__name__}: {lines[0]}" if lines else type(inner).__name__
        super().__init__(
            f"cannot use the {describe_database(database_url)} (setting {SETTING}): {reason}"
        )


def _is_database_error(error: BaseException) -> bool:
    return isinstance(error, OSError | DBAPIError) and not isinstance(error, DatabaseUnreachable)


@contextlib.contextmanager
def naming_the_database(database_url: str) -> Iterator[None]:
    """Connection errors inside become DatabaseUnreachable (the cause is kept)."""
    try:
        yield
    except Exception as error:
        if _is_database_error(error):
            raise DatabaseUnreachable(database_url, error) from error
        raise


@contextlib.asynccontextmanager
async def naming_the_database_async(database_url: str) -> AsyncIterator[None]:
    try:
        yield
    except Exception as error:
        if _is_database_error(error):
            raise DatabaseUnreachable(database_url, error) from error
        raise
