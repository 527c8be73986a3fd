"""Lint as a test: ``ruff check``, ``ruff format --check`` and ``mypy`` must pass.

They are test dependencies (``pip install -e .[test]``): a missing tool fails
the test rather than skipping it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, check=False
    )


def _dirs(*names: str) -> list[str]:
    return [name for name in names if (ROOT / name).is_dir()]


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", *_dirs("src", "tests", "benchmarks", "fuzz")],
        ["ruff", "format", "--check", *_dirs("src", "tests", "fuzz")],
        ["mypy"],  # files and options from [tool.mypy] in pyproject.toml
    ],
    ids=["ruff-check", "ruff-format", "mypy"],
)
def test_tool_passes(command: list[str]) -> None:
    result = _run(*command)
    assert "No module named" not in result.stderr, f"{command[0]} is not installed: pip install -e .[test]"
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"
