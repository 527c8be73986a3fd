"""Choose the default MNIST-1D recipe on a validation split, then report test accuracy once (issue 5).

Target: the MLP figure of Table 1 of Greydanus & Kobak, "Scaling down deep
learning with MNIST-1D" (68 +- 2 % test accuracy; no convolution).

1. Cut a stratified validation split (20 %, seed 0) from the 4,000 training
   examples of ``load("mnist1d")``; the 1,000 test examples are not touched.
2. Train every recipe of the grid on the remaining 3,200 examples and print its
   validation accuracy (last epoch, and the best epoch for information).
3. Pick the recipe with the best last-epoch validation accuracy (validation only).
4. Train that recipe on all 4,000 training examples for each seed and report the
   test accuracy per seed and its mean +- std (population std, ``ddof=0``).

Each run is one process-local training loop on the CPU; OpenBLAS is held to one
thread (set before NumPy loads), which is faster for these small matrices on a
shared machine. ``--workers`` runs grid points in parallel processes.

    python benchmarks/mnist1d_recipe.py                    # grid + final (about 30-60 min on 2 cores)
    python benchmarks/mnist1d_recipe.py --final-only       # only step 4, with the recipe in RECIPE
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # NOTE: must precede the first NumPy import
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import itertools
import json
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np

from chainrule.data import StandardScaler, train_val_split
from chainrule.datasets import load
from chainrule.layers import mlp
from chainrule.optim import CosineAnnealingLR
from chainrule.train import Trainer, evaluate

PAPER_MLP = "68 +- 2 % (MLP, Table 1 of Greydanus & Kobak, 'Scaling down deep learning with MNIST-1D')"

# The centre of the grid, from a coarse look at validation accuracy (dropout and depth mattered most).
BASE: dict[str, Any] = {
    "layers": [512, 512, 512],
    "activation": "relu",
    "optimizer": "adamw",
    "lr": 3e-3,
    "weight_decay": 0.05,
    "dropout": 0.3,
    "epochs": 100,
    "batch_size": 100,
    "cosine": True,
    "standardize": False,
}

# The grid's winner on validation (filled in from the last full run); --final-only uses it.
RECIPE: dict[str, Any] = {**BASE, "dropout": 0.4}


def grid() -> list[dict[str, Any]]:
    """The recipes compared on validation: BASE, and BASE with one setting changed at a time."""
    axes: dict[str, list[Any]] = {
        "layers": [[256, 256], [512, 512], [256, 256, 256], [512, 512, 512, 512]],
        "activation": ["gelu", "elu"],
        "dropout": [0.0, 0.1, 0.2, 0.4],
        "weight_decay": [0.0, 0.01, 0.1],
        "lr": [1e-3, 1e-2],
        "batch_size": [64, 128],
        "epochs": [50, 200],
        "cosine": [False],
        "standardize": [True],
    }
    recipes = [dict(BASE)]
    for key, values in axes.items():
        recipes += [{**BASE, key: value} for value in values]
    return recipes


def train(recipe: dict[str, Any], x: np.ndarray, y: np.ndarray, seed: int, val: Any = None) -> Any:
    """Build and train one model; returns (model, history, scaler or None, seconds)."""
    scaler = StandardScaler().fit(x) if recipe["standardize"] else None
    if scaler is not None:
        x = scaler.transform(x)
        val = (scaler.transform(val[0]), val[1]) if val is not None else None
    sizes = [x.shape[1], *recipe["layers"], 10]
    model = mlp(sizes, recipe["activation"], "softmax", dropout=recipe["dropout"], seed=seed)
    epochs = recipe["epochs"]
    trainer = Trainer(
        model,
        "cross_entropy",
        recipe["optimizer"],
        recipe["lr"],
        recipe["batch_size"],
        seed=seed,
        optimizer_options={"weight_decay": recipe["weight_decay"]},
        schedule=(lambda opt: CosineAnnealingLR(opt, t_max=epochs)) if recipe["cosine"] else None,
    )
    started = time.perf_counter()
    history = trainer.fit(x, y, epochs, validation_data=val, verbose=0)
    return model, history, scaler, time.perf_counter() - started


def validate(recipe: dict[str, Any]) -> dict[str, Any]:
    """Validation accuracy of one recipe (training split 3,200, validation 800, seed 0)."""
    ds = load("mnist1d")
    x_tr, y_tr, x_val, y_val = train_val_split(ds.x_train, ds.y_train, val_fraction=0.2, rng=0)
    _, history, _, seconds = train(recipe, x_tr, y_tr, seed=0, val=(x_val, y_val))
    acc = history["val_accuracy"]
    return {"recipe": recipe, "val_last": acc[-1], "val_best": max(acc), "seconds": seconds}


def test_once(recipe: dict[str, Any], seed: int) -> dict[str, Any]:
    """Train on all 4,000 training examples with ``seed``; test accuracy on the 1,000 test examples."""
    ds = load("mnist1d")
    model, _, scaler, seconds = train(recipe, ds.x_train, ds.y_train, seed=seed)
    x_test = scaler.transform(ds.x_test) if scaler is not None else ds.x_test
    scores = evaluate(model, x_test, ds.y_test, "cross_entropy")
    return {"seed": seed, "test_accuracy": scores["accuracy"], "seconds": seconds}


def describe(recipe: dict[str, Any]) -> str:
    diff = {k: v for k, v in recipe.items() if BASE.get(k) != v}
    return "base" if not diff else ", ".join(f"{k}={v}" for k, v in diff.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--final-only", action="store_true", help="skip the grid; use RECIPE")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", help="also write all results to this file")
    args = parser.parse_args()

    recipe = dict(RECIPE)
    results: dict[str, Any] = {"paper": PAPER_MLP}
    with ProcessPoolExecutor(args.workers) as pool:
        if not args.final_only:
            print(f"{'recipe (difference from base)':52s} {'val last':>8s} {'val best':>8s} {'s':>6s}")
            rows = []
            for row in pool.map(validate, grid()):
                rows.append(row)
                print(
                    f"{describe(row['recipe']):52s} {row['val_last']:8.4f} {row['val_best']:8.4f} "
                    f"{row['seconds']:6.1f}",
                    flush=True,
                )
            best = max(rows, key=lambda r: r["val_last"])
            recipe = best["recipe"]
            results["grid"] = rows
            print(f"\nchosen on validation: {recipe}")
        finals = list(pool.map(test_once, itertools.repeat(recipe), args.seeds))
    accs = np.array([r["test_accuracy"] for r in finals])
    for r in finals:
        print(f"seed {r['seed']}: test accuracy {r['test_accuracy']:.4f}  ({r['seconds']:.1f} s)")
    print(f"test accuracy {accs.mean():.4f} +- {accs.std():.4f} over {len(accs)} seeds; paper: {PAPER_MLP}")
    results.update(recipe=recipe, final=finals, mean=float(accs.mean()), std=float(accs.std()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
