"""The layer rule: which group of modules may import which (written by the subpackage move, move.py).

Groups, top to bottom; a module imports only from groups below its own. Groups
on one line are independent of each other. The per-image function (`coding`)
never touches storage, inputs, outputs or engines; `report` is the only
importer of rich, and `storage` the only one of pyarrow.fs and fsspec (the
seam to what the user named). Modules in no group are not checked.
"""

from __future__ import annotations

import ast

from test_structure import PACKAGE, import_graph, module_files

LAYERS = [
    ['cli'],
    ['ray'],
    ['api', 'prune', 'hf'],
    ['pictures'],
    ['model'],
    ['run'],
    ['report'],
    ['inputs'],
    ['outputs'],
    ['storage', 'coding'],
    ['records', 'errors'],
]


def group_of(module: str) -> tuple[int, str] | None:
    for level, groups in enumerate(LAYERS):
        for group in groups:
            if module == group or module.startswith(group + "."):
                return level, group
    return None


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    found = []
    for module, imported in sorted(graph.items()):
        here = group_of(module)
        for target in sorted(imported):
            there = group_of(target)
            if here is None or there is None or here[1] == there[1]:
                continue
            if there[0] <= here[0]:
                found.append(f"{module} ({here[1]}) imports {target} ({there[1]}), which is not below it")
    return found


def test_the_layer_rule_catches_an_upward_and_a_sideways_import():
    graph = {"coding.pipeline": {"storage.storage", "errors"}, "storage.storage": {"coding.presets"},
             "api": {"run.engine"}, "run.engine": {"coding.pipeline", "report.report"}}
    assert layer_violations(graph) == [
        "coding.pipeline (coding) imports storage.storage (storage), which is not below it",
        "storage.storage (storage) imports coding.presets (coding), which is not below it",
    ]


def test_groups_import_only_downwards():
    assert not layer_violations(import_graph()), "\n".join(layer_violations(import_graph()))


def third_party_importers(prefixes: tuple[str, ...]) -> set[str]:
    found = set()
    for name, path in module_files().items():
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            if any(n == p or n.startswith(p + ".") for n in names for p in prefixes):
                found.add(name)
    return found


def test_only_report_imports_rich():
    assert {m for m in third_party_importers(("rich",)) if not m.startswith("report")} == set()


def test_only_storage_imports_pyarrow_fs_and_fsspec():
    assert {m for m in third_party_importers(("pyarrow.fs", "fsspec")) if not m.startswith("storage")} == set()


def test_the_public_api_names_are_not_shadowed_by_submodules():
    """`pixelprune_cli.restore` and `.show` stay the API functions after every module is imported."""
    import importlib

    import pixelprune_cli

    optional = {"torch", "torchvision", "transformers", "datasets", "trl", "ray"}  # the extras' packages
    for name in sorted(module_files()):
        if name.startswith("__"):
            continue
        try:
            importlib.import_module(f"{PACKAGE.name}.{name}")
        except ModuleNotFoundError as exc:  # a module of an extra that is not installed (hf, training, ...)
            if (exc.name or "").split(".")[0] not in optional:
                raise
    for name in pixelprune_cli.__all__:
        if name != "__version__":
            assert not isinstance(getattr(pixelprune_cli, name), type(pixelprune_cli)), name
