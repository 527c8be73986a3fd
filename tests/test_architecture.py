"""Architecture: imports flow one way (STYLE.md 2), speed behind a boundary (STYLE.md 11), size budgets.

Every module under ``src/chainrule`` is parsed with ``ast``; its imports of
``chainrule.X`` must point to strictly lower levels of :data:`LEVELS`, nothing
may import the top-level ``chainrule`` package, the import graph has no
cycles, and every module is placed in the table. A package (a directory) sits
at one level, like the module it grew from, and each module's docstring states
that level. The math core (:data:`CORE`) imports no fast path and no compile
layer, and stays small.
"""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "chainrule"

LEVELS: dict[str, int] = {
    "errors": 0,
    **dict.fromkeys(["backend", "tensor_api", "limits", "fileio"], 1),
    "tensor": 2,
    **dict.fromkeys(["ops", "autograd"], 3),
    **dict.fromkeys(["functional", "init", "gradcheck", "jit", "tables", "summary"], 4),
    **dict.fromkeys(
        ["layers", "losses", "optim", "data", "datasets", "metrics", "diagnostics", "divergence"], 5
    ),
    **dict.fromkeys(["explain", "train"], 6),
    "serialize": 7,  # checkpoints hold a Trainer's state, so it sits above train
    **dict.fromkeys(["check", "exercise"], 7),  # above explain, whose numbers they use
    "onnx": 8,  # writes model files atomically as serialize does
    "sklearn": 8,  # estimators wrap a Trainer and save through serialize; neither onnx nor cli imports them
    "distributed": 8,  # data-parallel training over MPI: drives train, resumes through serialize
    "cli": 9,
    "__main__": 10,  # ``python -m chainrule`` runs the CLI, so it sits just above it
    "__init__": 11,  # the curated public API: nothing inside imports it
}

# code lines (not blank, comment or docstring) allowed per module: a smoke alarm, not a target
BUDGET = {"tensor": 280, "ops": 530}  # the kernels' references live in ops; the core: CORE_BUDGET
DEFAULT_BUDGET = 500

# The math core, read as the notes: no fast path (Numba, ctypes, BLAS handles, compiled loops,
# the backend's override providers) and no compile layer, and under 1,000 code lines together.
CORE = ("tensor", "ops", "autograd", "functional")
CORE_BUDGET = 1000
FAST_PATHS = (
    "numba",
    "ctypes",
    "chainrule.backend.loops",
    "chainrule.backend.blas",
    "chainrule.backend.rows",
    "chainrule.backend.memory",
    "chainrule.jit",
)


def _unit(path: Path) -> str:
    """The LEVELS name of a file: its top-level module or package under ``chainrule``."""
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py")


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _imports(path: Path) -> set[str]:
    """Units of ``chainrule`` this file imports (``'__init__'`` for the top-level package)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "chainrule":
                    found.add(parts[1] if len(parts) > 1 else "__init__")
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: resolve against the file's package
                base = list(path.relative_to(PACKAGE).parent.parts)[
                    : len(path.relative_to(PACKAGE).parts) - node.level
                ]
                parts = ["chainrule", *base, *(node.module.split(".") if node.module else [])]
            else:
                parts = (node.module or "").split(".")
            if parts[0] != "chainrule":
                continue
            if len(parts) > 1:
                found.add(parts[1])
            else:  # from chainrule import X: fine if X is a submodule, else it reaches into __init__
                for alias in node.names:
                    found.add(alias.name if alias.name in LEVELS and alias.name != "__init__" else "__init__")
    return found


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in _modules():
        unit = _unit(path)
        own = "__init__" if path == PACKAGE / "__init__.py" else unit
        graph.setdefault(own, set()).update(_imports(path) - {own})
    return graph


def test_package_is_found() -> None:
    units = {_unit(p) for p in _modules()}
    assert {"errors", "backend", "tensor", "ops", "functional", "gradcheck", "__init__"} <= units


def test_every_module_is_placed_in_levels() -> None:
    unplaced = sorted({_unit(p) for p in _modules()} - set(LEVELS))
    assert not unplaced, f"modules missing from LEVELS in tests/test_architecture.py: {unplaced}; place them"


def test_imports_go_strictly_down() -> None:
    bad = []
    for path in _modules():
        unit = "__init__" if path == PACKAGE / "__init__.py" else _unit(path)
        for target in sorted(_imports(path) - {unit}):
            if target == "__init__":
                bad.append(f"{path.relative_to(PACKAGE)} imports the top-level chainrule package")
            elif target not in LEVELS or LEVELS[target] >= LEVELS.get(unit, -1):
                bad.append(
                    f"{path.relative_to(PACKAGE)} (level {LEVELS.get(unit)}) imports {target} "
                    f"(level {LEVELS.get(target)})"
                )
    assert not bad, "imports must go to strictly lower levels:\n" + "\n".join(bad)


def test_no_import_cycles() -> None:
    graph = _graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    for start in graph:
        if state.get(start):
            continue
        stack = [(start, iter(sorted(graph[start])))]
        path = [start]
        state[start] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
                path.pop()
            elif state.get(child) == 1:
                cycle = [*path[path.index(child) :], child]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            elif not state.get(child):
                state[child] = 1
                path.append(child)
                stack.append((child, iter(sorted(graph.get(child, ())))))


def _full_imports(path: Path) -> set[str]:
    """Every module name this file imports, in full (``chainrule.backend.loops``, ``numba``, ...)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


@pytest.mark.parametrize("unit", CORE)
def test_the_math_core_imports_no_fast_path_and_no_compile_layer(unit: str) -> None:
    imported = _full_imports(PACKAGE / f"{unit}.py")
    bad = sorted(m for m in imported for fast in FAST_PATHS if m == fast or m.startswith(fast + "."))
    assert not bad, f"{unit}.py imports {bad}: the math core must stay free of the fast paths (STYLE.md 11)"


def test_the_math_core_stays_under_its_budget() -> None:
    total = sum(code_lines(PACKAGE / f"{unit}.py") for unit in CORE)
    assert total < CORE_BUDGET, f"tensor, ops, autograd and functional have {total} code lines together"


def test_importing_chainrule_loads_no_override_until_a_kernel_runs() -> None:
    """The fast paths load on the first kernel call, never with an import."""
    import subprocess
    import sys

    code = (
        "import sys, numpy as np; import chainrule as cr; "
        "before = sorted(m for m in sys.modules if m == 'numba' or m.startswith('chainrule.backend.loops')); "
        "cr.ops.relu(cr.Tensor(np.ones((2, 2)))); cr.backend.axpy(1.0, np.ones(2), np.ones(2)); "
        "print(before, 'chainrule.backend.loops' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[] True"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_the_docstring_states_the_level_of_the_table(path: Path) -> None:
    import re

    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    unit = "__init__" if path == PACKAGE / "__init__.py" else _unit(path)
    stated = re.findall(r"\(level (\d+)\b", doc)
    if path.parent != PACKAGE and path.name != "__init__.py":
        stated = stated or re.findall(
            r"\(level (\d+)\)", doc
        )  # a package's module may say it through its package
        if not stated:
            assert f"chainrule.{unit}" in doc, f"{path.name}: say which package (and level) it belongs to"
            return
    if unit == "__init__":
        return  # the curated API sits on top; its docstring says so
    assert stated, f"{path.relative_to(PACKAGE)}: the module docstring should state '(level N)'"
    assert {int(n) for n in stated} == {LEVELS[unit]}, (
        f"{path.relative_to(PACKAGE)} says level {stated}, the table says {LEVELS[unit]}"
    )


def test_import_parser_sees_the_known_edges() -> None:
    graph = _graph()
    assert graph["tensor"] == {"backend", "errors", "tensor_api"}
    assert {"tensor", "backend"} <= graph["ops"]
    assert "ops" in graph["__init__"]


def code_lines(path: Path) -> int:
    """Lines holding code: not blank, not only a comment, not part of a docstring."""
    source = path.read_text()
    doc_lines: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                if isinstance(first.value.value, str):
                    doc_lines.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    code: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT):
            continue
        if tok.type == tokenize.ENDMARKER:
            continue
        code.update(range(tok.start[0], tok.end[0] + 1))
    return len(code - doc_lines)


def test_code_line_counter() -> None:
    sample = PACKAGE.parent / "_cl_probe.py"
    assert not sample.exists()
    text = (
        '"""Doc.\n\nMore."""\n\n# comment\nx = 1  # trailing\n\n\n'
        'def f():\n    """Doc."""\n    return (\n        2\n    )\n'
    )
    try:
        sample.write_text(text)
        assert code_lines(sample) == 5  # x = 1; def f(); return (; 2; )
    finally:
        sample.unlink()


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_size_budget(path: Path) -> None:
    unit = _unit(path)
    limit = BUDGET.get(unit, DEFAULT_BUDGET)
    n = code_lines(path)
    assert n < limit, (
        f"{path.relative_to(PACKAGE)} has {n} code lines, budget {limit}: refactor before growing"
    )
