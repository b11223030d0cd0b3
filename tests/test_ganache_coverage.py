"""The Ganache subset covers every function of CityPass.

`make test` runs the contract tests a second time on Ganache: the modules marked `ganache`
(pytestmark), minus the tests marked `anvil_only` (each says why). This check reads those tests
without running them: every function in the contract's ABI must be named (called as `cp.name`,
or given as a string, as the role matrix does) somewhere a Ganache test reaches: its body, its
decorators, its fixtures and helpers (here, in conftest.py or in a *_helpers.py), transitively.
A new contract function, or a test moved out of the subset, without Ganache coverage fails here.
The check needs no chain: it runs in the Anvil pass (it is not itself in the subset).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from citypass import contract

TESTS = Path(__file__).resolve().parent
GANACHE_RUN = '-m "ganache and not anvil_only"'


@pytest.fixture(autouse=True)
def isolation():
    """Overrides conftest's Brownie snapshot: nothing here touches a chain."""


def abi_functions() -> set[str]:
    return {e["name"] for e in contract.load_artifact()["abi"] if e["type"] == "function"}


def _has_mark(node: ast.AST, mark: str) -> bool:
    return any(mark in ast.unparse(d) for d in getattr(node, "decorator_list", []))


def _definitions(tree: ast.Module) -> dict[str, ast.AST]:
    """Module-level functions (tests, fixtures, helpers) and constants by name."""
    defs: dict[str, ast.AST] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            defs[node.name] = node
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    defs[target.id] = node.value
    return defs


def _is_ganache_module(tree: ast.Module) -> bool:
    return any(isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in n.targets)
               and "ganache" in ast.unparse(n.value) for n in tree.body)


def _named_in(root: ast.AST, scopes: list[dict[str, ast.AST]]) -> set[str]:
    """Attribute names and string constants in `root` and in every definition it reaches."""
    named: set[str] = set()
    todo, seen = [root], set()
    while todo:
        node = todo.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        for sub in ast.walk(node):
            refs: list[str] = []
            if isinstance(sub, ast.Attribute):
                named.add(sub.attr)
            elif isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                named.update(re.findall(r"[A-Za-z_]\w*", sub.value))
            elif isinstance(sub, ast.Name):
                refs.append(sub.id)
            elif isinstance(sub, ast.arg):
                refs.append(sub.arg)  # a fixture
            for ref in refs:
                for scope in scopes:
                    if ref in scope:
                        todo.append(scope[ref])
                        break
    return named


def ganache_coverage(test_files: list[Path]) -> tuple[set[str], list[str]]:
    """(names reached by the Ganache tests among `test_files`, those tests' ids)."""
    shared = [_definitions(ast.parse((TESTS / "conftest.py").read_text()))]
    shared += [_definitions(ast.parse(p.read_text())) for p in sorted(TESTS.glob("*_helpers.py"))]
    named: set[str] = set()
    tests: list[str] = []
    for path in test_files:
        tree = ast.parse(path.read_text())
        if not _is_ganache_module(tree):
            continue
        scopes = [_definitions(tree)] + shared
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_") and not _has_mark(node, "anvil_only"):
                named |= _named_in(node, scopes)
                tests.append(f"{path.name}::{node.name}")
    return named, tests


def test_every_contract_function_is_covered_on_ganache():
    named, tests = ganache_coverage(sorted(TESTS.glob("test_*.py")))
    missing = sorted(abi_functions() - named)
    assert not missing, f"no Ganache test calls {missing}: cover them in a `ganache` module (not anvil_only)"
    assert len(tests) > 100, tests  # the subset is the bulk of the contract tests, not a token few


def test_the_check_sees_a_function_without_coverage(tmp_path):
    """The check can fail: leave out the module that alone covers a function, and it is missing."""
    without_roles = [p for p in sorted(TESTS.glob("test_*.py")) if p.name != "test_roles.py"]
    named, _ = ganache_coverage(without_roles)
    assert "revokeRole" not in named and "revokeRole" in ganache_coverage([TESTS / "test_roles.py"])[0]
    anvil_only = tmp_path / "test_only_on_anvil.py"
    anvil_only.write_text('import pytest\npytestmark = pytest.mark.ganache\n\n\n'
                          '@pytest.mark.anvil_only("why")\ndef test_x(cp):\n    cp.revokeRole(1, 2)\n')
    assert "revokeRole" not in ganache_coverage(without_roles + [anvil_only])[0]
    anvil_only.write_text(anvil_only.read_text().replace('@pytest.mark.anvil_only("why")\n', ""))
    assert "revokeRole" in ganache_coverage(without_roles + [anvil_only])[0]


def test_make_test_runs_the_ganache_subset():
    """The subset this check vouches for is the one CI runs."""
    recipe = (TESTS.parent / "Makefile").read_text().split("\ntest:", 1)[1].split("\n\n", 1)[0]
    assert any(GANACHE_RUN in line and "--network" in line for line in recipe.splitlines()), recipe
