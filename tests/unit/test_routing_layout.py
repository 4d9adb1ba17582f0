"""Routing layout (issue 13): a broker-neutral base and one thin module per broker.

Reads the modules with `ast` (no imports run) and follows the project's own imports
transitively: the NATS backend never reaches the Redis backend or the redis client, and the
other way round; the broker-neutral modules reach neither backend nor broker client.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _module_path(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _imports(module: str) -> set[str]:
    path = _module_path(module)
    assert path is not None, module
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # `from package import module` imports the module too.
            found.update(
                f"{node.module}.{alias.name}"
                for alias in node.names
                if _module_path(f"{node.module}.{alias.name}") is not None
            )
    return found


def reachable(module: str) -> set[str]:
    """Every module `module` imports, directly or through the project's own modules
    (third-party modules are listed but not followed)."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        current = todo.pop()
        for name in _imports(current):
            # A module import runs its packages' __init__ too.
            parts = name.split(".")
            for i in range(1, len(parts) + 1):
                prefix = ".".join(parts[:i])
                if prefix in seen:
                    continue
                seen.add(prefix)
                if _module_path(prefix) is not None and prefix.split(".")[0] in {"csms"}:
                    todo.append(prefix)
    return seen


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        ("csms.routing.redis_router", {"csms.routing.nats_router", "nats"}),
        ("csms.routing.nats_router", {"csms.routing.redis_router", "redis"}),
        (
            "csms.routing.broker",
            {"csms.routing.nats_router", "csms.routing.redis_router", "nats", "redis"},
        ),
        (
            "csms.routing.wire",
            {"csms.routing.nats_router", "csms.routing.redis_router", "nats", "redis", "asyncio"},
        ),
        (
            "csms.routing.holders",
            {"csms.routing.nats_router", "csms.routing.redis_router", "nats", "redis", "asyncio"},
        ),
    ],
)
def test_routing_module_does_not_reach(module: str, forbidden: set[str]) -> None:
    assert reachable(module) & forbidden == set()


def test_the_check_sees_what_a_backend_imports() -> None:
    """The walk is not vacuous: each backend reaches its own client and the shared base."""
    assert {"nats", "csms.routing.broker", "csms.routing.wire"} <= reachable(
        "csms.routing.nats_router"
    )
    assert {"redis", "csms.routing.broker", "csms.routing.wire"} <= reachable(
        "csms.routing.redis_router"
    )
