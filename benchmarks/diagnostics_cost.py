"""What training diagnostics cost: epoch and step time with and without them, side by side (issue 19).

``Trainer(diagnostics=True)`` runs one forward and backward pass on a fixed
probe batch (256 examples) after every epoch, plus the norms, so its cost per
step is that probe divided by the steps of an epoch. Two trainers, identical
but for ``diagnostics``, train from the same weights on the same data in one
process, one epoch each in turn (``fit`` to the next epoch, so the per-epoch
metrics are in both), over ``--rounds`` rounds. Printed per model: ms per
epoch (minimum and median), their ratio, the extra microseconds per step, and
the probe alone (``Diagnostics.measure``).

Models: the digits recipe of ``chainrule train`` (64-256-256-10, ReLU, dropout
0.2, Adam, batch 32, 1437 examples: 45 steps), the issue-6 MLP 784-256-128-10
on MNIST-shaped data (``--steps`` steps at batch 32 and 128), and the ten-layer
sigmoid network of the vanishing-gradient lesson on digits.

Run: ``python benchmarks/diagnostics_cost.py`` (about a minute on 2 cores),
``--quick`` for a smoke run.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # the benchmarks folder is not a package


def _models(steps: int) -> list[tuple[str, Any, Any, Any, dict[str, Any]]]:
    """``(name, build_model, x, y, trainer options)`` per row."""
    common.use_source_tree()
    from chainrule import datasets
    from chainrule.layers import Dense, Sequential, mlp

    digits = datasets.load("digits")
    x_mnist, y_mnist = common.make_data(128 * steps)

    def lesson() -> Any:
        rng = np.random.default_rng(0)
        sizes = [64] + [32] * 9 + [10]
        layers = [
            Dense(k, n, activation="sigmoid" if i < 9 else "softmax", weights=rng.normal(0, 0.01, (n, k)))
            for i, (k, n) in enumerate(itertools.pairwise(sizes))
        ]
        return Sequential(*layers)

    recipe = {"optimizer": "adam", "lr": 1e-3, "batch_size": 32}
    return [
        (
            "digits recipe 64-256-256-10, batch 32",
            lambda: mlp([64, 256, 256, 10], "relu", "softmax", dropout=0.2, seed=0),
            digits.x_train,
            digits.y_train,
            recipe,
        ),
        (
            "784-256-128-10, batch 32",
            lambda: mlp(common.SIZES, "relu", "softmax", seed=0),
            x_mnist[: 32 * steps],
            y_mnist[: 32 * steps],
            {"optimizer": "sgd", "lr": common.LR, "batch_size": 32},
        ),
        (
            "784-256-128-10, batch 128",
            lambda: mlp(common.SIZES, "relu", "softmax", seed=0),
            x_mnist,
            y_mnist,
            {"optimizer": "sgd", "lr": common.LR, "batch_size": 128},
        ),
        ("10 sigmoid layers (the lesson), batch 32", lesson, digits.x_train, digits.y_train, recipe),
    ]


def bench(name: str, build: Any, x: Any, y: Any, options: dict[str, Any], rounds: int) -> list[Any]:
    """One row: ``[model, steps, off min/median ms, on min/median ms, ratios, us per step, probe ms]``."""
    from chainrule.diagnostics import Diagnostics
    from chainrule.train import Trainer

    quiet = Diagnostics(warn=False)  # the lesson's network warns every run; the numbers are what counts here
    trainers = {
        flag: Trainer(build(), "cross_entropy", seed=0, diagnostics=quiet if flag else False, **options)
        for flag in (0, 1)
    }
    for trainer in trainers.values():  # warm up: traces recorded, first epoch's allocations made
        trainer.fit(x, y, epochs=1, verbose=0)
    times: dict[int, list[float]] = {0: [], 1: []}
    for r in range(rounds):
        for flag in (0, 1) if r % 2 == 0 else (1, 0):
            t = trainers[flag]
            times[flag].append(common.timed(lambda t=t: t.fit(x, y, epochs=t.epoch + 1, verbose=0)))
    trainer = trainers[1]
    probe_x, probe_y = quiet._probe  # the batch it measures on
    probe = []
    for _ in range(max(rounds, 5)):
        started = time.perf_counter()
        quiet.measure(trainer.model, trainer.step_loss, trainer.logits, probe_x, probe_y)
        probe.append(time.perf_counter() - started)
    steps = -(-x.shape[0] // options["batch_size"])
    (off_med, off_min), (on_med, on_min) = common.summarize(times[0]), common.summarize(times[1])
    return [
        name,
        steps,
        off_min * 1e3,
        off_med * 1e3,
        on_min * 1e3,
        on_med * 1e3,
        on_min / off_min,
        on_med / off_med,
        (on_min - off_min) / steps * 1e6,
        statistics.median(probe) * 1e3,
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=64, help="steps per epoch, 784-256-128-10 at batch 32")
    parser.add_argument("--rounds", type=int, default=9, help="interleaved epochs per variant")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="smoke run: 8 steps, 2 rounds")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.rounds = 8, 2
    common.limit_threads(args.threads)
    print(common.describe_environment())
    rows = [bench(*model, args.rounds) for model in _models(args.steps)]
    headers = ["model", "steps/epoch", "off min ms", "off median ms", "on min ms", "on median ms"]
    print(f"\n### one epoch with and without Trainer(diagnostics=True), {args.rounds} rounds\n")
    print(
        common.table(
            [*headers, "on / off (min)", "on / off (median)", "extra us/step (min)", "probe ms"], rows
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
