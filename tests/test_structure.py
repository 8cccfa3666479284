"""The package's shape, checked from its source: no module over 400 lines, no import circle.

Imports count wherever they are (inside functions too: a lazy import is still a
dependency), except under `if TYPE_CHECKING:`, which never runs. Modules are
named by their dotted path inside the package (`coder`, or `coding.coder` in a
subpackage), so the checks hold for any layout.

A module that grows past the limit is split by concern, and a new import that
closes a circle fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "pixelprune_cli"
MAX_LINES = 400

def module_name(path: Path) -> str:
    """A module's dotted name inside the package: `coder`, `coding.coder`; a subpackage's __init__ is `coding`."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_files() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py")) if module_name(path)}


def module_lines() -> dict[str, int]:
    return {name: len(path.read_text().splitlines()) for name, path in module_files().items()}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imported_modules(source: str, modules: set[str], package: tuple[str, ...] = ()) -> set[str]:
    """The package modules `source` imports anywhere, leaving out `if TYPE_CHECKING:` blocks.

    `package` is the subpackage the source sits in (() at the top), against which
    relative imports resolve. `from X import y` imports X.y when that is a module, else X.
    """
    found: set[str] = set()

    def longest(parts: list[str]) -> None:
        for end in range(len(parts), 0, -1):
            if ".".join(parts[:end]) in modules:
                found.add(".".join(parts[:end]))
                return

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:  # the else branch does run
                visit(child)
            return
        base: list[str] | None = None
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[:len(package) - (node.level - 1)]) if node.level - 1 <= len(package) else None
            elif node.module and node.module.split(".")[0] == PACKAGE.name:
                base = []
                node_module = node.module.split(".")[1:]
            if base is not None:
                parts = base + (node_module if not node.level else (node.module.split(".") if node.module else []))
                for alias in node.names:
                    if ".".join([*parts, alias.name]) in modules:
                        found.add(".".join([*parts, alias.name]))
                    else:
                        longest(parts)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == PACKAGE.name:
                    longest(parts[1:])
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(source))
    return found & modules


def import_graph() -> dict[str, set[str]]:
    files = module_files()
    modules = set(files)
    graph = {}
    for name, path in files.items():
        package = tuple(path.relative_to(PACKAGE).parts[:-1])
        graph[name] = imported_modules(path.read_text(), modules, package) - {name}
    return graph


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
        "import pixelprune_cli.model\n"
        "if TYPE_CHECKING:\n"
        "    from .shards import ShardedSink\n"
        "else:\n"
        "    from . import formats\n"
        "def run():\n"
        "    from . import writer, errors as e\n"
        "    from pixelprune_cli.ray import RayEngine\n"
    )
    modules = {"records", "model", "shards", "formats", "writer", "errors", "ray", "numpy"}
    assert imported_modules(source, modules) == {"records", "model", "formats", "writer", "errors", "ray"}


def test_imports_resolve_from_the_subpackage_they_sit_in():
    source = ("from . import presets\n"
              "from ..storage import urls\n"
              "from ..errors import ConfigError\n"
              "from pixelprune_cli.outputs.schema import output_schema\n"
              "import pixelprune_cli.run.engine as engine\n")
    modules = {"coding.presets", "storage.urls", "errors", "outputs.schema", "run.engine", "presets"}
    assert imported_modules(source, modules, ("coding",)) == {"coding.presets", "storage.urls", "errors",
                                                              "outputs.schema", "run.engine"}


def test_no_module_is_over_400_lines():
    lines = module_lines()
    over = {name: count for name, count in lines.items() if count > MAX_LINES}
    assert not over, f"split these by concern (ARCHITECTURE.md, Layering): {over}"


def test_no_import_circle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])
