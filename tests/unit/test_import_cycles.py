"""No import circle among the agent's modules (issue 13): the composition root (`wiring`) is the
only module that knows every block; the protocol edge (`ocpp_edge`) imports no block and no
agent; no block imports the agent; the shared `station` modules import none of them. Read with
`ast` (no import side effects); imports under `if TYPE_CHECKING:` count too: a cycle that only
the type checker sees is still a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "chargepoint_firmware"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules(package: str = PACKAGE) -> dict[str, Path]:
    return {module_name(p): p for p in sorted((ROOT / package).rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules `name` imports (a `from package import module` names the module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph(package: str = PACKAGE) -> dict[str, set[str]]:
    modules = project_modules(package)
    known = set(modules)
    return {name: imports_of(name, path, known) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start)
            if cycle:
                return cycle
    return None


def test_no_import_cycle_among_chargepoint_firmware_modules() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_protocol_edge_imports_no_block_and_no_agent() -> None:
    graph = import_graph()
    for name, targets in graph.items():
        if name.startswith(f"{PACKAGE}.ocpp_edge"):
            bad = {
                t
                for t in targets
                if t.startswith((f"{PACKAGE}.blocks", f"{PACKAGE}.agent", f"{PACKAGE}.wiring"))
            }
            assert not bad, f"{name} imports {sorted(bad)}"


def test_the_shared_station_modules_import_no_block_edge_or_agent() -> None:
    graph = import_graph()
    for name, targets in graph.items():
        if name.startswith(f"{PACKAGE}.station"):
            bad = {
                t
                for t in targets
                if t.startswith(
                    (
                        f"{PACKAGE}.blocks",
                        f"{PACKAGE}.ocpp_edge",
                        f"{PACKAGE}.agent",
                        f"{PACKAGE}.wiring",
                    )
                )
            }
            assert not bad, f"{name} imports {sorted(bad)}"


def test_blocks_import_neither_the_agent_nor_the_composition_root() -> None:
    graph = import_graph()
    for name, targets in graph.items():
        if name.startswith(f"{PACKAGE}.blocks"):
            bad = {t for t in targets if t in (f"{PACKAGE}.agent", f"{PACKAGE}.wiring")}
            assert not bad, f"{name} imports {sorted(bad)}"


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """The modules `start` imports, directly or through others."""
    seen: set[str] = set()
    todo = list(graph.get(start, ()))
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(graph.get(node, ()))
    return seen


def test_no_csms_command_line_module_imports_itself_round_a_circle() -> None:
    # The `csms` commands share their helpers through csms.cli_common, not by importing csms.cli
    # back (a circle that only worked because the import sat inside a function).
    graph = import_graph("csms")
    command_modules = [name for name in graph if name.startswith("csms.cli")]
    assert {"csms.cli", "csms.cli_sites", "csms.cli_common"} <= set(command_modules)
    for name in command_modules:
        assert name not in reachable(graph, name), f"{name} imports itself round a circle"


def test_cycle_finder_finds_a_planted_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    assert "a" in reachable({"a": {"b"}, "b": {"c"}, "c": {"a"}}, "a")
    assert "a" not in reachable({"a": {"b"}, "b": {"c"}, "c": set()}, "a")
