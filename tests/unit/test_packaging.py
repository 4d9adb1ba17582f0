"""The distribution's dependency lists match what each product imports (read from pyproject).

- base `dependencies` = exactly what the agent (`chargepoint_firmware`) and the shared core
  (`v2g_shared`) import from outside the standard library: the agent installs alone;
- the `csms` extra covers everything else the CSMS and the demo import, and equals the list the
  `csms` entry point checks before it starts (csms/entry.py);
- `dev` pulls the `csms` extra, so `pip install -e '.[dev]'` installs everything;
- the `csms` command starts at csms.entry, which imports only the standard library.
Imports are read with `ast` (nothing is executed); installed metadata maps modules to
distributions (`can` -> python-can).
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

from csms.entry import DISTRIBUTION, EXTRA, EXTRA_MODULES

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT_PACKAGES = {"csms", "chargepoint_firmware", "v2g_shared", "v2g_demo", "migrations"}


def dist_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group(0)).lower()


def third_party_imports(*packages: str) -> set[str]:
    roots: set[str] = set()
    for package in packages:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    roots.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    roots.add(node.module.split(".")[0])
    return {r for r in roots if r not in sys.stdlib_module_names and r not in PROJECT_PACKAGES}


def distributions_of(modules: set[str]) -> set[str]:
    mapping = importlib.metadata.packages_distributions()
    found = set()
    for module in modules:
        assert module in mapping, f"{module} is imported but no installed distribution provides it"
        found.update(re.sub(r"[-_.]+", "-", name).lower() for name in mapping[module])
    return found


def base() -> set[str]:
    return {dist_name(r) for r in PYPROJECT["project"]["dependencies"]}


def extra(name: str) -> set[str]:
    return {dist_name(r) for r in PYPROJECT["project"]["optional-dependencies"][name]}


def test_base_dependencies_are_what_the_agent_and_shared_core_import() -> None:
    assert PYPROJECT["project"]["name"] == DISTRIBUTION
    needed = distributions_of(third_party_imports("chargepoint_firmware", "v2g_shared"))
    assert base() == needed


def test_csms_extra_covers_what_the_csms_and_the_demo_import() -> None:
    needed = distributions_of(third_party_imports("csms", "v2g_demo", "migrations"))
    assert needed - base() <= extra(EXTRA), needed - base() - extra(EXTRA)
    assert not base() & extra(EXTRA)


def test_entry_point_checks_exactly_the_csms_extra() -> None:
    assert set(EXTRA_MODULES) == extra(EXTRA)


def test_dev_extra_installs_the_csms_and_the_test_tools() -> None:
    dev = PYPROJECT["project"]["optional-dependencies"]["dev"]
    assert f"{DISTRIBUTION}[{EXTRA}]" in dev
    assert {"pytest", "mypy", "ruff"} <= {dist_name(r) for r in dev}
    assert "-e '.[dev]'" in (ROOT / ".ci" / "run").read_text()


def test_console_commands_and_packages() -> None:
    scripts = PYPROJECT["project"]["scripts"]
    assert scripts == {"csms": "csms.entry:main", "chargepoint": "chargepoint_firmware.cli:main"}
    # setup.py lists the packages (pyproject cannot map migrations/ to csms._migrations).
    setup_py = ast.parse((ROOT / "setup.py").read_text())
    (include,) = [
        ast.literal_eval(node.value)
        for node in setup_py.body
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "PACKAGES_INCLUDE" for t in node.targets)
    ]
    assert {p.rstrip("*") for p in include} == {
        "csms",
        "chargepoint_firmware",
        "v2g_shared",
        "v2g_demo",
    }


def test_csms_entry_point_imports_only_the_standard_library() -> None:
    tree = ast.parse((ROOT / "csms" / "entry.py").read_text())
    top_level = [node for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)]
    roots = {
        alias.name.split(".")[0]
        for node in top_level
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        node.module.split(".")[0]
        for node in top_level
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert roots <= set(sys.stdlib_module_names) | {"__future__"}, roots
