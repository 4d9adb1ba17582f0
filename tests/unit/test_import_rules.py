"""Import rules of the two products, the shared core and the demo (docs/design.md, issue 13).

Read with `ast` only: no module is imported. Every `import` counts, also those inside functions
and under `if TYPE_CHECKING:` (a lazy import is still a dependency).

- `chargepoint_firmware` (the agent) imports no `csms` and no `v2g_demo`;
- `csms` imports no `chargepoint_firmware`, and no `v2g_demo` except the CLI's lazy start of
  `csms demo` (ALLOWED);
- `v2g_shared` imports neither product nor the demo;
- inside the CSMS the arrows run one way: api -> services -> persistence / routing, and the OCPP
  handlers (`ocpp_server`) -> services: persistence and routing import no services, api or
  ocpp_server; services import no api and no ocpp_server; api imports no persistence, routing
  or ocpp_server; ocpp_server imports no api and no persistence;
- inside the agent the OCPP edge (`ocpp_edge`, `blocks`) and the hardware import neither
  each other nor the composition root (`main`, `cli`); the hardware imports no OCPP library;
- the pure cores (v2g_shared, csms.domain, csms.v2g, chargepoint_firmware.safety,
  chargepoint_firmware.chademo minus its listed edge modules) import no edge (network,
  database, CAN, web libraries, nor the products' own edge packages).

A module over 600 lines states why in its opening docstring ("Over 600 lines because ...").

KNOWN_VIOLATIONS and KNOWN_LONG_MODULES list what today's code still breaks, one reason each.
The lists may only shrink: a listed entry that no longer exists fails the test, so whoever fixes
one removes it from here.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.unit.test_architecture import (
    EDGE_MODULES_INSIDE_PURE_PACKAGES,
    FORBIDDEN_IMPORT_ROOTS,
    PURE_PACKAGES,
)

ROOT = Path(__file__).resolve().parents[2]
SOURCE_PACKAGES = ("csms", "chargepoint_firmware", "v2g_shared", "v2g_demo")
MAX_LINES = 600
LONG_MODULE_REASON = "Over 600 lines because"


@dataclass(frozen=True)
class Rule:
    name: str
    importers: tuple[str, ...]  # module prefixes the rule applies to
    forbidden: tuple[str, ...]  # module prefixes they may not import
    exempt: tuple[str, ...] = ()  # importer modules the rule does not apply to


# The pure packages and edge libraries are the ones test_architecture checks for clock reads.
EDGE_LIBRARIES = tuple(sorted(FORBIDDEN_IMPORT_ROOTS))
PROJECT_EDGES = (
    "csms.api",
    "csms.app",
    "csms.cli",
    "csms.cli_admin",
    "csms.cli_common",
    "csms.cli_sites",
    "csms.entry",
    "csms.integrations",
    "csms.ocpp_server",
    "csms.persistence",
    "csms.routing",
    "csms.services",
    "csms.settings",
    "csms.v2g_cli",
    "chargepoint_firmware.cli",
    "chargepoint_firmware.hardware",
    "chargepoint_firmware.main",
    "chargepoint_firmware.ocpp_edge",
    "chargepoint_firmware.settings",
    "chargepoint_firmware.simulate",
    "chargepoint_firmware.storage",
    "v2g_demo",
)
PURE_CORES = tuple(package.replace("/", ".") for package in PURE_PACKAGES)
EDGE_MODULES_IN_PURE_CORES = tuple(
    path.removesuffix(".py").replace("/", ".") for path in sorted(EDGE_MODULES_INSIDE_PURE_PACKAGES)
)

RULES = (
    Rule("agent imports no CSMS and no demo", ("chargepoint_firmware",), ("csms", "v2g_demo")),
    Rule("CSMS imports no agent", ("csms",), ("chargepoint_firmware",)),
    Rule("CSMS imports no demo", ("csms",), ("v2g_demo",)),
    Rule(
        "shared core imports no product",
        ("v2g_shared",),
        ("csms", "chargepoint_firmware", "v2g_demo"),
    ),
    Rule(
        "persistence and routing import no services, api or OCPP handlers",
        ("csms.persistence", "csms.routing"),
        ("csms.services", "csms.api", "csms.ocpp_server", "csms.app", "csms.cli"),
    ),
    Rule(
        "services import no api and no OCPP handlers",
        ("csms.services",),
        ("csms.api", "csms.ocpp_server", "csms.app", "csms.cli"),
    ),
    Rule(
        "api calls services, not persistence, routing or the OCPP edge",
        ("csms.api",),
        ("csms.persistence", "csms.routing", "csms.ocpp_server", "sqlalchemy"),
    ),
    Rule(
        "OCPP handlers import no api and call services, not persistence",
        ("csms.ocpp_server",),
        ("csms.api", "csms.persistence", "sqlalchemy"),
    ),
    Rule(
        "agent: the OCPP edge and the hardware meet only in the composition root",
        ("chargepoint_firmware.ocpp_edge", "chargepoint_firmware.blocks"),
        ("chargepoint_firmware.hardware", "chargepoint_firmware.main", "chargepoint_firmware.cli"),
    ),
    Rule(
        "agent: the hardware knows no OCPP",
        ("chargepoint_firmware.hardware",),
        (
            "chargepoint_firmware.ocpp_edge",
            "chargepoint_firmware.blocks",
            "chargepoint_firmware.main",
            "chargepoint_firmware.cli",
            "ocpp",
            "websockets",
        ),
    ),
    Rule(
        "pure cores import no edge",
        PURE_CORES,
        EDGE_LIBRARIES + PROJECT_EDGES,
        exempt=EDGE_MODULES_IN_PURE_CORES,
    ),
)

# Named exceptions that stay: (importer, imported) -> why.
ALLOWED: dict[tuple[str, str], str] = {
    ("csms.cli", "v2g_demo.run"): "`csms demo` is started from the CSMS CLI by a lazy import",
}

# Today's breaches, being fixed (issue 13): (importer, imported) -> reason. Only shrinks.
KNOWN_VIOLATIONS: dict[tuple[str, str], str] = {}

# Today's modules over 600 lines without a stated reason (issue 13 splits them). Only shrinks.
KNOWN_LONG_MODULES: dict[str, str] = {}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_files() -> list[Path]:
    return [
        path
        for package in SOURCE_PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if "__pycache__" not in path.parts
    ]


MODULES = {module_name(path): path for path in source_files()}


def imported_names(module: str, path: Path) -> Iterator[str]:
    """Every module `module` imports, absolute (relative imports resolved)."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                parent = ".".join(base + ([node.module] if node.module else []))
            else:
                parent = node.module or ""
            for alias in node.names:
                # `from pkg import submodule` imports the submodule; else the names live in pkg.
                child = f"{parent}.{alias.name}"
                yield child if child in MODULES else parent


def edges() -> set[tuple[str, str]]:
    return {
        (module, imported)
        for module, path in MODULES.items()
        for imported in imported_names(module, path)
    }


def under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def breaches() -> dict[tuple[str, str], str]:
    found: dict[tuple[str, str], str] = {}
    for importer, imported in edges():
        for rule in RULES:
            if (
                under(importer, rule.importers)
                and not under(importer, rule.exempt)
                and under(imported, rule.forbidden)
                and not under(imported, (importer,))  # a package's own submodules
            ):
                found[(importer, imported)] = rule.name
    return found


def test_the_walk_sees_the_whole_source() -> None:
    assert len(MODULES) > 100
    assert ("csms.cli", "v2g_demo.run") in edges()  # the one allowed crossing is seen


def test_every_rule_names_existing_modules() -> None:
    # A package renamed or moved must be renamed here too, or its rule would check nothing.
    for rule in RULES:
        for prefix in rule.importers + rule.exempt:
            assert any(under(module, (prefix,)) for module in MODULES), (rule.name, prefix)
        for prefix in rule.forbidden:
            if prefix.split(".")[0] in SOURCE_PACKAGES:
                assert any(under(module, (prefix,)) for module in MODULES), (rule.name, prefix)
    for prefix in PROJECT_EDGES:
        assert any(under(module, (prefix,)) for module in MODULES), prefix


def test_import_rules_hold_apart_from_the_known_violations() -> None:
    new = {
        edge: rule
        for edge, rule in breaches().items()
        if edge not in ALLOWED and edge not in KNOWN_VIOLATIONS
    }
    assert not new, "import rules broken:\n" + "\n".join(
        f"  {importer} imports {imported}  ({rule})"
        for (importer, imported), rule in sorted(new.items())
    )


def test_known_violations_only_shrink() -> None:
    current = breaches()
    fixed = sorted(edge for edge in KNOWN_VIOLATIONS if edge not in current)
    assert not fixed, (
        "these no longer break a rule: remove them from KNOWN_VIOLATIONS:\n"
        + "\n".join(f"  {importer} -> {imported}" for importer, imported in fixed)
    )
    stale_allowed = sorted(edge for edge in ALLOWED if edge not in edges())
    assert not stale_allowed, f"ALLOWED exceptions no longer used: {stale_allowed}"


def long_modules() -> dict[str, int]:
    found = {}
    for path in source_files():
        lines = len(path.read_text().splitlines())
        if lines <= MAX_LINES:
            continue
        docstring = ast.get_docstring(ast.parse(path.read_text(), str(path))) or ""
        if LONG_MODULE_REASON not in docstring:
            found[path.relative_to(ROOT).as_posix()] = lines
    return found


def test_no_module_over_600_lines_without_a_stated_reason() -> None:
    new = {path: n for path, n in long_modules().items() if path not in KNOWN_LONG_MODULES}
    assert not new, (
        f"modules over {MAX_LINES} lines whose opening docstring does not say "
        f"'{LONG_MODULE_REASON} ...': {new}"
    )


def test_known_long_modules_only_shrink() -> None:
    current = long_modules()
    fixed = sorted(path for path in KNOWN_LONG_MODULES if path not in current)
    assert not fixed, (
        f"no longer over {MAX_LINES} lines without a reason: remove from the list: {fixed}"
    )
