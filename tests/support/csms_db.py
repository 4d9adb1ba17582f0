"""Database helpers for CSMS tests: a throw-away PostgreSQL database per test."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine


def postgres_url_or_skip() -> str:
    url = os.environ.get("CSMS_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("CSMS_TEST_POSTGRES_URL not set (PostgreSQL tests skipped)")
    return url


@contextlib.asynccontextmanager
async def fresh_postgres_database(base_url: str, prefix: str = "csms_t_") -> AsyncIterator[str]:
    """CREATE a uniquely named database beside `base_url`'s, yield its URL, DROP it after.
    The shared `test` database is left untouched."""
    name = f"{prefix}{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(base_url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        yield make_url(base_url).set(database=name).render_as_string(hide_password=False)
    finally:
        async with admin.connect() as conn:
            await conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


async def run_sql(url: str, sql: str, **params: object) -> list[tuple[object, ...]]:
    """Run one SQL statement on its own engine (committed); its rows, if it returns any."""
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        result = await conn.execute(sa.text(sql), params)
        rows = [tuple(r) for r in result] if result.returns_rows else []
    await engine.dispose()
    return rows
