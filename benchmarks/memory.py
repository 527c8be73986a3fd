"""Peak memory of a chainrule training run against what it must hold (issue 6).

What training must hold: the data, the parameters, their gradients and the
optimizer's state. The ratio ``peak / (data + params + grads + state)``
should stay at or under 1.5: activations of one batch and the engine's
temporaries are small next to 60,000 examples, unless something copies the
data.

Each configuration runs in a fresh process (so one run's allocations never
inflate the next's peak) under :mod:`tracemalloc`, which sees NumPy's array
buffers. The data and the model are built first; the peak is reset; then one
epoch runs. Nothing here is timed.

The resident set is reported too (Linux: ``VmRSS`` before the epoch, ``VmHWM``
after it, the high-water mark reset through ``/proc/self/clear_refs``): the
Trainer asks malloc to keep freed memory for reuse
(:func:`chainrule.backend.keep_freed_memory`), and that shows in the RSS, not in
tracemalloc's count. Where Numba is installed (``chainrule[fast]``), its import and
the loading of the compiled loops happen inside the measured epoch and count: a
one-time ~40 MiB traced and ~120 MiB resident; the resident growth also holds
the freed memory that malloc keeps for reuse.

Modes
-----
epoch   ``Trainer.train_epoch(x, y)`` (shuffled, as in ``fit``)
fit     ``Trainer.fit(x, y, epochs=1, verbose=0)`` (validation of the data and the
        end-of-epoch accuracy included)
numpy   the hand-written NumPy loop of ``mlp_epoch.py``, for comparison

Run: ``python benchmarks/memory.py`` (about a minute), ``--quick`` for a smoke run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # the benchmarks folder is not a package

TARGET = 1.5
MODES = ("epoch", "fit", "numpy")


def _proc_status_kib(field: str) -> float:
    """A ``kB`` field of ``/proc/self/status`` (NaN off Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return float(line.split()[1])
    except OSError:
        pass
    return float("nan")


def _reset_peak_rss() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    except OSError:
        pass


def measure(mode: str, batch: int, samples: int) -> dict[str, Any]:
    """Peak traced bytes of one epoch in ``mode``, and the bytes training must hold."""
    tracemalloc.start()
    x, y = common.make_data(samples)
    init = common.init_weights()
    if mode == "numpy":
        from mlp_epoch import HandNumpy

        runner = HandNumpy(x, y, batch)
        runner.reset(init)
        params = [a for pair in runner.params for a in pair]
        state: list[np.ndarray] = []
    else:
        common.use_source_tree()
        from chainrule.layers import mlp
        from chainrule.train import Trainer

        model = mlp(common.SIZES, "relu", "softmax", seed=0)
        trainer = Trainer(model, "cross_entropy", "sgd", lr=common.LR, batch_size=batch, seed=0)
        params = [p.data for p in model.parameters()]
    before, _ = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    _reset_peak_rss()
    rss_before = _proc_status_kib("VmRSS")
    if mode == "numpy":
        runner.epoch()
    elif mode == "epoch":
        trainer.train_epoch(x, y)
    else:
        trainer.fit(x, y, epochs=1, verbose=0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_growth = (_proc_status_kib("VmHWM") - rss_before) * 1024
    if mode != "numpy":
        state = [a for s in trainer.optimizer.state for a in s.values() if hasattr(a, "nbytes")]
    param_bytes = sum(a.nbytes for a in params)
    needed = {
        "data": x.nbytes + y.nbytes,
        "params": param_bytes,
        "grads": param_bytes,
        "state": sum(a.nbytes for a in state),
    }
    return {"mode": mode, "batch": batch, "before": before, "peak": peak, "rss_growth": rss_growth, **needed}


def run_child(mode: str, batch: int, samples: int) -> dict[str, Any]:
    """:func:`measure` in a fresh Python process."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(batch), str(samples)],
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=common.int_list, default=[32, 1024])
    parser.add_argument("--samples", type=int, default=60000)
    parser.add_argument(
        "--modes", default=",".join(MODES), help=f"comma-separated subset of {','.join(MODES)}"
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 4096 samples")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "BATCH", "SAMPLES"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.samples = 4096
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        mode, batch, samples = args.child
        print(json.dumps(measure(mode, int(batch), int(samples))))
        return 0
    print(common.describe_environment())
    mib = 2.0**20
    rows, verdicts = [], []
    for batch in args.batches:
        for mode in args.modes.split(","):
            r = run_child(mode, batch, args.samples)
            needed = r["data"] + r["params"] + r["grads"] + r["state"]
            ratio = r["peak"] / needed
            rows.append(
                [
                    mode,
                    batch,
                    r["data"] / mib,
                    (r["params"] + r["grads"] + r["state"]) / mib,
                    needed / mib,
                    r["peak"] / mib,
                    (r["peak"] - r["before"]) / mib,
                    r["rss_growth"] / mib,
                    ratio,
                ]
            )
            if mode != "numpy":
                verdicts.append((f"{mode} b{batch}: peak/needed = {ratio:.2f} <= {TARGET}", ratio <= TARGET))
    headers = [
        "mode",
        "batch",
        "data MiB",
        "params+grads+state MiB",
        "needed MiB",
        "peak MiB",
        "peak - start MiB",
        "RSS growth MiB",
        "peak / needed",
    ]
    print(f"\n### peak traced memory of one epoch, {args.samples} samples, MLP 784-256-128-10, SGD\n")
    print(common.table(headers, rows))
    print("\n" + common.table(["target", "result"], [[t, common.verdict(ok)] for t, ok in verdicts]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
