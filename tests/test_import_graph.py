"""Imports inside resnetlab run one way: no module reaches, directly or round about, back to itself.

Every ``import`` statement counts, at module level and inside functions alike: a function-level
import only defers the circle to the first call, and a circle means two modules that cannot be
understood (or moved) apart. ``if TYPE_CHECKING:`` imports are left out, since they never run.

Importing ``a.b.c`` also runs the ``__init__`` of ``a.b``, so such an import is an edge to those
packages too, except to the importer's own packages: those are initialised before it anyway, and
a package's ``__init__`` re-exporting its own modules is no circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import resnetlab

ROOT = Path(resnetlab.__file__).resolve().parent
PACKAGE = "resnetlab"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imported(tree: ast.AST, name: str, is_package: bool) -> list[str]:
    """Dotted names this module's import statements reach (resolved against the module for relative ones)."""
    found: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                here = name.split(".") if is_package else name.split(".")[:-1]
                here = here[:len(here) - (node.level - 1)]
                base = ".".join([*here, node.module] if node.module else here)
            else:
                base = node.module or ""
            found.append(base)
            found.extend(f"{base}.{alias.name}" for alias in node.names)  # kept only if a module
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        own_packages = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        edges: set[str] = set()
        for target in _imported(tree, name, path.name == "__init__.py"):
            if not (target == PACKAGE or target.startswith(PACKAGE + ".")):
                continue
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                step = ".".join(parts[:i])
                if step in modules and step not in own_packages and step != name:
                    edges.add(step)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def _path(graph: dict[str, set[str]], component: list[str]) -> str:
    """One concrete circle through the component, for the failure message."""
    members = set(component)
    start = component[0]
    trail, seen = [start], {start}
    node = start
    while True:
        nxt = sorted(graph[node] & members)
        back = start if start in nxt else None
        if back:
            return " -> ".join([*trail, start])
        fresh = [n for n in nxt if n not in seen]
        if not fresh:
            return " -> ".join(trail) + " -> ..."
        node = fresh[0]
        trail.append(node)
        seen.add(node)


def test_the_graph_sees_the_package():
    graph = import_graph()
    assert "resnetlab.studies.runner" in graph
    assert "resnetlab.config.loading" in graph["resnetlab.studies.spec"] or \
        "resnetlab.config" in graph["resnetlab.studies.spec"]


def test_cycles_are_found():
    toy = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert cycles(toy) == [["a", "b", "c"]]


def test_no_import_cycle_in_the_package():
    graph = import_graph()
    found = cycles(graph)
    assert not found, "import circles:\n" + "\n".join(_path(graph, c) for c in found)
