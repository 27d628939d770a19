"""The import graph of skmnist: no circles, and no import from a lower layer up.

Every ``import`` statement counts, also those inside functions (which skmnist
uses to keep ``import skmnist`` and the CLI fast): a lazy import still ties the
importing module to the imported one.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "skmnist"

# Lowest first. A module may import modules of its own layer or of lower ones.
LAYERS = {
    "foundations": {
        "skmnist._version",
        "skmnist._architecture",
        "skmnist._files",
        "skmnist._interrupts",
        "skmnist._zip_directory",
        "skmnist._compat",
        "skmnist._caches",
        "skmnist._scikeras_layout",
        "skmnist._scikeras_without_tensorflow",
        "skmnist._random",
        "skmnist._compilation_cache",
        "skmnist._quiet_keras",
        "skmnist._thread_pools",
        "skmnist.datasets",
        "skmnist.datasets._mnist",
        "skmnist.datasets._corruptions",
    },
    "training and inference": {
        "skmnist._workspace",
        "skmnist._inference",
        "skmnist._keras_fit",
        "skmnist._augmentation",
        "skmnist._dropout",
        "skmnist._network",
        "skmnist._convergence",
        "skmnist._packing",
        "skmnist._training",
    },
    "estimators": {
        "skmnist._scaler",
        "skmnist._images",
        "skmnist._classifier",
        "skmnist._pipeline",
        "skmnist._plotting",
    },
    "uses of fitted estimators": {
        "skmnist._persistence",
        "skmnist._persistence._archive",
        "skmnist._persistence._codec",
        "skmnist._persistence._errors",
        "skmnist._persistence._keras_v1",
        "skmnist._persistence._registry",
        "skmnist._onnx",
        "skmnist._dask",
        "skmnist.model_selection",
    },
    "applications": {
        "skmnist._model_files",
        "skmnist._search",
        "skmnist._serve",
        "skmnist._serve_guards",
    },
    "entry points": {"skmnist", "skmnist.__main__", "skmnist._cli"},
}
RANK = {module: rank for rank, layer in enumerate(LAYERS.values()) for module in layer}


def _modules(package: Path = PACKAGE) -> dict[str, Path]:
    modules = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Each module's skmnist imports, from its source, lazy ones included."""
    graph = {}
    for name, path in modules.items():
        imported = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                submodules = {f"{node.module}.{alias.name}" for alias in node.names}
                if submodules <= set(modules):  # from skmnist import _training
                    imported |= submodules
                else:
                    imported.add(node.module)
            elif isinstance(node, ast.ImportFrom):
                raise AssertionError(
                    f"{name}: relative import; skmnist imports absolutely"
                )
        graph[name] = {m for m in imported if m in modules} - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A circle of imports in ``graph``, as a list of modules, or None."""
    state = dict.fromkeys(graph, "new")
    path: list[str] = []

    def visit(module):
        state[module] = "open"
        path.append(module)
        for imported in sorted(graph[module]):
            if state[imported] == "open":
                return [*path[path.index(imported) :], imported]
            if state[imported] == "new" and (cycle := visit(imported)):
                return cycle
        path.pop()
        state[module] = "done"
        return None

    for module in graph:
        if state[module] == "new" and (cycle := visit(module)):
            return cycle
    return None


def test_every_module_has_a_layer():
    assert set(_modules()) - set(RANK) == set(), "add new modules to LAYERS"
    assert set(RANK) - set(_modules()) == set(), "remove deleted modules from LAYERS"


def test_no_import_circles():
    assert find_cycle(import_graph(_modules())) is None


def test_no_module_imports_a_higher_layer():
    upward = [
        f"{module} ({layer}) imports {imported}"
        for module, imports in import_graph(_modules()).items()
        for imported in sorted(imports)
        if RANK[imported] > RANK[module]
        for layer in [next(k for k, v in LAYERS.items() if module in v)]
    ]
    assert upward == []


@pytest.mark.parametrize(
    "lower, higher",
    [
        ("skmnist._training", "skmnist._classifier"),
        ("skmnist._inference", "skmnist._classifier"),
        ("skmnist._workspace", "skmnist._classifier"),
        ("skmnist._classifier", "skmnist._persistence"),
        ("skmnist._classifier", "skmnist._cli"),
        ("skmnist._classifier", "skmnist._search"),
        ("skmnist._search", "skmnist._cli"),
        ("skmnist._model_files", "skmnist._cli"),
    ],
)
@pytest.mark.slow
def test_layers_are_ordered(lower, higher):
    assert RANK[lower] < RANK[higher]
    reachable, todo, graph = set(), [lower], import_graph(_modules())
    while todo:
        for imported in graph[todo.pop()] - reachable:
            reachable.add(imported)
            todo.append(imported)
    assert higher not in reachable


def test_the_checks_see_circles_and_lazy_imports(tmp_path):
    package = tmp_path / "skmnist"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "_a.py").write_text("from skmnist._b import f\n")
    (package / "_b.py").write_text("def f():\n    from skmnist import _a\n")
    graph = import_graph(_modules(package))
    assert graph["skmnist._b"] == {"skmnist._a"}
    assert find_cycle(graph) in (
        ["skmnist._a", "skmnist._b", "skmnist._a"],
        ["skmnist._b", "skmnist._a", "skmnist._b"],
    )
