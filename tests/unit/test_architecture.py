"""Design rule (docs/design.md): the pure packages import no edge package and never read the clock.

Walks every module of the pure packages with `ast` (no import side effects) and checks:
- no `import`/`from ... import` of an edge package (network, database, CAN, web, asyncio I/O),
  nor of the project's own edge packages (ocpp_edge, hardware, persistence, ...);
- no clock read (`datetime.now()`, `time.monotonic()`, `date.today()`, ...): `now` is an argument;
- no `open(...)`: pure code takes lines or bytes, the edges read files.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PURE_PACKAGES = (
    "v2g_shared",
    "chargepoint_firmware/safety",
    "chargepoint_firmware/chademo",
    "csms/v2g",
    "csms/domain",
)
# The `chargepoint chademo-decode` and `chademo-replay` commands live beside the pure code they
# drive; they are the package's only edges (they open the log files), so they alone are exempt.
EDGE_MODULES_INSIDE_PURE_PACKAGES = {
    "chargepoint_firmware/chademo/decode_cli.py",
    "chargepoint_firmware/chademo/replay_cli.py",
    # Reads log files, through python-can's readers where they exist: an I/O edge.
    "chargepoint_firmware/chademo/log_decode.py",
    # SIGINT/SIGTERM -> an asyncio stop event, shared by both products' long-running commands.
    "v2g_shared/stop_signals.py",
}

FORBIDDEN_IMPORT_ROOTS = {
    "aiomqtt",
    "aiosqlite",
    "alembic",
    "asyncio",
    "asyncpg",
    "can",
    "fastapi",
    "httpx",
    "nats",
    "ocpp",
    "redis",
    "socket",
    "sqlalchemy",
    "starlette",
    "time",
    "uvicorn",
    "uvloop",
    "websockets",
}
FORBIDDEN_PROJECT_PREFIXES = (
    "chargepoint_firmware.ocpp_edge",
    "chargepoint_firmware.blocks",
    "chargepoint_firmware.agent",
    "chargepoint_firmware.wiring",
    "chargepoint_firmware.hardware",
    "chargepoint_firmware.storage",
    "chargepoint_firmware.main",
    "chargepoint_firmware.settings",
    "csms.ocpp_server",
    "csms.persistence",
    "csms.services",
    "csms.routing",
    "csms.api",
    "csms.app",
    "csms.settings",
)
CLOCK_METHODS = {"now", "utcnow", "today", "time", "monotonic", "perf_counter", "time_ns"}
CLOCK_OWNERS = {"datetime", "date", "time"}


def pure_modules() -> list[Path]:
    modules = [path for package in PURE_PACKAGES for path in sorted((ROOT / package).rglob("*.py"))]
    return [
        path
        for path in modules
        if path.relative_to(ROOT).as_posix() not in EDGE_MODULES_INSIDE_PURE_PACKAGES
    ]


def imported_names(tree: ast.AST) -> list[tuple[int, str]]:
    names: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append((node.lineno, node.module))
    return names


def import_violations(tree: ast.AST) -> list[str]:
    found = []
    for line, name in imported_names(tree):
        if name.split(".")[0] in FORBIDDEN_IMPORT_ROOTS:
            found.append(f"line {line}: imports edge package {name}")
        elif any(
            name == prefix or name.startswith(prefix + ".") for prefix in FORBIDDEN_PROJECT_PREFIXES
        ):
            found.append(f"line {line}: imports project edge module {name}")
    return found


def _owner_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):  # datetime.datetime.now()
        return node.attr
    return None


def clock_and_file_violations(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id == "open":
            found.append(f"line {node.lineno}: opens a file")
        elif (
            isinstance(func, ast.Attribute)
            and func.attr in CLOCK_METHODS
            and _owner_name(func.value) in CLOCK_OWNERS
        ):
            found.append(
                f"line {node.lineno}: reads the clock ({_owner_name(func.value)}.{func.attr}())"
            )
    return found


def test_every_pure_package_has_modules_to_check() -> None:
    for package in PURE_PACKAGES:
        assert list((ROOT / package).glob("*.py")), f"{package} has no modules: is the path stale?"


@pytest.mark.parametrize("path", pure_modules(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_pure_module_imports_no_edge_package_and_reads_no_clock(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    violations = import_violations(tree) + clock_and_file_violations(tree)
    assert not violations, f"{path.relative_to(ROOT)}: " + "; ".join(violations)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import asyncio", "edge package asyncio"),
        ("from can.interfaces import virtual", "edge package can.interfaces"),
        ("import sqlalchemy.orm as orm", "edge package sqlalchemy.orm"),
        ("from csms.persistence.repositories import X", "project edge module"),
        ("from chargepoint_firmware.hardware import ports", "project edge module"),
        ("import time", "edge package time"),
    ],
)
def test_checker_flags_edge_imports(source: str, expected: str) -> None:
    assert any(expected in v for v in import_violations(ast.parse(source)))


@pytest.mark.parametrize(
    "source",
    [
        "datetime.now(UTC)",
        "datetime.datetime.utcnow()",
        "date.today()",
        "time.monotonic()",
        "open('x')",
    ],
)
def test_checker_flags_clock_reads_and_file_access(source: str) -> None:
    assert clock_and_file_violations(ast.parse(source))


def test_checker_accepts_pure_code() -> None:
    source = (
        "from datetime import datetime\n"
        "import numpy as np\n"
        "def f(now: datetime) -> datetime:\n"
        "    return now.replace(second=0)\n"
    )
    tree = ast.parse(source)
    assert import_violations(tree) == []
    assert clock_and_file_violations(tree) == []
