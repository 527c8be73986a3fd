"""What each kernel override buys: the override against its reference, side by side, in one process.

Two views, both interleaved (A, B, A, B, ...) so that a busy machine slows both alike:

1. **Per kernel**: every override of :data:`chainrule.backend.KERNELS` against the
   kernel's reference on the shapes of an MLP 784-256-128-10 at batches 32, 128 and
   1024 (the calls one training step makes). Minimum and median of many calls, in
   microseconds, and the ratio override / reference.
2. **Per step**: one epoch of ``Trainer.train_epoch`` on 16,384 synthetic MNIST-shaped
   rows with every override on, against the same epoch with one provider's
   overrides off (``numba``, ``blas``, ``numpy``: the kernels then run their
   references), and with all off. Plain SGD and Adam with dropout 0.2.

A trick stays only where it pays beyond the machine's noise (``docs/benchmarks.md``).

Run: ``python benchmarks/kernels.py`` (about 3 minutes on 2 cores), ``--quick`` for a smoke run.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # the benchmarks folder is not a package

common.use_source_tree()

from chainrule import backend, ops, optim  # noqa: E402
from chainrule.backend import KERNELS  # noqa: E402
from chainrule.backend.memory import keep_freed_memory  # noqa: E402
from chainrule.backend.registry import OVERRIDES, load_overrides  # noqa: E402
from chainrule.layers import mlp  # noqa: E402
from chainrule.train import Trainer  # noqa: E402

SIZES = common.SIZES


def workloads(batch: int, rng: np.random.Generator) -> dict[str, list[tuple[Any, ...]]]:
    """The calls one training step of the 784-256-128-10 MLP makes, per kernel (float32)."""
    f = np.float32

    def r(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(f)

    hidden = list(zip(SIZES[1:-1], SIZES[:-2], strict=True))  # (n[l], n[l-1]) of the hidden layers
    layers = list(zip(SIZES[1:], SIZES[:-1], strict=True))
    labels = rng.integers(0, SIZES[-1], batch)
    return {
        "bias_act": [(r(batch, n), r(n), "relu") for n, _ in hidden],
        "act_grad": [(r(batch, n), np.maximum(r(batch, n), 0), "relu", True) for n, _ in hidden],
        "weight_grad": [(r(batch, n), r(batch, k), np.asfortranarray(r(n, k))) for n, k in layers],
        "sce_labels": [(r(batch, SIZES[-1]), labels)],
        "sce_labels_grad": [(r(batch, SIZES[-1]), labels, np.asarray(1.0 / batch, f))],
        "softmax": [(r(batch, SIZES[-1]), -1)],
        "logsumexp": [(r(batch, SIZES[-1]), -1, False)],
        "axpy": [(-0.1, np.asfortranarray(r(n, k)), np.asfortranarray(r(n, k))) for n, k in layers],
        "addmm": [(np.asfortranarray(r(n, k)), r(batch, n).T, r(batch, k), -0.1) for n, k in layers],
        "adam_update": [
            (
                *(np.asfortranarray(r(n, k)) for _ in range(3)),
                np.abs(np.asfortranarray(r(n, k))),
                1e-3,
                0.9,
                0.999,
                1e-8,
                5,
            )
            for n, k in layers
        ],
        "parameter": [(r(n, k),) for n, k in layers],
    }


def _time(fn: Callable[..., Any], calls: list[tuple[Any, ...]]) -> float:
    """Seconds for one round of ``calls`` (fresh copies of in-place arguments are made outside the clock)."""
    fresh = [tuple(a.copy(order="K") if isinstance(a, np.ndarray) else a for a in args) for args in calls]
    start = time.perf_counter()
    for args in fresh:
        fn(*args)
    return time.perf_counter() - start


def per_kernel(batches: list[int], rounds: int) -> list[list[Any]]:
    """Rows ``[kernel, provider, batch, reference us, override us, ratio]`` (min of ``rounds``)."""
    load_overrides()
    rng = np.random.default_rng(0)
    rows = []
    for batch in batches:
        for name, calls in workloads(batch, rng).items():
            kernel = KERNELS[name]
            for ov in OVERRIDES.get(name, []):
                usable = [args for args in calls if ov.applies(*args)]
                if not usable:
                    continue
                ref, fast = [], []
                for _ in range(rounds):  # interleaved
                    ref.append(_time(kernel.reference, usable))
                    fast.append(_time(ov.fn, usable))
                r_us, f_us = 1e6 * min(ref), 1e6 * min(fast)
                rows.append([name, ov.provider, batch, r_us, f_us, f_us / r_us])
    return rows


def _epoch_seconds(recipe: str, batch: int, x: np.ndarray, y: np.ndarray) -> Callable[[], float]:
    dropout = 0.2 if recipe == "adam+dropout" else 0.0
    model = mlp(SIZES, "relu", "softmax", seed=0, dropout=dropout)
    optimizer, lr = ("adam", 1e-3) if recipe == "adam+dropout" else ("sgd", 0.1)
    trainer = Trainer(model, "cross_entropy", optimizer, lr=lr, batch_size=batch)
    trainer.train_epoch(x[: 4 * batch], y[: 4 * batch], shuffle=False)  # compile (two recordings)

    def run() -> float:
        return common.timed(lambda: trainer.train_epoch(x, y, shuffle=False))

    return run


def per_step(batches: list[int], rounds: int, samples: int) -> list[list[Any]]:
    """Rows ``[recipe, batch, switched off, epoch s with all on, epoch s with them off, ratio]``."""
    x, y = common.make_data(samples)
    rows = []
    providers = sorted({ov.provider for ovs in OVERRIDES.values() for ov in ovs})
    saved = {name: list(ovs) for name, ovs in OVERRIDES.items()}

    def switch(off: str | None) -> None:
        """Every override on (``off`` None), or all but ``off``'s (``"all"``: none)."""
        for name, ovs in OVERRIDES.items():
            ovs[:] = [ov for ov in saved[name] if off is None or off not in ("all", ov.provider)]

    for recipe in ("sgd", "adam+dropout"):
        for batch in batches:
            for off in [*providers, "all"]:
                switch(None)
                on_run = _epoch_seconds(recipe, batch, x, y)
                switch(off)  # the same set-up without these overrides (a layer's layout too)
                off_run = _epoch_seconds(recipe, batch, x, y)
                on, without = [], []
                for _ in range(rounds):
                    switch(None)
                    on.append(on_run())
                    switch(off)
                    without.append(off_run())
                switch(None)
                with_s, without_s = float(np.median(on)), float(np.median(without))
                rows.append([recipe, batch, off, with_s, without_s, with_s / without_s])
                print(f"  {recipe} b{batch} without {off}: {with_s:.3f} s with, {without_s:.3f} s without")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, 4096 rows, batches 32 and 1024")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    common.limit_threads(args.threads)
    keep_freed_memory()
    batches = [32, 1024] if args.quick else [32, 128, 1024]
    print(common.describe_environment({"chainrule": "source tree"}))
    rows = per_kernel(batches, 20 if args.quick else 200)
    print("\n### each override against its reference (float32, min over rounds, one step's calls)\n")
    print("(parameter runs once per layer when a model is built: its gain shows in the epochs below)\n")
    headers = ["kernel", "override", "batch", "reference us", "override us", "override / reference"]
    print(common.table(headers, rows))
    step_rows = per_step(batches, 2 if args.quick else 5, 4096 if args.quick else 16384)
    print("\n### whole epochs: all overrides on against one provider's off (median seconds)\n")
    headers = ["recipe", "batch", "switched off", "all on s", "off s", "on / off"]
    print(common.table(headers, step_rows))
    _ = (backend, ops, optim)  # imported for the kernels they define
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
