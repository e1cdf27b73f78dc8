"""The package's import graph: no circles, and layers that only import downwards.

Every `import` / `from ... import` in every module of `sonic_ray/` is read with `ast`, including the
ones inside functions (a function-local import is still a dependency, only a later one). Layers,
lowest first; a module may import its own layer and the layers below it:

    core  (Ray-free): utils, config, robots, sim, models, motion, envs, ppo
    shell (Ray):      cluster, learners, env_runners, algorithm, train, eval, tune, deploy, bench,
                      view, cli

`ALLOWED_UPWARD` lists the exceptions, each with its reason.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "sonic_ray"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE
CORE = ("utils", "config", "robots", "sim", "models", "motion", "envs", "ppo")
SHELL = (
    "cluster",
    "ingest",
    "learners",
    "env_runners",
    "algorithm",
    "train",
    "eval",
    "tune",
    "deploy",
    "bench",
    "view",
    "cli",
    "__main__",
)
LAYERS = CORE + SHELL
# (importing module, imported module prefix): why the lower layer may import the higher one.
ALLOWED_UPWARD = {
    # train and eval straddle: evaluation reads checkpoints (train/checkpoint, below it), and the
    # training driver launches the background evaluation of the checkpoints it writes.
    ("sonic_ray.train.driver", "sonic_ray.eval.pipeline"): "the driver plans evaluations of its checkpoints",
    ("sonic_ray.train.driver", "sonic_ray.eval.tasks"): "the driver runs BackgroundEvaluation",
}


def _modules() -> dict[str, Path]:
    mods = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The sonic_ray module a dotted name lives in (`a.b.func` -> `a.b`), or None."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imported_names(module: str, path: Path) -> list[str]:
    """Every absolute dotted name `module` imports anywhere in its body (functions included)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(up + ([node.module] if node.module else []))
            names += [base] + [f"{base}.{alias.name}" for alias in node.names]
    return names


def _graph() -> dict[str, set[str]]:
    graph = {}
    for module, path in MODULES.items():
        targets = {_resolve(n) for n in _imported_names(module, path) if n.split(".")[0] == PACKAGE}
        graph[module] = {t for t in targets if t and t != module}
    return graph


GRAPH = _graph()


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, comps, counter = {}, {}, set(), [], [], [0]
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    comp.append(top)
                    if top == node:
                        break
                if len(comp) > 1:
                    comps.append(sorted(comp))
    return comps


def test_every_module_has_a_layer():
    assert [m for m in MODULES if m != PACKAGE and _layer(m) is None] == []


def test_no_import_circles():
    cycles = _cycles(GRAPH)
    detail = [[f"{a} -> {b}" for a in comp for b in sorted(GRAPH[a]) if b in comp] for comp in cycles]
    assert cycles == [], f"import circles: {detail}"


def test_cycle_finder_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_layers_import_only_downwards():
    upward = []
    for module, targets in GRAPH.items():
        for target in sorted(targets):
            if _layer(module) is not None and _layer(target) is not None and _layer(target) > _layer(module):
                if not any(module == m and target.startswith(t) for m, t in ALLOWED_UPWARD):
                    upward.append(f"{module} -> {target}")
    assert upward == [], f"a lower layer imports a higher one: {upward}"


def test_allowed_exceptions_are_still_needed():
    for module, target in ALLOWED_UPWARD:
        assert any(t.startswith(target) for t in GRAPH[module]), f"stale exception: {module} -> {target}"


CORE_MODULES = [m for m in MODULES if _layer(m) is not None and LAYERS[_layer(m)] in CORE]


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_never_imports_ray(module):
    names = _imported_names(module, MODULES[module])
    assert [n for n in names if n == "ray" or n.startswith("ray.")] == []


def _bound_at_top(path: Path) -> set[str]:
    """Names a module binds at its top level (defs, classes, assignments, imports), looking into
    top-level if/try/with blocks but not into functions or classes."""
    names: set[str] = set()

    def visit(stmts):
        for node in stmts:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    names.update(n.id for n in ast.walk(t) if isinstance(n, ast.Name))
            elif isinstance(node, ast.Import | ast.ImportFrom):
                names.update((a.asname or a.name).split(".")[0] for a in node.names)
            for field in ("body", "orelse", "finalbody", "handlers"):
                if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    visit(getattr(node, field, []) or [])

    visit(ast.parse(path.read_text(), filename=str(path)).body)
    return names


def test_every_name_imported_from_the_package_exists():
    """`from sonic_ray.x import y` anywhere (function-local imports included, which run only when
    that code path does) names a submodule of x or something x binds: a name moved by a refactor
    fails here instead of at the first run of a rarely used command."""
    bound = {m: _bound_at_top(p) for m, p in MODULES.items()}
    missing = []
    for module, path in MODULES.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if not isinstance(node, ast.ImportFrom):
                continue
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(up + ([node.module] if node.module else []))
            if base not in MODULES:
                continue
            for alias in node.names:
                if (
                    alias.name != "*"
                    and f"{base}.{alias.name}" not in MODULES
                    and alias.name not in bound[base]
                ):
                    missing.append(f"{module}:{node.lineno}: {base} has no {alias.name!r}")
    assert missing == [], missing
