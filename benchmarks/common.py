"""Shared pieces of the CPU benchmarks (issue 6): data, weights, FLOPs, ceiling, tables.

Everything here is plain NumPy, so each benchmark script can import it
without importing any framework it is about to compare.

Notation (STYLE.md section 4): batches are rows, ``W[l]`` has shape
``(n[l], n[l-1])`` and ``b[l]`` has shape ``(n[l],)``. The frameworks that
store weights the other way round (scikit-learn's ``coefs_`` are
``(n[l-1], n[l])``) get the transpose.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

SIZES = (784, 256, 128, 10)  # the MLP: 784-256-128-10, ReLU, softmax cross-entropy
LR = 0.1
DATA_SEED = 2024
WEIGHT_SEED = 0


def use_source_tree() -> None:
    """Import chainrule from this checkout's ``src/`` (benchmarks run without installing)."""
    src = Path(__file__).resolve().parent.parent / "src"
    if str(src) not in sys.path:
        sys.path.insert(0, str(src))


# ------------------------------------------------------------------ data
def make_data(
    m: int, n_in: int = SIZES[0], k: int = SIZES[-1], seed: int = DATA_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """MNIST-shaped synthetic data: ``x (m, n_in)`` float32, ``y (m,)`` int64 labels.

    Inputs are 80% zeros, otherwise uniform in ``[0, 1)`` (like the pixels of
    a digit). Labels come from a fixed random linear teacher,
    ``y = argmax(x @ T + c)``, so the task is learnable.
    """
    rng = np.random.default_rng(seed)
    x = rng.random((m, n_in), dtype=np.float32)
    x[rng.random((m, n_in), dtype=np.float32) < 0.8] = 0.0
    teacher = rng.normal(size=(n_in, k)).astype(np.float32)
    offset = rng.normal(size=k).astype(np.float32)
    y = np.argmax(x @ teacher + offset, axis=1).astype(np.int64)
    return x, y


def init_weights(
    sizes: Sequence[int] = SIZES, seed: int = WEIGHT_SEED
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``[(W[l], b[l]), ...]`` float32, PyTorch's default ``Linear`` init drawn with NumPy.

    ``W[l]`` of shape ``(n[l], n[l-1])`` and ``b[l]`` of shape ``(n[l],)``, both
    uniform in ``[-1/sqrt(n[l-1]), 1/sqrt(n[l-1])]``. Every framework starts from
    copies of these arrays.
    """
    rng = np.random.default_rng(seed)
    params = []
    for n_in, n_out in itertools.pairwise(sizes):
        bound = 1.0 / np.sqrt(n_in)
        w = rng.uniform(-bound, bound, size=(n_out, n_in)).astype(np.float32)
        b = rng.uniform(-bound, bound, size=n_out).astype(np.float32)
        params.append((w, b))
    return params


# ----------------------------------------------------------------- FLOPs
def flops_per_example(sizes: Sequence[int] = SIZES, first_layer_dA: bool = False) -> int:
    """Multiply-add FLOPs of one SGD step per example, counting only the matmuls.

    Per layer ``l`` and example: forward ``z = W a_prev`` (``2 n[l-1] n[l]``),
    ``dC/dW`` (``2 n[l-1] n[l]``) and ``dC/da_prev`` (``2 n[l-1] n[l]``). The
    input needs no gradient, so by default the first layer's ``dC/da_prev`` is
    not counted (the issue's 60.4 GFLOP per epoch of 60,000 examples on
    784-256-128-10; counting it gives 84.5 GFLOP).
    """
    total = 0
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        matmuls = 3 if (i > 0 or first_layer_dA) else 2
        total += matmuls * 2 * n_in * n_out
    return total


def gemm_ceiling(
    n: int = 2048, repeats: int = 7, dtype: Any = np.float32, threads: int | None = None
) -> float:
    """Best-of-``repeats`` GFLOP/s of one ``(n, n) @ (n, n)`` product with NumPy's BLAS."""
    if threads is not None:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(threads, user_api="blas"):
            return gemm_ceiling(n, repeats, dtype)
    rng = np.random.default_rng(1)
    a = rng.random((n, n), dtype=np.float32).astype(dtype)
    b = rng.random((n, n), dtype=np.float32).astype(dtype)
    out = np.empty((n, n), dtype=dtype)
    np.matmul(a, b, out=out)  # warm-up: threads started, pages touched
    best = min(timed(lambda: np.matmul(a, b, out=out)) for _ in range(repeats))
    return 2.0 * n**3 / best / 1e9


def limit_threads(threads: int) -> None:
    """Ask every thread pool of processes started from now on for ``threads`` threads.

    Read at import time by OpenBLAS, OpenMP (PyTorch) and XLA (JAX), so it must
    be set before a worker process imports them.
    """
    for key in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[key] = str(threads)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)  # this process's pools, loaded already
    except ImportError:
        pass
    xla = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" if threads == 1 else ""
    if xla:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + xla).strip()


def timed(fn: Callable[[], Any]) -> float:
    """Seconds one call of ``fn`` takes (``time.perf_counter``)."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# ------------------------------------------------------------ environment
def blas_info() -> list[dict[str, Any]]:
    """threadpoolctl's view of the BLAS libraries loaded (kernel architecture, threads)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return [i for i in threadpool_info() if i.get("user_api") == "blas"]


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (falls back to ``platform``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_environment(extra: dict[str, str] | None = None) -> str:
    """A few lines naming the machine, Python, NumPy and the BLAS kernel in use."""
    lines = [
        f"machine : {cpu_model()}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}",
        f"python  : {platform.python_version()}  numpy {np.__version__}",
    ]
    for info in blas_info():
        lines.append(
            f"blas    : {info.get('internal_api')} {info.get('version')} kernel={info.get('architecture')} "
            f"threads={info.get('num_threads')} ({Path(info.get('filepath', '')).name})"
        )
    for key in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        if key in os.environ:
            lines.append(f"env     : {key}={os.environ[key]}")
    if "OPENBLAS_CORETYPE" in os.environ:
        lines.append(
            "NOTE    : OPENBLAS_CORETYPE is set, which pins an older kernel; for speed numbers run "
            "`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python ...`."
        )
    for name, version in (extra or {}).items():
        lines.append(f"{name:<8}: {version}")
    return "\n".join(lines)


# ----------------------------------------------------------------- output
def summarize(times: Sequence[float]) -> tuple[float, float]:
    """``(median, min)`` of a list of seconds."""
    return statistics.median(times), min(times)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table (numbers right-aligned), printable as is."""
    cells = [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    numeric = [all(_is_number(row[i]) for row in rows) if rows else False for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)]
        return "| " + " | ".join(parts) + " |"

    rule = (
        "|"
        + "|".join(
            ("-" * (w + 1) + ":") if num else ("-" * (w + 2)) for w, num in zip(widths, numeric, strict=True)
        )
        + "|"
    )
    return "\n".join([line(list(headers)), rule, *(line(r) for r in cells)])


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):  # not measured
            return "-"
        if abs(value) >= 100:
            return f"{value:.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        if abs(value) >= 0.01:
            return f"{value:.3f}"
        return f"{value:.2e}"
    return str(value)


def verdict(ok: bool) -> str:
    """``PASS`` or ``FAIL``."""
    return "PASS" if ok else "FAIL"


def int_list(text: str) -> list[int]:
    """argparse type: ``"32,128,1024"`` -> ``[32, 128, 1024]``."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def optional_import(name: str) -> Any:
    """The module ``name``, or ``None`` (with a message) if it is not installed."""
    try:
        return __import__(name)
    except ImportError as exc:
        print(f"[skip] {name} is not installed ({exc}); its columns are left out.", file=sys.stderr)
        return None
