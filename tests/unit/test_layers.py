"""The layers of components/ (components/__init__.py): imports go downward only, and never in a circle.

Every import counts, at module level, inside a function or under
TYPE_CHECKING: a circle hidden in a function is still a circle to a reader.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("spec", "render", "ssh", "operations", "resources")
# The pure layers make no resources; reading the stack's config out of the runtime is allowed.
PURE = ("spec", "render")
PULUMI_IN_PURE = {"components.spec.stack_config": {"pulumi.runtime"}}
OUTSIDE_THE_LAYERS = {"components", "components.legacy_paths"}


def modules(root: Path) -> dict[str, Path]:
    found = {}
    for path in sorted((root / "components").rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports_of(name: str, path: Path) -> set[str]:
    """Every module or name `name` imports (absolute or relative, at any depth of the file)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def layer_of(module: str) -> int | None:
    parts = module.split(".")
    if len(parts) >= 2 and parts[0] == "components" and parts[1] in LAYERS:
        return LAYERS.index(parts[1])
    return None


def graph(root: Path) -> dict[str, set[str]]:
    """Module -> the project modules it imports (a package's __init__ exposing its own modules aside)."""
    known = modules(root)
    edges = {}
    for name, path in known.items():
        targets = {i for i in imports_of(name, path) if i in known and i != name}
        if path.name == "__init__.py":
            targets = {t for t in targets if not t.startswith(name + ".")}
        edges[name] = targets
    return edges


def upward_imports(root: Path) -> list[str]:
    found = []
    for name, targets in graph(root).items():
        own = layer_of(name)
        for target in sorted(targets):
            theirs = layer_of(target)
            if own is not None and theirs is not None and theirs > own:
                found.append(f"{name} (layer {LAYERS[own]}) imports {target} (layer {LAYERS[theirs]})")
    return found


def cycles(root: Path) -> list[list[str]]:
    edges, state, found = graph(root), {}, []

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for target in sorted(edges.get(node, ())):
            if state.get(target) == "open":
                found.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target, path + [target])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    return found


def test_every_module_lives_in_a_layer():
    loose = [name for name in modules(ROOT) if layer_of(name) is None and name not in OUTSIDE_THE_LAYERS]
    assert loose == [], f"put each of these in one of {LAYERS}"


def test_imports_go_downward_only():
    assert upward_imports(ROOT) == []


def test_no_modules_import_each_other_even_through_others():
    assert cycles(ROOT) == []


@pytest.mark.parametrize("layer", PURE)
def test_the_pure_layers_import_no_pulumi(layer):
    offending = []
    for name, path in modules(ROOT).items():
        if layer_of(name) != LAYERS.index(layer):
            continue
        allowed = PULUMI_IN_PURE.get(name, set())
        for imported in imports_of(name, path):
            if imported.split(".")[0] in ("pulumi", "pulumi_aws", "pulumi_command") and \
                    not any(imported == a or imported.startswith(a + ".") for a in allowed):
                offending.append(f"{name} imports {imported}")
    assert offending == []


def test_the_checks_see_an_upward_import_and_a_circle(tmp_path):
    """Not vacuous: a render module importing a resource, and two modules importing each other."""
    for package in ("components", "components/render", "components/resources"):
        (tmp_path / package).mkdir(parents=True, exist_ok=True)
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "components/render/files.py").write_text("def f():\n    from components.resources import cluster\n")
    (tmp_path / "components/resources/cluster.py").write_text("from .network import x\n")
    (tmp_path / "components/resources/network.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from components.resources.cluster import y\n")
    assert upward_imports(tmp_path) == [
        "components.render.files (layer render) imports components.resources (layer resources)",
        "components.render.files (layer render) imports components.resources.cluster (layer resources)"]
    assert cycles(tmp_path) == [["components.resources.cluster", "components.resources.network",
                                 "components.resources.cluster"]]
