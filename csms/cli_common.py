"""What every `csms` command module shares (csms.cli, csms.cli_sites): exit statuses, the
settings flags and how settings are loaded from them, running an admin action on the database,
and JSON output. Both import it; it imports neither, so the command modules form no circle."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from pydantic import ValidationError
from pydantic_settings.exceptions import SettingsError

from csms.services.redaction import redact_url
from csms.settings import Settings

T = TypeVar("T")

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class SettingsInvalid(Exception):
    """Settings failed validation; the message names each bad field."""


# Settings ----------------------------------------------------------------------------------------


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _is_bool(annotation: Any) -> bool:
    return annotation is bool


def add_settings_flags(parser: argparse.ArgumentParser, names: Sequence[str] | None = None) -> None:
    """One flag per Settings field (`database_url` -> `--database-url`), default: not given."""
    from csms.settings_help import SETTING_HELP

    group = parser.add_argument_group("settings (each also from CSMS_<NAME> in the environment)")
    for name, info in Settings.model_fields.items():
        if names is not None and name not in names:
            continue
        env = f"CSMS_{name.upper()}"
        what = info.description or SETTING_HELP.get(name, "")
        # argparse formats help with %: a literal one is written %% in the description.
        help_text = f"{what} (env {env}; default {_shown_default(info.default)})"
        if _is_bool(info.annotation):
            group.add_argument(
                flag(name),
                dest=f"setting_{name}",
                action=argparse.BooleanOptionalAction,
                default=None,
                help=help_text,
            )
        else:
            group.add_argument(
                flag(name), dest=f"setting_{name}", default=None, metavar="VALUE", help=help_text
            )


def _shown_default(value: Any) -> str:
    text = "none" if value is None else str(value)
    return text.replace("%", "%%")


def _describe_validation_error(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        location = item.get("loc") or ()
        field = str(location[0]) if location else None
        if field in Settings.model_fields:
            where = f"setting '{field}' (flag {flag(field)}, env CSMS_{field.upper()})"
            got = item.get("input")
            suffix = f" [got {got!r}]" if got is not None and not isinstance(got, dict) else ""
            suffix = redact_url(suffix)  # a database/broker URL may hold a password
            lines.append(f"invalid {where}: {item['msg']}{suffix}")
        else:
            lines.append(f"invalid settings: {item['msg']}")
    return "\n".join(lines)


def load_settings(args: argparse.Namespace | None = None) -> Settings:
    """Settings from flags in `args` (only those given) over the CSMS_* environment."""
    given: dict[str, Any] = {}
    if args is not None:
        for name in Settings.model_fields:
            value = getattr(args, f"setting_{name}", None)
            if value is not None:
                given[name] = value
    try:
        return Settings(**given)
    except ValidationError as error:
        raise SettingsInvalid(_describe_validation_error(error)) from None
    except SettingsError as error:
        raise SettingsInvalid(f"invalid settings in the environment: {error}") from None


# Running ----------------------------------------------------------------------------------------


def run_async(coroutine_factory: Callable[[], Awaitable[T]]) -> T:
    async def runner() -> T:
        return await coroutine_factory()

    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is absent on Windows
        return asyncio.run(runner())
    return uvloop.run(runner())


def run_admin(settings: Settings, action: Callable[[], Awaitable[T]]) -> T:
    """Run an admin action; a database that cannot be reached is named as the database."""
    from csms.persistence.unreachable import naming_the_database

    with naming_the_database(settings.database_url):
        return run_async(action)


# Output -----------------------------------------------------------------------------------------


def json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON: {type(value).__name__}")


def print_json(rows: list[dict[str, Any]]) -> None:
    """A JSON array, one object per row (enums as their values, times as ISO 8601)."""
    print(json.dumps(rows, indent=2, default=json_value))
