"""The package's layout: no import cycles, maths modules free of the run/IO layer, no god modules.

Read from the source with ``ast`` (nothing is imported): every ``import`` / ``from ... import`` counts, at the top
of a module or inside a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "gs_jax"

# The maths modules: they take arrays and return arrays; a caller that wants a table, a file or a figure makes it.
MATHS = ("ntk", "features", "dynamics", "fixed_points", "losses", "attacks", "reference_attacks")
FORBIDDEN = ("gs_jax.runs", "gs_jax.plotting", "matplotlib")

MAX_LINES = 600
# Modules allowed to be longer, each with its reason.
LONG_MODULES: dict[str, str] = {}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path) -> set[str]:
    """Absolute dotted names imported by module ``name`` (relative imports resolved)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            # ``from gs_jax import dynamics`` imports the module gs_jax.dynamics; ``from m import f`` imports m
            found.update(f"{module}.{alias.name}" for alias in node.names)
            found.add(module)
    return found


def _graph() -> dict[str, set[str]]:
    """gs_jax module → the gs_jax modules whose code runs when it imports (the target and its packages)."""
    sources = _sources()
    graph = {}
    for name, path in sources.items():
        edges = set()
        for imported in _imports(name, path):
            parts = imported.split(".")
            for i in range(1, len(parts) + 1):
                target = ".".join(parts[:i])
                # a package being initialised already runs when its own submodules import it
                if target in sources and target != name and not name.startswith(target + "."):
                    edges.add(target)
        graph[name] = edges
    return graph


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_import_cycle():
    cycle = _find_cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


@pytest.mark.parametrize("module", MATHS)
def test_maths_modules_do_not_import_the_output_layer(module):
    name = f"gs_jax.{module}"
    sources = _sources()
    if name not in sources:
        pytest.skip(f"{name} does not exist")
    graph = _graph()
    # everything that runs when the module is imported: the module and the gs_jax modules it reaches
    reached, todo, via = {name}, [name], {name: [name]}
    while todo:
        current = todo.pop()
        for nxt in graph[current] - reached:
            reached.add(nxt)
            via[nxt] = via[current] + [nxt]
            todo.append(nxt)
    for current in sorted(reached):
        for imported in _imports(current, sources[current]):
            for bad in FORBIDDEN:
                assert imported != bad and not imported.startswith(bad + "."), (
                    f"{name} imports {imported} (via {' -> '.join(via[current])})"
                )


def test_no_module_is_too_long():
    too_long = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        n = len(path.read_text().splitlines())
        rel = path.relative_to(PACKAGE).as_posix()
        if n >= MAX_LINES and rel not in LONG_MODULES:
            too_long[rel] = n
    assert not too_long, (
        f"modules of {MAX_LINES}+ lines (split them, or allow-list them with a reason): {too_long}"
    )
