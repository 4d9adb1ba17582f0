"""Issue 13: the CSMS edge is thin and one-way. OCPP handlers call services (no persistence,
no sqlalchemy); services never import the OCPP edge."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CSMS = Path(__file__).resolve().parents[2] / "csms"


def _imports(package: Path) -> list[tuple[str, str]]:
    found = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found += [(path.name, alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.append((path.name, node.module))
                found += [(path.name, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def _breaks(package: str, forbidden: tuple[str, ...]) -> list[tuple[str, str]]:
    return [
        (name, module)
        for name, module in _imports(CSMS / package)
        if any(module == f or module.startswith(f + ".") for f in forbidden)
    ]


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("ocpp_server", ("csms.persistence", "sqlalchemy")),
        ("services", ("csms.ocpp_server",)),
    ],
)
def test_edge_imports_run_one_way(package: str, forbidden: tuple[str, ...]) -> None:
    assert _breaks(package, forbidden) == []


def test_the_check_sees_imports() -> None:
    assert ("commands.py", "csms.persistence.repositories") in _imports(CSMS / "services")


def test_password_length_rule_is_pure() -> None:
    from csms.domain.passwords import password_length_ok

    assert not password_length_ok("x" * 15)
    assert password_length_ok("x" * 16)
    assert password_length_ok("x" * 40)
    assert not password_length_ok("x" * 41)
