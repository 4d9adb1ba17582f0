"""Run the Alembic migrations (the only way the CSMS schema is made).

`upgrade`/`downgrade` are plain functions: call them from sync code, or from inside a running
event loop (they then run Alembic in a worker thread, since Alembic's env starts its own loop).
`upgrade_async` is the non-blocking form for async code.
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine

from csms.persistence.database import create_private_sqlite_file

# Installed (wheel or editable), the top-level migrations/ folder is the package
# csms._migrations (setup.py); a source tree used without installing has the folder itself.
MIGRATIONS_PACKAGE = "csms._migrations"
SOURCE_MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def migrations_dir() -> Path:
    """The folder holding env.py and versions/ (Alembic's script_location)."""
    try:
        spec = importlib.util.find_spec(MIGRATIONS_PACKAGE)
    except ImportError:
        spec = None
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            if (Path(location) / "env.py").is_file():
                return Path(location)
    if (SOURCE_MIGRATIONS_DIR / "env.py").is_file():
        return SOURCE_MIGRATIONS_DIR
    raise FileNotFoundError(
        f"the database migrations are missing: no package {MIGRATIONS_PACKAGE} and no "
        f"{SOURCE_MIGRATIONS_DIR}; reinstall v2g-platform"
    )


def alembic_config(database_url: str) -> Config:
    # Alembic's engine may be the first to open a SQLite file: it is created 0600 here.
    create_private_sqlite_file(database_url)
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    # '%' would be read as interpolation by configparser.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def _in_running_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _run(fn_name: str, database_url: str, revision: str) -> None:
    config = alembic_config(database_url)
    fn = getattr(command, fn_name)
    if not _in_running_loop():
        fn(config, revision)
        return
    errors: list[BaseException] = []

    def target() -> None:
        try:
            fn(config, revision)
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=target, name=f"alembic-{fn_name}")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def upgrade(database_url: str, revision: str = "head") -> None:
    _run("upgrade", database_url, revision)


def downgrade(database_url: str, revision: str) -> None:
    _run("downgrade", database_url, revision)


async def upgrade_async(database_url: str, revision: str = "head") -> None:
    await asyncio.to_thread(upgrade, database_url, revision)


async def downgrade_async(database_url: str, revision: str) -> None:
    await asyncio.to_thread(downgrade, database_url, revision)


def head_revisions(database_url: str) -> list[str]:
    """The head revision(s) of the migration scripts (reads the files; no database)."""
    from alembic.script import ScriptDirectory

    return list(ScriptDirectory.from_config(alembic_config(database_url)).get_heads())


async def current_revisions(engine: AsyncEngine) -> frozenset[str]:
    """The revision(s) the database is at (empty: never migrated)."""
    async with engine.connect() as conn:
        has_table = await conn.run_sync(lambda sync: sa.inspect(sync).has_table("alembic_version"))
        if not has_table:
            return frozenset()
        rows = await conn.execute(sa.text("SELECT version_num FROM alembic_version"))
        return frozenset(str(row[0]) for row in rows)
