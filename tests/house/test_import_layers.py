"""The import graph of ``cnnlab``: no circles, and no module imports a layer above its own.

Every ``import`` / ``from ... import`` in ``src/cnnlab`` counts, deferred ones inside functions included
(a deferred import is still a dependency; it only hides it from the interpreter's start-up).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"

# Top to bottom. A module may import modules of its own layer or of any layer below, never above.
# Keys are module names or package prefixes; the longest matching key decides a module's layer, and a
# module no key matches fails the test (a new package must be placed in the table). Inside ``cnnlab.data``
# the formats use only the bottom, the loaders sit on them, and the name -> dataset dispatcher above all.
LAYERS: dict[str, float] = {
    "cnnlab": 0, "cnnlab.cli": 0, "cnnlab.cli_support": 0, "cnnlab.demo": 0, "cnnlab.__main__": 0,
    "cnnlab.segmentation": 1, "cnnlab.detection": 1, "cnnlab.transfer": 1, "cnnlab.ensemble": 1,
    "cnnlab.viz": 1, "cnnlab.export": 1, "cnnlab.lab": 1, "cnnlab.report": 1, "cnnlab.ui": 1,
    "cnnlab.train": 2,
    "cnnlab.analysis": 3, "cnnlab.predict": 3, "cnnlab.zoo": 3,
    "cnnlab.models": 4,
    "cnnlab.data": 4.0, "cnnlab.data.catalog": 4.1,
    "cnnlab.data.loader": 4.2, "cnnlab.data.dense": 4.2, "cnnlab.data.augment": 4.2,
    "cnnlab.data.idx": 4.3, "cnnlab.data.cifar": 4.3, "cnnlab.data.synthetic": 4.3, "cnnlab.data.folder": 4.3,
    "cnnlab.data.voc": 4.3, "cnnlab.data.coco": 4.3, "cnnlab.data.scenes": 4.3,
    "cnnlab.data.arrays": 4.4, "cnnlab.data.images": 4.4, "cnnlab.data.seeding": 4.4,
    "cnnlab.data.download": 4.4, "cnnlab.data.splits": 4.4,
    "cnnlab.errors": 5, "cnnlab._io": 5, "cnnlab._console": 5, "cnnlab.registry": 5,
}
COMMANDS_LAYER = 0  # every ``*.commands`` module is command-line code, whatever its package


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> float:
    if module.endswith(".commands") or ".commands." in module:
        return COMMANDS_LAYER
    keys = [p for p in LAYERS if module == p or (p != "cnnlab" and module.startswith(p + "."))]
    if not keys:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS in {__file__}")
    return LAYERS[max(keys, key=len)]


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """cnnlab modules imported anywhere in ``path`` (``from pkg import sub`` counts as ``pkg.sub``)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for a in node.names:
                sub = f"{base}.{a.name}"
                found.add(sub if sub in modules else base)
    found = {m for m in found if m.split(".")[0] == "cnnlab"}
    return {m for m in found if m != name and not name.startswith(m + ".")}  # a package's own parents


def import_graph() -> dict[str, set[str]]:
    files = sorted(SRC.rglob("*.py"))
    modules = {module_name(f) for f in files}
    return {module_name(f): imports_of(f, modules) & modules for f in files}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{a} (layer {layer_of(a)}) imports {b} (layer {layer_of(b)})"
                  for a, deps in graph.items() for b in deps if layer_of(b) < layer_of(a))


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def missing_modules() -> list[str]:
    """``file: module`` for every cnnlab module imported anywhere (deferred imports included) that does not exist."""
    files = sorted(SRC.rglob("*.py"))
    modules = {module_name(f) for f in files}
    return sorted(f"{f.relative_to(SRC)}: {m}" for f in files for m in imports_of(f, modules) if m not in modules)


def test_every_imported_module_exists():
    """A deferred import of a module that was renamed away fails only when its branch runs (a proposals cache
    without a data dir once imported the removed cnnlab.data.datasets)."""
    assert missing_modules() == []


def top_level_names(path: Path) -> set[str] | None:
    """Names a module defines or imports at its top level (in ``if``/``try`` blocks too); None where it cannot be
    known statically (``import *`` or a module ``__getattr__``)."""
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        for sub in ast.walk(node) if isinstance(node, (ast.If, ast.Try)) else [node]:
            if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(sub.name)
            elif isinstance(sub, (ast.Assign, ast.AnnAssign)):
                targets = sub.targets if isinstance(sub, ast.Assign) else [sub.target]
                names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
            elif isinstance(sub, (ast.Import, ast.ImportFrom)):
                if any(a.name == "*" for a in sub.names):
                    return None
                names.update((a.asname or a.name).split(".")[0] for a in sub.names)
    return None if "__getattr__" in names else names


def missing_names() -> list[str]:
    """``module: from M import name`` for every absolute cnnlab import of a name M neither defines nor imports."""
    files = {module_name(f): f for f in sorted(SRC.rglob("*.py"))}
    known = {m: top_level_names(f) for m, f in files.items()}
    bad = []
    for module, path in files.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and not node.level and node.module in files and known[node.module]:
                bad += [f"{module}: from {node.module} import {a.name}" for a in node.names
                        if f"{node.module}.{a.name}" not in files and a.name not in known[node.module]]
    return sorted(bad)


def test_every_imported_name_exists():
    assert missing_names() == []


def test_every_module_has_a_layer():
    for module in import_graph():
        layer_of(module)


def test_no_import_from_a_higher_layer():
    assert upward_imports(import_graph()) == []


def test_checker_sees_cycles_and_upward_imports():
    """The checker itself: a planted circle and a planted upward import are found."""
    graph = {"cnnlab.data.a": {"cnnlab.data.b"}, "cnnlab.data.b": {"cnnlab.data.a"}}
    assert find_cycle(graph) == ["cnnlab.data.a", "cnnlab.data.b", "cnnlab.data.a"]
    assert upward_imports({"cnnlab.models.vgg": {"cnnlab.train.engine"}}) == [
        "cnnlab.models.vgg (layer 4) imports cnnlab.train.engine (layer 2)"]
    assert upward_imports({"cnnlab.data.voc": {"cnnlab.data.dense"}}) == [
        "cnnlab.data.voc (layer 4.3) imports cnnlab.data.dense (layer 4.2)"]
    assert upward_imports({"cnnlab.train.engine": {"cnnlab.models.vgg"}}) == []


@pytest.mark.parametrize("module, layer", [("cnnlab.cli", 0), ("cnnlab.train.commands", 0),
                                           ("cnnlab.segmentation.fcn", 1), ("cnnlab.train.engine", 2),
                                           ("cnnlab.models.vgg", 4), ("cnnlab.errors", 5), ("cnnlab", 0),
                                           ("cnnlab.data.catalog", 4.1), ("cnnlab.data.arrays", 4.4)])
def test_layer_table(module, layer):
    assert layer_of(module) == layer


def private_imports() -> list[str]:
    """``from cnnlab.x import _name`` anywhere in src: what another module uses must be public."""
    found = []
    for f in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("cnnlab"):
                found += [f"{module_name(f)} imports {node.module}.{a.name}" for a in node.names
                          if a.name.startswith("_") and not a.name.startswith("__")]
    return found


def test_no_private_name_is_imported_across_modules():
    assert private_imports() == []
