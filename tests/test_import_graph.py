"""The import graph follows DESIGN.md's layers: no circle among edgecv's modules (lazy imports inside
functions included, ``TYPE_CHECKING`` blocks not), and no module-level import of a higher layer.

Read from the source with ``ast``, so the test imports nothing it checks and names the offending
line when it fails."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "edgecv"

# Higher imports lower. A module-level import goes down or stays in its layer; one that goes up
# must be inside the function that needs it.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("edgecv",),  # the package face: lazily re-exports create_model, export and load
    ("edgecv.cli",),
    ("edgecv.sweep",),
    ("edgecv.export", "edgecv.evaluate", "edgecv.deploy"),
    ("edgecv.calibration",),
    ("edgecv.runtime",),
    ("edgecv.tensorrt", "edgecv.int8_kernels"),
    ("edgecv.report",),
    ("edgecv.sysinfo", "edgecv.preprocess", "edgecv.artifact_metadata"),
    ("edgecv.runfolder", "edgecv.onnx_graph"),
    ("edgecv.models", "edgecv.boxes"),
    ("edgecv.progress", "edgecv.records", "edgecv.version", "edgecv.errors"),
)


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    line: int
    lazy: bool  # inside a function


def _module_names() -> dict[str, Path]:
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        names[name] = path
    return names


MODULES = _module_names()


def _absolute(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports_of(module: str, path: Path) -> list[Import]:
    found: list[Import] = []

    def add(target: str, node: ast.AST, lazy: bool) -> None:
        if target in MODULES and target != module:
            found.append(Import(module, target, node.lineno, lazy))

    def visit(node: ast.AST, lazy: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if _is_type_checking(child):
                continue
            inner = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    add(alias.name, child, inner)
            elif isinstance(child, ast.ImportFrom):
                base = _absolute(module, child, path.name == "__init__.py")
                subs = [f"{base}.{a.name}" for a in child.names if f"{base}.{a.name}" in MODULES]
                for sub in subs:
                    add(sub, child, inner)
                # A name taken from a package's face (not a submodule of it) runs that __init__; a
                # submodule's own parents run anyway and are no edge.
                if len(subs) < len(child.names):
                    add(base, child, inner)
            visit(child, inner)

    visit(ast.parse(path.read_text()), False)
    return found


IMPORTS = [imp for name, path in sorted(MODULES.items()) for imp in _imports_of(name, path)]


def _layer(module: str) -> int | None:
    for rank, prefixes in enumerate(LAYERS):
        if any(module == p or (p != "edgecv" and module.startswith(p + ".")) for p in prefixes):
            return len(LAYERS) - rank
    return None


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
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
    return found


def test_every_module_has_a_layer():
    assert [m for m in MODULES if _layer(m) is None] == []


def test_no_import_circle():
    edges: dict[str, set[str]] = {name: set() for name in MODULES}
    for imp in IMPORTS:
        edges[imp.source].add(imp.target)
    circles = _cycles(edges)
    described = [
        " ↔ ".join(c)
        + ": "
        + "; ".join(f"{i.source}:{i.line} → {i.target}" for i in IMPORTS if {i.source, i.target} <= set(c))
        for c in circles
    ]
    assert circles == [], "\n".join(described)


def test_no_module_level_import_runs_up_a_layer():
    upward = [
        f"{i.source}:{i.line} imports {i.target}"
        for i in IMPORTS
        if not i.lazy and (_layer(i.target) or 0) > (_layer(i.source) or 0)
    ]
    assert upward == []


@pytest.mark.parametrize("module", ["edgecv.export.verify"])
def test_fp32_verification_does_not_reach_the_int8_package(module):
    reached, todo = set(), [module]
    while todo:
        current = todo.pop()
        for imp in IMPORTS:
            if imp.source == current and not imp.lazy and imp.target not in reached:
                reached.add(imp.target)
                todo.append(imp.target)
    assert not any(m == "edgecv.calibration" or m.startswith("edgecv.calibration.") for m in reached), sorted(reached)
