"""The architecture as a test: which package may import which, read from the source with `ast`.

Every `import` counts, also the ones inside functions (deferred imports are still
dependencies). A failure names the file, the line and the arrow it breaks. The layers are
documented in docs/ARCHITECTURE.md; change both together. Inside a layer the modules form a
DAG too: an import cycle is refused and named module by module, with the line of each import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Import name -> folder. The engine is installed as `stylegan2_ada` from vendor/.
PACKAGES = {"classify": ROOT / "classify", "gen": ROOT / "gen",
            "stylegan2_ada": ROOT / "vendor" / "stylegan2_ada"}

# Layers inside a package, lowest first: a module may import its own layer and the ones below.
# `commands` and the top-level modules (cli, __main__, __init__) sit above every layer.
LAYERS = {
    "classify": ["core", "data", "model", "train", "evaluate", "ablate"],
    # gen's train and sample share a rank: neither may import the other (they meet through
    # the generator file in gen.core); the pipeline drives both.
    "gen": ["core", {"train", "sample"}, "pipeline"],
}
# What each package may import of the others'.
ALLOWED_PACKAGES = {"stylegan2_ada": set(), "classify": set(), "gen": {"classify", "stylegan2_ada"}}
MAX_FLAT_MODULES = 12


def module_name(path: Path) -> str:
    for pkg, folder in PACKAGES.items():
        if path.is_relative_to(folder):
            parts = [pkg, *path.relative_to(folder).with_suffix("").parts]
            return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    raise ValueError(path)


def imports_of(path: Path, name: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the file of module `name`, relative ones resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = name.split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            # `from pkg import sub` imports the sub-module pkg.sub
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def all_modules() -> list[Path]:
    return sorted(p for folder in PACKAGES.values() for p in folder.rglob("*.py"))


def rank(name: str) -> int | None:
    """The layer index of a module inside its package; None above every layer (commands, cli)."""
    parts = name.split(".")
    layers = LAYERS.get(parts[0])
    if layers is None or len(parts) < 3:  # the engine has no layers; top-level modules rank above
        return None
    for i, layer in enumerate(layers):
        if parts[1] == layer or (isinstance(layer, set) and parts[1] in layer):
            return i
    return None


def is_command_line(parts: list[str]) -> bool:
    """commands/*, cli and any __main__: the thin layer that parses flags and calls the library."""
    return (len(parts) > 1 and parts[1] in ("commands", "cli", "__main__")) or parts[-1] == "__main__"


def violation(importer: str, imported: str) -> str | None:
    """Why `importer` may not import `imported`, or None when the arrow is allowed."""
    src_pkg, dst_pkg = importer.split(".")[0], imported.split(".")[0]
    if dst_pkg not in PACKAGES:
        return None  # third-party or standard library
    if src_pkg != dst_pkg:
        if dst_pkg not in ALLOWED_PACKAGES[src_pkg]:
            return f"{src_pkg} may not import {dst_pkg}"
        if is_command_line(imported.split(".")):
            return f"a library may not import another package's command line ({imported})"
        return None
    src_parts, dst_parts = importer.split("."), imported.split(".")
    if is_command_line(dst_parts) and not is_command_line(src_parts):
        return "only the command line may import commands (the library never depends on its CLI)"
    src_rank, dst_rank = rank(importer), rank(imported)
    if src_rank is None or dst_rank is None:
        return None
    if dst_rank > src_rank:
        return f"{src_parts[1]} is below {dst_parts[1]}: the arrow must point down"
    if dst_rank == src_rank and src_parts[1] != dst_parts[1]:
        return f"{src_parts[1]} and {dst_parts[1]} are side by side: neither may import the other"
    return None


def layering_violations(paths: list[Path], name_of=module_name) -> list[str]:
    out = []
    for path in paths:
        importer = name_of(path)
        shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
        for line, imported in imports_of(path, importer):
            why = violation(importer, imported)
            if why:
                out.append(f"{shown}:{line} imports {imported}: {why}")
    return out


def resolve(imported: str, known: set[str]) -> str | None:
    """The module of ours an imported name lives in: `a.b.f` -> `a.b` when `a.b` is a module; None outside."""
    parts = imported.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in known:
            return ".".join(parts[:end])
    return None


def import_graph(paths: list[Path], name_of=module_name) -> dict[str, dict[str, int]]:
    """Module -> {module of ours it imports: the first line that does}; deferred imports count too,
    and so does a module importing itself (a loop of one)."""
    names = {path: name_of(path) for path in paths}
    known = set(names.values())
    graph: dict[str, dict[str, int]] = {name: {} for name in known}
    for path, importer in names.items():
        for line, imported in sorted(imports_of(path, importer)):
            target = resolve(imported, known)
            if target is not None:
                graph[importer].setdefault(target, line)
    return graph


def strong_components(graph: dict[str, dict[str, int]]) -> list[set[str]]:
    """The strongly connected components that hold a cycle (Tarjan): more than one module, or one
    that imports itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, {})):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component, member = set(), None
            while member != node:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
            if len(component) > 1 or node in graph[node]:
                found.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def shortest_cycle(graph: dict[str, dict[str, int]], component: set[str]) -> list[str]:
    """A shortest cycle through the first module (by name) of a component, closed: [a, b, a]."""
    start = min(component)
    parent: dict[str, str] = {}
    queue = [start]
    for node in queue:  # breadth-first, inside the component only
        for nxt in sorted(set(graph[node]) & component):
            if nxt == start:
                path = [node]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return [*reversed(path), start]
            if nxt not in parent:
                parent[nxt] = node
                queue.append(nxt)
    raise AssertionError(f"not strongly connected: {sorted(component)}")


def import_cycles(graph: dict[str, dict[str, int]]) -> list[str]:
    """One line per tangle: a shortest cycle with the line of each arrow, then every module caught in it."""
    out = []
    for component in strong_components(graph):
        cycle = shortest_cycle(graph, component)
        arrows = " -> ".join(f"{a} (line {graph[a][b]})" for a, b in zip(cycle, cycle[1:]))
        out.append(f"{arrows} -> {cycle[-1]}; tangled ({len(component)}): {', '.join(sorted(component))}")
    return sorted(out)


def test_every_import_follows_the_layers():
    problems = layering_violations(all_modules())
    assert not problems, "layering broken:\n" + "\n".join(problems)


@pytest.mark.parametrize("importer, imported, expected", [
    ("stylegan2_ada.pkl.importer", "classify.core.errors", "stylegan2_ada may not import classify"),
    ("classify.train.loop", "gen.core.grids", "classify may not import gen"),
    ("classify.train.loop", "classify.evaluate.evaluation", "train is below evaluate"),
    ("classify.data.dataset", "classify.model.models", "data is below model"),
    ("classify.model.checkpoint", "classify.train.loop", "model is below train"),
    ("gen.train.trainer", "gen.sample.filters", "side by side"),
    ("gen.train.trainer", "gen.commands.train", "only the command line"),
    ("gen.core.metrics", "classify.commands.train", "command line"),
    ("gen.sample.runner", "classify.ablate.design", None),
    ("classify.ablate.runner", "classify.core.errors", None),
    ("gen.commands.train", "gen.train.trainer", None),
    ("gen.pipeline.__main__", "gen.commands.pipeline", None),
])
def test_the_rules_catch_what_they_should(importer, imported, expected):
    why = violation(importer, imported)
    assert (why is None) if expected is None else (expected in why), why


def test_a_bad_import_is_named_with_file_and_line(tmp_path):
    """A deliberately added bad import: an engine module reaching into classify."""
    bad = tmp_path / "probe.py"
    bad.write_text("def f():\n    from classify.core.errors import UserError\n    return UserError\n")
    problems = layering_violations([bad], name_of=lambda _p: "stylegan2_ada.pkl.probe")
    assert problems == ["probe.py:2 imports classify.core.errors.UserError: "
                        "stylegan2_ada may not import classify"]


def test_no_package_folder_keeps_too_many_modules_flat():
    crowded = {}
    for folder in PACKAGES.values():
        for sub in [folder, *[d for d in folder.rglob("*") if (d / "__init__.py").is_file()]]:
            modules = [p for p in sub.glob("*.py") if p.name not in ("__init__.py", "__main__.py")]
            if len(modules) > MAX_FLAT_MODULES:
                crowded[str(sub.relative_to(ROOT))] = len(modules)
    assert not crowded, (f"split these folders into sub-packages (more than {MAX_FLAT_MODULES} modules): "
                         f"{crowded}")


def test_every_folder_with_modules_is_a_package():
    loose = [str(d.relative_to(ROOT)) for folder in PACKAGES.values() for d in [folder, *folder.rglob("*")]
             if d.is_dir() and d.name != "__pycache__" and any(d.glob("*.py"))
             and not (d / "__init__.py").is_file()]
    assert not loose, f"folders with modules but no __init__.py (setuptools would not install them): {loose}"


def test_no_import_cycle_between_modules():
    """Modules of one package form a DAG, lazy imports included: an import inside a function that
    closes a loop only hides it (the order modules load in then decides what works)."""
    cycles = import_cycles(import_graph(all_modules()))
    assert not cycles, ("import cycles (module (line of the import) -> module it imports):\n"
                        + "\n".join(cycles))


def test_a_cycle_is_found_and_named(tmp_path):
    """A deliberate cycle closed by a deferred import, next to a harmless diamond; then a self-import."""
    files = {
        "low": "import os\n",
        "mid": "from fake.low import x\n",
        "top": "from fake import mid, low\n",
        "a": "from fake.b import f\n",
        "b": "import fake.low\n\n\ndef g():\n    from fake.c import h\n    return h\n",
        "c": "from . import a\n",
    }
    paths = []
    for name, text in files.items():
        (tmp_path / f"{name}.py").write_text(text)
        paths.append(tmp_path / f"{name}.py")
    graph = import_graph(paths, name_of=lambda p: f"fake.{p.stem}")
    assert graph["fake.top"] == {"fake.mid": 1, "fake.low": 1}
    assert graph["fake.c"] == {"fake.a": 1}  # relative import resolved
    assert import_cycles(graph) == [
        "fake.a (line 1) -> fake.b (line 5) -> fake.c (line 1) -> fake.a; tangled (3): fake.a, fake.b, fake.c"
    ]
    graph["fake.c"] = {}
    assert import_cycles(graph) == []
    graph["fake.low"] = {"fake.low": 3}
    assert import_cycles(graph) == ["fake.low (line 3) -> fake.low; tangled (1): fake.low"]
