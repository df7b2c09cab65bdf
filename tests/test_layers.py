"""The package's import structure: layers that only point down, and no cycles.

Every `tlhelpers` import counts, the ones inside functions too. A module may
import modules of its own layer or of a lower one; an import that points up
(for example `backbones` importing `training`) fails `test_imports_point_down`.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "tlhelpers"

# Bottom to top. The same list, with what each layer is for, is in CONTRIBUTING.md.
LAYERS = (
    ("utilities", {"errors", "paths", "quiet", "results", "run_store", "optimizers", "distribution", "runtime"}),
    ("registry", {"architectures", "registry"}),
    ("data", {"clutter", "datasets", "folders", "downloads", "photos", "pipeline", "sample_photos"}),
    ("weight sources", {"features", "hub", "imagenet_ports", "keras_hub_presets", "source_models", "shipped_sources",
                        "torch_files"}),
    ("bases", {"backbones"}),
    ("models", {"models", "model_pool", "hub_export"}),
    ("training", {"protocol", "training", "lr_finder"}),
    ("analysis and presentation", {"budgets", "curves", "probes", "plots", "report", "visualize"}),
    ("experiments", {"budget_study", "experiments", "study", "transferability"}),
    ("entry points", {"profiles", "doctor", "notebook", "cli", "__main__", "__init__", "faults"}),
)


def imports_of(source, modules):
    """The package modules that `source` imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module == "tlhelpers":
            found.update(alias.name for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tlhelpers."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(alias.name.split(".")[1] for alias in node.names if alias.name.startswith("tlhelpers."))
    return found


def import_graph(sources):
    """`{module: set of package modules it imports}` for `{module: source text}`."""
    return {name: imports_of(text, set(sources)) - {name} for name, text in sources.items()}


def upward_imports(graph, layers=LAYERS):
    """`(importer, imported, importer's layer, imported's layer)` for every import that points up."""
    level = {module: index for index, (_, members) in enumerate(layers) for module in members}
    names = [name for name, _ in layers]
    return sorted((a, b, names[level[a]], names[level[b]]) for a, targets in graph.items()
                  for b in targets if level[b] > level[a])


def cycles(graph):
    """Modules that take part in an import cycle: the members of every strongly connected
    component with more than one module (Tarjan's algorithm)."""
    index, low, stack, found = {}, {}, [], []

    def visit(module):
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in sorted(graph.get(module, ())):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = stack[stack.index(module):]
            del stack[stack.index(module):]
            if len(component) > 1:
                found.extend(component)

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return sorted(found)


@pytest.fixture(scope="module")
def graph():
    return import_graph({path.stem: path.read_text() for path in PACKAGE.glob("*.py")})


def test_every_module_has_a_layer(graph):
    placed = set().union(*(members for _, members in LAYERS))
    assert sorted(set(graph) - placed) == [], "add new modules to LAYERS (and CONTRIBUTING.md)"
    assert sorted(placed - set(graph)) == [], "LAYERS names a module that does not exist"


def test_imports_point_down(graph):
    assert upward_imports(graph) == []


def test_no_import_cycles(graph):
    assert cycles(graph) == []


def test_the_check_catches_an_upward_import_inside_a_function(graph):
    sources = {path.stem: path.read_text() for path in PACKAGE.glob("*.py")}
    sources["backbones"] += "\n\ndef late():\n    from tlhelpers.training import train_run\n"
    assert upward_imports(import_graph(sources)) == [("backbones", "training", "bases", "training")]
    assert cycles(import_graph(sources)) == ["backbones", "model_pool", "models", "training"]


def test_presentation_modules_load_without_tensorflow():
    import subprocess
    import sys

    code = ("import sys; import tlhelpers.curves, tlhelpers.plots, tlhelpers.report; "
            "print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=PACKAGE.parent).stdout.split()
    assert out == ["False", "False"]
