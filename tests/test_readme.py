"""The README stays true: its Python examples run, and its two commands are what CI runs."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # the search's 30 epochs
def test_python_examples_run(capsys: object) -> None:
    namespace: dict[str, object] = {}
    for block in _blocks("python"):
        exec(compile(block, "README.md", "exec"), namespace)
    w = namespace["w"]
    x = np.array([0.05, 0.10])
    a = 1 / (1 + np.exp(-(0.15 * 0.05 + 0.20 * 0.10 + 0.35)))
    np.testing.assert_allclose(w.grad, a * (1 - a) * x)  # type: ignore[attr-defined]
    search = namespace["search"]  # the scikit-learn section: a Pipeline + GridSearchCV in joblib's processes
    assert search.score(namespace["X_test"], namespace["y_test"]) > 0.9  # type: ignore[attr-defined]


def test_py_blocks_are_shown_not_run_but_compile() -> None:
    """``py`` blocks need what a test cannot have (a real Dask scheduler's address): they must still parse."""
    shown = _blocks("py")
    assert any('parallel_backend("dask")' in block for block in shown)
    for block in shown:
        compile(block, "README.md", "exec")


def test_ci_runs_the_readme_test_command() -> None:
    commands = _blocks("bash")
    assert len(commands) >= 2, "the README opens with the install+run and the install+test commands"
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[1].strip() in ci
    assert "chainrule train" in commands[0]
