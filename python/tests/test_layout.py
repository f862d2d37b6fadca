"""The package's layout: one module per concern, no import cycles.

Every ``import`` of a stoker module by another counts, at module level, in
a function or under ``if TYPE_CHECKING:``: a lazy import that closes a
cycle is still a cycle (the two modules need each other), only hidden
from the interpreter. The generated stoker.v1 is left out.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "stoker"
CLIENT_MAX_LINES = 400


def module_names() -> dict[str, Path]:
    """stoker's modules (not stoker.v1) by dotted name."""
    out: dict[str, Path] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[:2] == ["stoker", "v1"]:
            continue
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imported(name: str, path: Path, known: set[str]) -> set[str]:
    """The stoker modules that module name imports anywhere in its source."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "stoker")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base.split(".")[0] != "stoker":
                continue
            for a in node.names:  # `from . import errors` imports stoker.errors
                sub = f"{base}.{a.name}"
                out.add(sub if sub in known else base)
    return {m for m in out if m in known and m != name}


def import_graph() -> dict[str, set[str]]:
    mods = module_names()
    return {name: imported(name, path, set(mods)) for name, path in mods.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module, and the
    modules that import themselves (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph[v]:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_every_kind_of_import() -> None:
    """The parser finds module-level, function-level and TYPE_CHECKING
    imports, absolute and relative, and the cycle finder finds a cycle
    closed by a lazy import: without this the next test could pass on a
    graph with no edges."""
    graph = import_graph()
    assert "stoker.client" in graph["stoker.torch_dataset"]  # from .client import Client
    assert "stoker.errors" in graph["stoker.types"]  # from .errors import InvalidArgument
    assert "stoker.arrow" in graph["stoker.types"]  # lazy, in Batch.record_batch
    assert "stoker.torch_columns" in graph["stoker.types"]  # lazy, in Batch.to_torch
    assert "stoker.errors" in graph["stoker.shm"]  # from . import errors
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"a"}}) == [["a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles() -> None:
    found = cycles(import_graph())
    assert not found, f"stoker modules that import each other (lazily or not): {found}"


def test_no_module_imports_the_package_itself() -> None:
    """stoker/__init__.py imports stoker.client on first use (PEP 562),
    which the graph does not see: no module may import ``stoker`` itself,
    so that import cannot close a cycle."""
    graph = import_graph()
    users = sorted(m for m, deps in graph.items() if "stoker" in deps)
    assert not users, f"modules that import the stoker package itself: {users}"


def test_client_is_small() -> None:
    lines = len((PACKAGE / "client.py").read_text().splitlines())
    assert lines < CLIENT_MAX_LINES, f"stoker/client.py has {lines} lines: move a concern out to its own module"


@pytest.mark.parametrize("module", ["stoker.types", "stoker", "stoker.errors"])
def test_framework_free_imports(module: str) -> None:
    """Importing the values (and the package, and its errors) imports no
    framework and no grpc: those come with stoker.client, stoker.torch and
    stoker.tf."""
    code = (
        f"import sys, {module}\n"
        "print(' '.join(sorted(m for m in ('torch', 'tensorflow', 'grpc', 'pyarrow') if m in sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(PACKAGE.parent), "PATH": "/usr/bin:/bin"},
    )
    assert out.stdout.strip() == "", f"import {module} imported {out.stdout.strip()}"


def test_client_still_names_what_moved() -> None:
    """Names that moved out of stoker.client still import from it."""
    import stoker
    import stoker.client as client
    import stoker.torch
    import stoker.types as types

    for name in types.__all__:
        assert getattr(client, name) is getattr(types, name), name
    for name in stoker.__all__:
        assert getattr(stoker, name) is not None, name
    assert stoker.Client is client.Client
    assert stoker.torch.columns_to_tensors.__module__ == "stoker.torch_columns"
