"""The package's layout: its import graph has no cycle, and every import follows the data flow (pyproject's
import-linter contracts)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp

PROJECT = Path(__file__).resolve().parents[1]


def _first_cycle(graph: grimp.ImportGraph) -> list[str] | None:
    """One import cycle among the package's modules (imports under TYPE_CHECKING left out), or None."""
    imports = {module: sorted(graph.find_modules_directly_imported_by(module)) for module in graph.modules}
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> list[str] | None:
        state[module] = "open"
        for imported in imports[module]:
            if state.get(imported) == "open":
                return path[path.index(imported):] + [imported]
            if imported not in state and (cycle := visit(imported, [*path, imported])):
                return cycle
        state[module] = "closed"
        return None

    for module in sorted(imports):
        if module not in state and (cycle := visit(module, [module])):
            return cycle
    return None


def test_the_import_graph_has_no_cycle():
    graph = grimp.build_graph("study", exclude_type_checking_imports=True)
    assert len(graph.modules) > 50, "the graph holds the whole package"
    assert _first_cycle(graph) is None, " -> ".join(_first_cycle(graph))


def test_a_cycle_is_found_where_there_is_one():
    graph = grimp.ImportGraph()
    for module in ("pkg", "pkg.a", "pkg.b", "pkg.c"):
        graph.add_module(module)
    graph.add_import(importer="pkg.a", imported="pkg.b")
    graph.add_import(importer="pkg.b", imported="pkg.c")
    assert _first_cycle(graph) is None
    graph.add_import(importer="pkg.c", imported="pkg.a")
    assert _first_cycle(graph) == ["pkg.a", "pkg.b", "pkg.c", "pkg.a"]


def test_every_import_follows_the_data_flow():
    result = subprocess.run([str(Path(sys.executable).with_name("lint-imports")), "--no-cache"], cwd=PROJECT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 2 kept, 0 broken." in result.stdout
