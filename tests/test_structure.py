"""The shape of the code, checked: one module per external engine, small modules, no import cycles, and a
light ``import nasbench``. Read from the source with ``ast``; nothing here imports the package's modules."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "nasbench"
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py")) if "search_spaces" not in p.parts}


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside functions (``TYPE_CHECKING`` blocks excepted)."""
    tree = ast.parse(path.read_text())
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for n in ast.walk(node)}  # fmt: skip
    out = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # ``from package import submodule`` imports the submodule (the package only as its parent, as
            # ``import package.submodule`` does); ``from module import name`` imports the module.
            subs = {f"{node.module}.{a.name}" for a in node.names} & set(MODULES)
            out |= subs if len(subs) == len(node.names) else subs | {node.module}
    return out


def importers_of(package: str) -> set[str]:
    return {m for m, p in MODULES.items() if any(i == package or i.startswith(package + ".") for i in imports(p))}


def test_each_external_engine_is_imported_by_one_adapter_module():
    def core(name: str) -> bool:
        return name == "ray" or (name.startswith("ray.") and not name.startswith("ray.train"))

    ray_core = {m for m, p in MODULES.items() if any(core(i) for i in imports(p))}
    assert ray_core == {"nasbench.engines.ray_tune"}  # Ray's session, object store, Tune
    assert importers_of("ray.train") == {"nasbench.engines.ray_train"}
    assert importers_of("optuna") == {"nasbench.engines.optuna_study"}


def test_no_module_is_over_the_line_limit():
    long = {m: n for m, p in MODULES.items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_no_import_cycles():
    graph = {m: {i for i in imports(p) if i in MODULES and i != m} for m, p in MODULES.items()}
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("statement", ["import nasbench", "import nasbench.search", "import nasbench.objectives"])
def test_light_imports_leave_torch_unimported(statement):
    code = f"import sys; {statement}; print(sorted(m for m in ('torch', 'ray', 'optuna') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_run_pipeline_is_a_package_apart_from_the_searchers():
    """``nasbench.pipeline`` runs searchers; no searcher module knows it (the searchers' package is callable
    as ``nasbench.search(...)``, the main job, and only its ``__init__`` reaches the pipeline, lazily)."""
    assert {"nasbench.pipeline.config", "nasbench.pipeline.run", "nasbench.pipeline.on_table"} <= set(MODULES)
    searchers = {m for m in MODULES if m.startswith("nasbench.search.")}
    assert not {m for m in importers_of("nasbench.pipeline") if m in searchers}
    assert not importers_of("nasbench.search.orchestrate") and "nasbench.search.orchestrate" not in MODULES
    assert importers_of("nasbench.pipeline.config") >= {"nasbench.pipeline.run", "nasbench.cli.search"}


def test_seeds_are_forked_by_the_one_helper_not_by_arithmetic():
    """A generator seeded with arithmetic on a seed (``seed * 1000 + i``) is an ad-hoc fork: ``nasbench.seeds.fork``
    is the one way to derive a seed, so two uses cannot collide by accident."""
    seeders = {"manual_seed", "Random", "default_rng", "seed"}
    found = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            arg = node.args[0]
            forked = isinstance(arg, ast.BinOp) and not isinstance(arg.op, ast.Mod)  # seed % 2**32: numpy's range
            if name in seeders and forked and "seed" in ast.unparse(arg):
                found.append(f"{module}:{node.lineno} {ast.unparse(node)}")
    assert not found, "seeds derived by arithmetic: " + "; ".join(found)
