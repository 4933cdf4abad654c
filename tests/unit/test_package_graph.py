"""The top-level packages form a DAG, in one direction (issue 17).

From the bottom: the pure core (schemas < enrichment < aggregation < billing), ``sinks``
(ClickHouse, the Store protocol), then ``streams`` (Kafka adapters) and ``services`` (the
application services) side by side, ``api`` (HTTP) over the services, and ``meterline`` on
top (settings, the composition root, CLI, demo). Every import of one package by another,
wherever it is written (lazy imports in functions too), is read from the source with ``ast``.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

NOT_SHIPPED = {"tests", "bench"}  # they may import anything

CORE = {"schemas", "enrichment", "aggregation", "billing"}

#: What each top-level package may import (besides itself, the standard library and
#: third-party libraries). Anything else is an error, and so is a package not listed here.
ALLOWED: dict[str, set[str]] = {
    "schemas": set(),
    "enrichment": {"schemas"},
    "aggregation": {"schemas", "enrichment"},
    "billing": {"schemas", "enrichment", "aggregation"},
    "sinks": CORE,
    "services": CORE | {"sinks"},
    "streams": CORE | {"sinks", "services"},  # services: only what it implements (below)
    "api": CORE | {"sinks", "services"},
    "meterline": CORE | {"sinks", "services", "streams", "api"},
}

#: Edges allowed only for some modules: a Kafka adapter implements a protocol the services
#: declare, it does not use the services.
NARROW: dict[tuple[str, str], set[str]] = {
    ("streams", "services"): {"services.publishing"},
}


def top_level_packages() -> set[str]:
    return {
        p.parent.name for p in REPO.glob("*/__init__.py")
        if p.parent.name not in NOT_SHIPPED and not p.parent.name.startswith(".")
    }


def imports() -> dict[tuple[str, str], dict[str, set[str]]]:
    """(importer, imported) package → {imported module: importing files}."""
    packages = top_level_packages()
    found: dict[tuple[str, str], dict[str, set[str]]] = {}
    for package in packages:
        for path in (REPO / package).rglob("*.py"):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules = [node.module]
                else:
                    continue
                for module in modules:
                    top = module.split(".")[0]
                    if top in packages and top != package:
                        files = found.setdefault((package, top), {}).setdefault(module, set())
                        files.add(str(path.relative_to(REPO)))
    return found


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {p: set() for p in top_level_packages()}
    for importer, imported in imports():
        edges[importer].add(imported)
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the graph as a path (first = last), or None."""
    state: dict[str, str] = {}  # "open" while on the DFS path, "done" after
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = "done"
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_scan_sees_every_package_and_the_known_edges():
    packages = top_level_packages()
    assert {"schemas", "sinks", "streams", "services", "api", "meterline"} <= packages
    edges = graph()
    assert "api" in edges["meterline"] and "services" in edges["api"]


def test_no_import_cycle_between_top_level_packages():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_every_package_has_its_place():
    assert top_level_packages() <= set(ALLOWED), "add the new package to ALLOWED"


def test_imports_go_only_the_allowed_way():
    wrong = {
        f"{importer} -> {imported}": sorted({f for files in modules.values() for f in files})
        for (importer, imported), modules in imports().items()
        if imported not in ALLOWED.get(importer, set())
    }
    assert not wrong, f"imports against the layering: {wrong}"


def test_narrow_edges_import_only_their_modules():
    found = imports()
    wrong = {
        f"{importer} -> {module}": sorted(files)
        for (importer, imported), allowed in NARROW.items()
        for module, files in found.get((importer, imported), {}).items()
        if module not in allowed
    }
    assert not wrong, f"imports beyond the protocols implemented: {wrong}"


def test_allowed_edges_form_a_dag_themselves():
    allowed = {p: set(targets) for p, targets in ALLOWED.items()}
    assert find_cycle(allowed) is None
