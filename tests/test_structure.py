"""The package's shape, checked from its source: no module over 400 lines, no import circle.

Imports count wherever they are (inside functions too: a lazy import is still a
dependency), except under `if TYPE_CHECKING:`, which never runs.

A module that grows past the limit is split by concern, and a new import that
closes a circle fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "pixelprune_cli"
MAX_LINES = 400

def module_lines() -> dict[str, int]:
    return {path.stem: len(path.read_text().splitlines()) for path in sorted(PACKAGE.glob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imported_modules(source: str, modules: set[str]) -> set[str]:
    """The package modules `source` imports anywhere, leaving out `if TYPE_CHECKING:` blocks."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:  # the else branch does run
                visit(child)
            return
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module is None:  # from . import x, y
                found.update(alias.name for alias in node.names)
            elif node.level == 1 and node.module:  # from .x import y
                found.add(node.module.split(".")[0])
            elif node.level == 0 and node.module and node.module.split(".")[0] == PACKAGE.name:
                parts = node.module.split(".")
                found.update([parts[1]] if len(parts) > 1 else [alias.name for alias in node.names])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == PACKAGE.name and len(parts) > 1:
                    found.add(parts[1])
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(source))
    return found & modules


def import_graph() -> dict[str, set[str]]:
    modules = set(module_lines())
    return {name: imported_modules((PACKAGE / f"{name}.py").read_text(), modules) - {name} for name in sorted(modules)}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as [a, b, ..., a], or None: a depth-first search that reports the back edge's path."""
    state: dict[str, str] = {}  # "open" while on the path, "done" after
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return None


def test_the_cycle_finder_finds_a_circle_and_accepts_layers():
    assert find_cycle({"api": {"engine"}, "engine": {"ray", "records"}, "ray": {"api"}, "records": set()}) == [
        "api", "engine", "ray", "api"]
    assert find_cycle({"a": {"a"}}) == ["a", "a"]
    assert find_cycle({"cli": {"api", "report"}, "api": {"engine", "report"}, "engine": {"report"}, "report": set()}) is None


def test_imports_are_found_in_functions_but_not_under_type_checking():
    source = (
        "from __future__ import annotations\n"
        "from typing import TYPE_CHECKING\n"
        "import numpy\n"
        "from .records import Item\n"
        "import pixelprune_cli.schema\n"
        "if TYPE_CHECKING:\n"
        "    from .shards import ShardedSink\n"
        "else:\n"
        "    from . import formats\n"
        "def run():\n"
        "    from . import writer, errors as e\n"
        "    from pixelprune_cli.ray import RayEngine\n"
    )
    modules = {"records", "schema", "shards", "formats", "writer", "errors", "ray", "numpy"}
    assert imported_modules(source, modules) == {"records", "schema", "formats", "writer", "errors", "ray"}


def test_no_module_is_over_400_lines():
    lines = module_lines()
    over = {name: count for name, count in lines.items() if count > MAX_LINES}
    assert not over, f"split these by concern (ARCHITECTURE.md, Layering): {over}"


def test_no_import_circle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])
