"""The package's shape: the top level is the library, the command line lives in
citypass/cli/, and no module imports another that imports it back (at any depth,
counting imports inside functions too). The lowest layer imports nothing above it."""

from __future__ import annotations

import ast
from pathlib import Path

import citypass

PACKAGE = Path(citypass.__file__).parent
ENTRY_POINTS = {"citypass.__main__"}  # `python -m citypass` runs the CLI
LOWEST = {"citypass.errors", "citypass.money", "citypass.address", "citypass.reasons", "citypass.budget_id"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("citypass"):
                # `from pkg import mod` depends on the module; `from mod import name` on mod
                subs = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules]
                targets = subs if len(subs) == len(node.names) else [node.module] + subs
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.startswith("citypass")]
            else:
                continue
            deps.update(t for t in targets if t in modules and t != name)
        graph[name] = deps
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on the path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return path[path.index(dep):] + [dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycle_anywhere_in_the_package():
    graph = import_graph()
    assert "citypass.cli.main" in graph and "citypass.errors" in graph  # the walk saw the package
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_cycle_finder_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_lowest_layer_imports_nothing_above_it():
    graph = import_graph()
    for name in LOWEST:
        assert graph[name] <= LOWEST, f"{name} imports {sorted(graph[name] - LOWEST)}"


def test_command_line_lives_in_its_own_folder():
    top_level = {p.stem for p in PACKAGE.glob("*.py")}
    assert not {n for n in top_level if n.startswith("cli")}, top_level
    assert (PACKAGE / "cli" / "main.py").is_file()
    graph = import_graph()
    library = {n for n in graph if not n.startswith("citypass.cli") and n not in ENTRY_POINTS}
    for name in library:
        assert not {d for d in graph[name] if d.startswith("citypass.cli")}, f"{name} imports the CLI"
