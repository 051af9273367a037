"""Imports flow one way (DESIGN.md section 2): ``kernels`` <- ``search_spaces`` <-
``predictors`` <- ``nas`` <- ``ui``, and no module of the project imports itself back
through others (no import cycle).

The graph is read from the source with `ast`, so it counts every ``import`` statement:
module level, inside functions (the lazy imports that keep `nas --help` fast) and under
``if TYPE_CHECKING:``. ``from a.b import c`` is an edge to ``a.b.c`` when that is a module
of the project, else to ``a.b``. The lazy package facades (PEP 562 ``importlib``
look-ups by name) are not statements and are not edges.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAYERS = ("kernels", "search_spaces", "predictors", "nas", "ui")  # lower imports nothing above


def project_modules(root: Path = REPO) -> dict[str, Path]:
    """Every module of the layered packages by dotted name (a package by its own name)."""
    modules = {}
    for package in LAYERS:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _owner(name: str, modules: dict[str, Path]) -> str | None:
    """The project module ``name`` is, or is inside of (None for other distributions)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the project modules its ``import`` statements name (anywhere in the file)."""
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets.update(filter(None, (_owner(a.name, modules) for a in node.names)))
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = module if is_package else module.rpartition(".")[0]
                    for _ in range(node.level - 1):
                        anchor = anchor.rpartition(".")[0]
                    base = ".".join(filter(None, (anchor, node.module)))
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    target = sub if sub in modules else _owner(base, modules)
                    if target is not None:
                        targets.add(target)
        targets.discard(module)
        graph[module] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
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
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
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


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """``a -> b`` for every import of a higher layer's module by a lower layer's."""
    rank = {name: i for i, name in enumerate(LAYERS)}
    return [f"{module} -> {target}" for module, targets in sorted(graph.items())
            for target in sorted(targets)
            if rank[target.split(".")[0]] > rank[module.split(".")[0]]]


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph(project_modules())


def test_layers_import_only_downwards(graph):
    assert layer_violations(graph) == []


def test_no_import_cycles(graph):
    assert cycles(graph) == []


def test_the_walk_sees_function_level_and_type_checking_imports(graph):
    # imports inside functions (the pipeline's export stage) and under TYPE_CHECKING (the
    # CLI's StudyContext) are edges, so a cycle hidden in either would be found
    assert "nas.export.study" in graph["nas.pipeline"]
    assert "nas.study_context" in graph["nas.cli"]
    assert {"kernels", "search_spaces", "nas.study_context"} <= set().union(*graph.values())


def test_the_checks_find_a_cycle_and_an_upward_import(tmp_path):
    for name, text in {"kernels/__init__.py": "",
                       "kernels/a.py": "def f():\n    from kernels import b\n",
                       "kernels/b.py": "from .a import f\nimport ui.app\n",
                       "ui/__init__.py": "", "ui/app.py": "import kernels.a\n"}.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    for package in ("search_spaces", "predictors", "nas"):
        (tmp_path / package).mkdir()
    toy = import_graph(project_modules(tmp_path))
    assert toy["kernels.a"] == {"kernels.b"} and toy["kernels.b"] == {"kernels.a", "ui.app"}
    assert cycles(toy) == [["kernels.a", "kernels.b", "ui.app"]]
    assert layer_violations(toy) == ["kernels.b -> ui.app"]
