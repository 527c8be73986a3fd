"""Plain SGD's step inside the backward pass, against the separate update (issue 6).

``Trainer(fused_update=True)`` (the default) lets the traced step add
``-lr delta^T A_prev`` into each ``W`` in the GEMM that would have formed
``dC/dW`` (``descend`` in :mod:`chainrule.trace`); ``fused_update=False`` forms
``dC/dW`` and leaves the update to ``SGD.step``. Both train the same
784-256-128-10 MLP (ReLU, softmax cross-entropy, ``alpha = 0.1``, float32) from
the same weights on the same batches, in one process, epochs of ``--steps``
steps interleaved over ``--rounds`` rounds. Printed per batch size: microseconds
per step (minimum and median over the rounds), their ratio, and how far the
weights of the two are apart after one epoch from the same start (the fused GEMM
adds its partial sums into ``W`` block by block, so large batches differ in the
last bit).

Run: ``python benchmarks/fused_update.py`` (about a minute on 2 cores),
``--quick`` for a smoke run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # the benchmarks folder is not a package


def _trainer(batch: int, fused_update: bool) -> Any:
    common.use_source_tree()
    from chainrule.layers import mlp
    from chainrule.train import Trainer

    model = mlp(common.SIZES, "relu", "softmax", seed=0, dtype=np.float32)
    return Trainer(model, "cross_entropy", "sgd", lr=common.LR, batch_size=batch, fused_update=fused_update)


def _reset(trainer: Any, init: list[tuple[np.ndarray, np.ndarray]]) -> None:
    for layer, (w, b) in zip(trainer.model.dense_layers(), init, strict=True):
        layer.W.data[...] = w
        layer.b.data[...] = b


def _weights(trainer: Any) -> list[np.ndarray]:
    return [p.data.copy() for p in trainer.model.parameters()]


def bench(batch: int, steps: int, rounds: int) -> list[Any]:
    """One table row: ``[batch, fused min, fused median, kept min, kept median, ratio, rel diff]``."""
    x, y = common.make_data(batch * steps)
    init = common.init_weights()
    trainers = {True: _trainer(batch, True), False: _trainer(batch, False)}
    for trainer in trainers.values():  # one epoch from the same start: the weights' agreement
        _reset(trainer, init)
        trainer.train_epoch(x, y, shuffle=False)
    pairs = zip(_weights(trainers[True]), _weights(trainers[False]), strict=True)
    diff = max(float(np.abs(a - b).max() / np.abs(b).max()) for a, b in pairs)
    times: dict[bool, list[float]] = {True: [], False: []}
    for r in range(rounds):
        for fused in (True, False) if r % 2 == 0 else (False, True):
            times[fused].append(common.timed(lambda t=trainers[fused]: t.train_epoch(x, y, shuffle=False)))
    (f_med, f_min), (k_med, k_min) = common.summarize(times[True]), common.summarize(times[False])
    per_step = 1e6 / steps
    return [
        batch,
        f_min * per_step,
        f_med * per_step,
        k_min * per_step,
        k_med * per_step,
        f_min / k_min,
        diff,
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=common.int_list, default=[32, 128, 1024])
    parser.add_argument("--steps", type=int, default=64, help="steps per timed epoch")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved epochs per variant")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="smoke run: batches 32,128, 8 steps, 3 rounds")
    args = parser.parse_args(argv)
    if args.quick:
        args.batches, args.steps, args.rounds = [32, 128], 8, 3
    common.limit_threads(args.threads)
    print(common.describe_environment())
    rows = [bench(batch, args.steps, args.rounds) for batch in args.batches]
    headers = ["batch", "fused min us", "fused median us", "kept min us", "kept median us"]
    print(f"\n### one SGD step, MLP 784-256-128-10, {args.steps} steps per epoch, {args.rounds} rounds\n")
    print(common.table([*headers, "fused / kept (min)", "rel diff, 1 epoch"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
