"""The package's import graph: the arrows point inward, along the method's steps.

- The pure core (the package root but ``cli.py``, and every step folder: ``data/``, ``mixtures/``, ``runs/``,
  ``regression/``, ``search/``, ``export/``, ``full_scale/``, ``report/``) imports neither torch nor Megatron:
  each core module is imported in a fresh interpreter and ``sys.modules`` is checked.
- Importing any module outside ``regmix_megatron/megatron/`` does not import Megatron (same check), and no module
  outside it names ``megatron.*`` in an import statement at all, nor does ``runs/sweep/`` import the Megatron edge.
- Each step imports only itself and the steps before it (:data:`STEPS`, docs/DESIGN.md's layer table).
- No import cycle among the package's modules.

The import graph (for the cycle and the static checks): an edge A -> B for every import statement in A's source
that names module B of this package, at module level or inside a function (a function-level import is a
dependency all the same; only imports under ``if TYPE_CHECKING:`` do not count). ``from pkg import name`` is an
edge to ``pkg.name`` when that is a module, else to ``pkg`` (its ``__init__``). The implicit import of parent
packages is not an edge.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "regmix_megatron"
EDGE_PACKAGES = ("megatron", "commands", "pipeline", "gpu_check")
EDGE_MODULES = ("cli",)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_core(name: str) -> bool:
    rest = name.split(".")[1:]
    return bool(rest) and rest[0] not in EDGE_PACKAGES and rest[0] not in EDGE_MODULES


CORE = [m for m in MODULES if _is_core(m)]
NOT_MEGATRON = [m for m in MODULES if not m.startswith("regmix_megatron.megatron")]


# ---- fresh interpreters -----------------------------------------------------------------------------------
_PROBE = ("import importlib, json, sys; importlib.import_module(sys.argv[1]); "
          "print(json.dumps(sorted(n for n in ('torch', 'megatron') if n in sys.modules)))")


def _heavy_after_import(module: str) -> list[str]:
    proc = subprocess.run([sys.executable, "-c", _PROBE, module], capture_output=True, text=True, cwd=REPO,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, timeout=300)
    assert proc.returncode == 0, f"importing {module} failed:\n{proc.stderr[-2000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


@lru_cache(maxsize=None)
def _probed() -> dict[str, list[str]]:
    """Every non-edge module imported once in its own interpreter (four at a time)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(NOT_MEGATRON, pool.map(_heavy_after_import, NOT_MEGATRON)))


@pytest.mark.parametrize("module", CORE)
def test_core_module_imports_neither_torch_nor_megatron(module):
    assert _probed()[module] == [], f"importing {module} imports {_probed()[module]}"


@pytest.mark.parametrize("module", NOT_MEGATRON)
def test_importing_a_module_outside_the_edge_does_not_import_megatron(module):
    assert "megatron" not in _probed()[module]


# ---- the import graph -------------------------------------------------------------------------------------
def _in_type_checking(node: ast.AST, parents: dict) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


@lru_cache(maxsize=None)
def _imports(module: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(modules of this package, external top-level names) that ``module``'s import statements name."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    internal, external = set(), set()
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Import, ast.ImportFrom)) or _in_type_checking(node, parents):
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                (internal if alias.name.split(".")[0] == "regmix_megatron" else external).add(alias.name)
            continue
        if node.level:
            base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
            if target.split(".")[0] != "regmix_megatron":
                external.add(target)
                continue
        for alias in node.names:
            internal.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in MODULES else target)
    return tuple(sorted(m for m in internal if m in MODULES and m != module)), tuple(sorted(external))


@pytest.mark.parametrize("module", NOT_MEGATRON)
def test_only_the_megatron_edge_names_megatron(module):
    named = [e for e in _imports(module)[1] if e.split(".")[0] == "megatron"]
    assert not named, f"{module} imports {named}; only regmix_megatron/megatron/ may"


@pytest.mark.parametrize("module", [m for m in MODULES if m.startswith("regmix_megatron.runs.sweep")])
def test_sweeps_do_not_import_the_megatron_edge(module):
    """Runs are trained by ``regmix-megatron train`` processes; sweep/ stays free of Megatron (its docstring)."""
    edge = [m for m in _imports(module)[0] if m.startswith("regmix_megatron.megatron")]
    assert not edge, f"{module} imports {edge}"


#: The method's steps in order, each a folder (docs/DESIGN.md's layer table). A module may import its own layer and
#: the layers before it, never one after it: following any path through the code (the search over schedules
#: included) never goes back up. ``root`` is what every layer uses (errors, file I/O, hashing, configs, numbers).
STEPS = ("root", "data", "mixtures", "runs", "regression", "search", "export", "full_scale", "report", "pipeline",
         "commands", "cli")
#: Beside the chain: the Megatron edge may import every step up to ``export`` (it trains runs of mixtures and
#: schedules, builds their blends, and its in-process sweep runner uses ``runs.sweep``); gpu_check may import the
#: edge and every step; commands may import the edge.
SIDE = {"megatron": set(STEPS[: STEPS.index("export") + 1]), "gpu_check": set(STEPS[: STEPS.index("report") + 1]) | {"megatron"}}
EXTRA = {"commands": {"megatron", "gpu_check"}, "cli": set()}
#: The arrows from the core to the edge, each inside a function (the core still imports without Megatron):
#: preprocessing writes .bin/.idx with megatron-core's builder, and the HuggingFace and tiktoken ids come from
#: megatron-core's own tokenizer classes (so they are Megatron-LM's ids by construction).
CORE_TO_EDGE = {("regmix_megatron.data.preprocess", "regmix_megatron.megatron.indexed"),
                ("regmix_megatron.data.tokenizer_types", "regmix_megatron.megatron.text_ids")}


def _layer(module: str) -> str:
    rest = module.split(".")[1:]
    if not rest:
        return "root"
    if rest[0] in STEPS or rest[0] in SIDE:
        return rest[0]
    return "root"


def _may_import(layer: str) -> set[str]:
    if layer in SIDE:
        return SIDE[layer] | {layer}
    return set(STEPS[: STEPS.index(layer) + 1]) | EXTRA.get(layer, set())


@pytest.mark.parametrize("module", list(MODULES))
def test_imports_point_inward(module):
    """Each step imports only itself and the steps before it (and the edge its table row names)."""
    layer = _layer(module)
    wrong = [m for m in _imports(module)[0]
             if _layer(m) not in _may_import(layer) and (module, m) not in CORE_TO_EDGE]
    assert not wrong, f"{module} ({layer}) imports {wrong}"


def test_the_root_keeps_what_every_layer_uses():
    """At most 8 modules at the package root (issue 21): errors, file I/O, hashing, configs, numbers, suggestions,
    the CLI entry and the package's ``__init__``."""
    root = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(root) <= 8, root


def test_no_import_cycle():
    graph = {m: set(_imports(m)[0]) for m in MODULES}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
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
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for m in sorted(graph):
        if m not in index:
            visit(m)
    assert not cycles, "import cycles: " + "; ".join(
        " <-> ".join(c) + " (" + ", ".join(f"{a} -> {sorted(graph[a] & set(c))}" for a in c) + ")" for c in cycles)


def test_the_graph_sees_function_level_and_relative_imports():
    """The parser itself: a known function-level import and a known relative one are edges."""
    internal, external = _imports("regmix_megatron.pipeline.search_stages")
    assert "regmix_megatron.search.outputs" in internal  # imported inside run_search_stage
    assert "regmix_megatron.pipeline.config" in internal  # from .config import ...
    assert "regmix_megatron.megatron.indexed" in _imports("regmix_megatron.data.preprocess")[0]
    assert "numpy" in _imports("regmix_megatron.mixtures.sampler")[1] and len(CORE) > 20
