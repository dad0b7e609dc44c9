"""The layering of the tree, checked on every import statement (STYLE.md; tessera has such a
test). Dependencies point one way:

    cli, api, web  ->  http (request plumbing)  ->  services (persons, auth, audit,
                                                   integrations)  ->  db, hsm

- `api/` (JSON routes) never touches SQL or the database layer: it calls services.
- `web/` (pages) never imports `api/` routes, and `http/` imports neither.
- `pin/` and `audit/merkle.py` are pure: the standard library only.
- `hsm/` is a library of its own: it never imports `idservice`.
- A private module (`_name.py`) is imported only inside its own package.
- No import cycle between modules (imports under `if TYPE_CHECKING:` excepted).
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("idservice", "hsm")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(source: str, module: str, is_package: bool) -> Iterator[str]:
    """Absolute names of the modules `source` imports at run time."""
    tree = ast.parse(source)
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            skip.update(id(n) for child in node.body for n in ast.walk(child))
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            yield prefix
            # `from idservice.api import auth` imports the module idservice.api.auth
            yield from (f"{prefix}.{alias.name}" for alias in node.names)


def _graph() -> dict[str, set[str]]:
    modules: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            modules[_module_name(path)] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = set(_imports(path.read_text("utf-8"), name, path.name == "__init__.py"))
        graph[name] = {d for d in deps if d in modules and d != name}
    return graph


GRAPH = _graph()


def _external(name: str, source: str) -> list[str]:
    is_package = name.count(".") == 0
    return [n for n in _imports(source, name, is_package)]


def _violations(prefix: str, forbidden: tuple[str, ...]) -> list[str]:
    return sorted(f"{m} -> {d}" for m, deps in GRAPH.items()
                  if m == prefix or m.startswith(prefix + ".")
                  for d in deps if any(d == f or d.startswith(f + ".") for f in forbidden))


def _stdlib_only(path: Path, name: str) -> list[str]:
    own = name.rpartition(".")[0] if name.startswith("idservice.pin") else name
    return [d for d in _imports(path.read_text("utf-8"), name, path.name == "__init__.py")
            if d.split(".")[0] not in sys.stdlib_module_names
            and not (d == own or d.startswith("idservice.pin"))]


def test_api_never_imports_sql_or_database() -> None:
    assert _violations("idservice.api", ("idservice.queries", "idservice.db")) == []


def test_web_never_imports_api_routes() -> None:
    assert _violations("idservice.web", ("idservice.api",)) == []


def test_request_plumbing_imports_no_routes() -> None:
    assert _violations("idservice.http", ("idservice.api", "idservice.web")) == []


def test_services_never_import_routes() -> None:
    for layer in ("idservice.persons", "idservice.auth", "idservice.audit", "idservice.pin",
                  "idservice.queries", "idservice.db", "idservice.integrations",
                  "idservice.notify", "idservice.outbound"):
        assert _violations(layer, ("idservice.api", "idservice.web", "idservice.http",
                                   "idservice.cli")) == [], layer


def test_private_modules_are_imported_only_inside_their_package() -> None:
    """`db/_pgproc.py` and the like are their package's business (metrics.py imported it)."""
    found = sorted(f"{m} -> {d}" for m, deps in GRAPH.items() for d in deps
                   if d.rpartition(".")[2].startswith("_") and not d.endswith("__")
                   and not m.startswith(d.rpartition(".")[0] + "."))
    assert found == []


def test_hsm_never_imports_idservice() -> None:
    assert _violations("hsm", ("idservice",)) == []


PURE = [*sorted((ROOT / "idservice" / "pin").glob("*.py")),
        ROOT / "idservice" / "audit" / "merkle.py",
        ROOT / "idservice" / "notify" / "events.py"]


@pytest.mark.parametrize("path", PURE, ids=lambda p: p.name)
def test_pure_modules_import_only_stdlib(path: Path) -> None:
    assert _stdlib_only(path, _module_name(path)) == []


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles_between_modules() -> None:
    # Packages' __init__ modules re-export nothing here, so edges into them are just the
    # package being imported on the way: leave them out, or every package would be a cycle.
    graph = {m: {d for d in deps if not _is_package(d)} for m, deps in GRAPH.items()}
    assert _cycles(graph) == []


def _is_package(name: str) -> bool:
    path = ROOT / Path(*name.split("."))
    return (path / "__init__.py").exists()


# -- the checker itself must be able to fail --------------------------------------------------


def test_checker_flags_third_party_import_in_pure_module(tmp_path: Path) -> None:
    module = tmp_path / "format.py"
    module.write_text("import os\nimport numpy as np\nfrom pydantic import BaseModel\n")
    found = _stdlib_only(module, "idservice.pin.format")
    assert found == ["numpy", "pydantic", "pydantic.BaseModel"]


def test_checker_resolves_relative_and_from_imports() -> None:
    names = set(_imports("from ..db import pool\nfrom . import x\n", "idservice.api.pins", False))
    assert {"idservice.db", "idservice.db.pool", "idservice.api", "idservice.api.x"} <= names


def test_checker_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_checker_ignores_type_checking_imports() -> None:
    source = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from idservice.db import x\n"
    assert "idservice.db" not in set(_imports(source, "idservice.api.a", False))
