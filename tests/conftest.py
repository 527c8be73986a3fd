"""Shared fixtures and helpers for chainrule's tests.

PyTorch is the oracle and is imported only here and in the test files, never
by the package. It runs on the CPU in float64 with one thread, so results are
deterministic and comparable with NumPy to ~1e-15.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch

from chainrule import backend

torch.set_default_dtype(torch.float64)
torch.set_num_threads(1)


def rel_error(a: Any, b: Any) -> float:
    """``max|a - b| / max(max|a|, max|b|)`` (0 if both are all zeros)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, f"shapes differ: {a.shape} vs {b.shape}"
    if a.size == 0:
        return 0.0
    diff = float(np.max(np.abs(a - b)))
    scale = max(float(np.max(np.abs(a))), float(np.max(np.abs(b))))
    return diff / scale if scale > 0 else diff


def random_input(rng: np.random.Generator, shape: tuple[int, ...], domain: str) -> np.ndarray:
    """A float64 array: ``real`` standard normal, ``positive`` in [0.5, 2), ``unit`` in [0.05, 0.95)."""
    if domain == "real":
        return np.asarray(rng.standard_normal(shape), dtype=np.float64)
    if domain == "positive":
        return np.asarray(rng.uniform(0.5, 2.0, shape), dtype=np.float64)
    if domain == "unit":
        return np.asarray(rng.uniform(0.05, 0.95, shape), dtype=np.float64)
    raise ValueError(f"unknown domain {domain!r}")


def build_sample(spec: dict[str, Any], rng: np.random.Generator) -> tuple[list[np.ndarray], dict[str, Any]]:
    """Inputs and params for one entry of a primitive's ``samples``."""
    shapes = spec["shapes"]
    domains = spec["domains"]
    if isinstance(domains, str):
        domains = [domains] * len(shapes)
    assert len(domains) == len(shapes), f"sample {spec} has {len(domains)} domains for {len(shapes)} inputs"
    arrays = [random_input(rng, tuple(s), d) for s, d in zip(shapes, domains, strict=True)]
    params = spec["params"](rng) if callable(spec["params"]) else dict(spec["params"])
    return arrays, params


@pytest.fixture
def rel_err() -> Any:
    """The relative error function :func:`rel_error` (test modules cannot import conftest)."""
    return rel_error


@pytest.fixture
def make_sample() -> Any:
    """The sample builder :func:`build_sample`."""
    return build_sample


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded generator, fresh for each test."""
    return np.random.default_rng(20240607)


# End-to-end tests of a few seconds each: marked slow, so that `python -m pytest -m "not slow"` is a quick
# loop while working; CI runs every test, these included (the README's second command selects nothing).
SLOW = (
    "tests/test_cli.py::",  # the default recipe trained for 80 epochs, then evaluate and predict on it
    "tests/test_browser.py::",  # a real Chromium
    "tests/test_onnx.py::test_pytorch_sequential_imports",  # torch.onnx.export
    "tests/test_tensor.py::test_long_chain_has_no_recursion_error",
    "tests/test_datasets.py::test_mnist1d_generated_and_cached",
    "tests/test_backend.py::test_the_command_line_asks_for_freed_memory_reuse",
    "tests/test_diagnostics.py::test_the_classic_lesson_vanishing_sigmoid_against_relu_with_he_init",
    "tests/test_exercise.py::test_seeds_0_to_99_explain_and_check_against_their_solutions",
    "tests/test_sklearn_checks.py::",  # scikit-learn's 129 estimator checks, each fitting default MLPs
    "tests/test_sklearn_parallel.py::",  # grid searches in joblib's processes and on a Dask LocalCluster
    "tests/test_distributed.py::test_mpi_",  # mpiexec jobs of 2 and 3 ranks
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.nodeid.startswith(SLOW):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _numpy_backend() -> Iterator[None]:
    """Every test starts and ends on the NumPy backend."""
    backend.set_backend("numpy")
    yield
    backend.set_backend("numpy")
