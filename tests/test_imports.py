"""The package's import graph: the arrows point inward.

- The pure core (every module outside ``megatron/``, ``commands/``, ``pipeline/``, ``sweep/``, ``report/``,
  ``corpus/``, ``gpu_check/`` and ``cli.py``) imports neither torch nor Megatron: each core module is imported in a fresh
  interpreter and ``sys.modules`` is checked.
- Importing any module outside ``regmix_megatron/megatron/`` does not import Megatron (same check), and no module
  outside it names ``megatron.*`` in an import statement at all, nor does ``sweep/`` import the Megatron edge.
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
EDGE_PACKAGES = ("megatron", "commands", "pipeline", "sweep", "report", "corpus", "gpu_check")
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


@pytest.mark.parametrize("module", [m for m in MODULES if m.startswith("regmix_megatron.sweep")])
def test_sweeps_do_not_import_the_megatron_edge(module):
    """Runs are trained by ``regmix-megatron train`` processes; sweep/ stays free of Megatron (its docstring)."""
    edge = [m for m in _imports(module)[0] if m.startswith("regmix_megatron.megatron")]
    assert not edge, f"{module} imports {edge}"


#: Which layer may import which (besides itself and the core, which every layer may import).
MAY_IMPORT = {"core": set(), "megatron": {"sweep"}, "corpus": set(), "report": set(), "sweep": set(),
              "pipeline": {"corpus", "sweep", "report"},
              "commands": {"corpus", "sweep", "report", "pipeline", "megatron"}, "cli": {"commands"},
              "gpu_check": {"megatron"}}
#: The arrows from the core to the edge, each inside a function (the core still imports without Megatron):
#: preprocessing writes .bin/.idx with megatron-core's builder, and the HuggingFace and tiktoken ids come from
#: megatron-core's own tokenizer classes (so they are Megatron-LM's ids by construction).
CORE_TO_EDGE = {("regmix_megatron.preprocess", "regmix_megatron.megatron.indexed"),
                ("regmix_megatron.tokenizer_types", "regmix_megatron.megatron.text_ids")}


def _layer(module: str) -> str:
    rest = module.split(".")[1:]
    return rest[0] if rest and (rest[0] in EDGE_PACKAGES or rest[0] in EDGE_MODULES) else "core"


@pytest.mark.parametrize("module", list(MODULES))
def test_imports_point_inward(module):
    """Layers: core <- corpus, report, sweep <- pipeline <- commands <- cli; megatron <- commands, and the edge's
    in-process sweep runner imports sweep (docs/DESIGN.md)."""
    layer = _layer(module)
    allowed = MAY_IMPORT[layer] | {layer, "core"}
    wrong = [m for m in _imports(module)[0] if _layer(m) not in allowed and (module, m) not in CORE_TO_EDGE]
    assert not wrong, f"{module} ({layer}) imports {wrong}"


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
    internal, external = _imports("regmix_megatron.pipeline.stages")
    assert "regmix_megatron.search_files" in internal  # imported inside run_search_stage
    assert "regmix_megatron.pipeline.config" in internal  # from .config import ...
    assert "regmix_megatron.megatron.indexed" in _imports("regmix_megatron.preprocess")[0]
    assert "numpy" in _imports("regmix_megatron.sampling")[1] and len(CORE) > 20
