"""``chainrule train``: train an MLP on a dataset, write the model, metrics.json and a plot.

Part of :mod:`chainrule.cli` (level 8).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from chainrule import backend, datasets
from chainrule.cli.common import add_device, int_list, positive_int, say, use_device
from chainrule.cli.output import RunDir
from chainrule.errors import ConfigError
from chainrule.layers import mlp
from chainrule.losses import get_loss
from chainrule.optim import CosineAnnealingLR
from chainrule.train import EarlyStopping, Trainer, evaluate

NAME = "train"
HELP = "train an MLP and write model, metrics.json and a plot"

# Default recipe per dataset: chosen on a validation split cut from the training set.
RECIPES: dict[str, dict[str, Any]] = {
    # chosen by mean validation accuracy over seeds 0-4 (docs/datasets.md, "digits: the default recipe")
    "digits": {
        "layers": [256, 256],
        "activation": "relu",
        "optimizer": "adam",
        "lr": 1e-3,
        "epochs": 80,
        "batch_size": 32,
        "dropout": 0.2,
    },
    # the 1-D regression curve: chosen on validation loss (0.010, against 0.029 for 128-relu-300)
    "regression": {
        "layers": [64, 64],
        "activation": "tanh",
        "optimizer": "adam",
        "lr": 1e-3,
        "epochs": 300,
        "batch_size": 32,
    },
    # benchmarks/mnist1d_recipe.py; dropout, weight_decay (AdamW, decoupled) and a cosine
    # schedule over all epochs are part of the recipe: see docs/datasets.md, "MNIST-1D".
    "mnist1d": {
        "layers": [512, 512, 512],
        "activation": "relu",
        "optimizer": "adamw",
        "lr": 3e-3,
        "epochs": 100,
        "batch_size": 100,
        "dropout": 0.4,
        "weight_decay": 0.05,
        "schedule": "cosine",
    },
}
DEFAULT_RECIPE: dict[str, Any] = {
    "layers": [128],
    "activation": "relu",
    "optimizer": "adam",
    "lr": 1e-3,
    "epochs": 30,
    "batch_size": 32,
    "dropout": 0.0,
    "weight_decay": 0.0,
    "schedule": "none",
}


def add_arguments(train: argparse.ArgumentParser) -> None:
    """The options of ``chainrule train``."""
    train.add_argument("--data", default="digits", help="dataset name or path (default: digits)")
    train.add_argument("--layers", type=int_list, help="hidden layer sizes, e.g. 128,64")
    train.add_argument("--activation", help="hidden activation (relu, sigmoid, tanh, ...)")
    train.add_argument("--loss", help="loss name (default: cross_entropy, or mse for regression)")
    train.add_argument("--optimizer", help="sgd, adam, adamw or rmsprop")
    train.add_argument("--lr", type=float, help="learning rate alpha")
    train.add_argument("--epochs", type=positive_int)
    train.add_argument("--dropout", type=float, help="dropout after each hidden layer (0: none)")
    train.add_argument("--weight-decay", type=float, help="L2 (AdamW: decoupled) weight decay")
    train.add_argument(
        "--schedule", choices=["none", "cosine"], help="learning-rate schedule over the epochs"
    )
    train.add_argument("--batch-size", type=positive_int)
    train.add_argument("--validation-split", type=float, default=0.1)
    train.add_argument("--patience", type=int, default=0, help="early-stopping patience on val_loss (0: off)")
    train.add_argument("--seed", type=int, default=0)
    add_device(train)
    train.add_argument("--out", default="runs/latest", help="output folder (default: runs/latest)")
    train.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")
    train.add_argument(
        "--allow-divergence",
        action="store_true",
        help="warn instead of stopping when the loss grows over 1000x its start (a NaN loss still stops)",
    )


def run(args: argparse.Namespace) -> int:
    """Train on ``--data`` and write model.safetensors, metrics.json and history.png to ``--out``."""
    use_device(args.device)
    out = RunDir(args.out)
    out.prepare()  # a bad --out fails now, not after training
    data = datasets.load(args.data)
    recipe = {**RECIPES.get(data.name, DEFAULT_RECIPE)}
    recipe.update({k: v for k, v in vars(args).items() if k in DEFAULT_RECIPE and v is not None})
    regression = data.task == "regression"
    n_out = data.y_train.shape[1] if regression and data.y_train.ndim == 2 else (data.n_classes or 1)
    loss = args.loss or ("mse" if regression else "cross_entropy")
    # a loss on logits (softmax_cross_entropy, ...) gets the logits: no output activation
    output = "identity" if regression or get_loss(loss).from_logits else "softmax"
    sizes = [data.x_train.shape[1], *recipe["layers"], n_out]
    model = mlp(sizes, recipe["activation"], output, dropout=recipe.get("dropout", 0.0), seed=args.seed)
    epochs = recipe["epochs"]  # after any --epochs override, so a cosine schedule spans the real run
    trainer = Trainer(
        model,
        loss,
        recipe["optimizer"],
        recipe["lr"],
        recipe["batch_size"],
        seed=args.seed,
        optimizer_options={"weight_decay": recipe.get("weight_decay", 0.0)},
        schedule=(lambda opt: CosineAnnealingLR(opt, t_max=epochs))
        if recipe.get("schedule") == "cosine"
        else None,
        allow_divergence=args.allow_divergence,
    )
    say(f"data: {data!r}", args.quiet)
    say(f"model: {model!r}\n{trainer!r}", args.quiet)
    if args.patience and not args.validation_split:
        raise ConfigError("--patience needs a validation split to watch (--validation-split > 0).")
    callbacks = [EarlyStopping(patience=args.patience)] if args.patience else []
    started = time.perf_counter()
    history = trainer.fit(
        data.x_train,
        data.y_train,
        recipe["epochs"],
        validation_split=args.validation_split,
        callbacks=callbacks,
        verbose=0 if args.quiet else 1,
    )
    seconds = time.perf_counter() - started
    x_test = backend.asarray(data.x_test.astype(model.parameters()[0].dtype))
    test = evaluate(model, x_test, backend.asarray(data.y_test), loss)
    meta = {"loss": loss, "data": args.data, "n_classes": data.n_classes, "task": data.task}
    metrics: dict[str, Any] = {f"test_{k}": v for k, v in test.items()}
    metrics.update(
        recipe=recipe, loss_name=loss, seconds=seconds, epochs_run=len(history), history=history.epochs
    )
    out.commit(model, meta, metrics, history)  # model, metrics.json, history.png: one unit
    _report(history, test, seconds, out.folder, args.quiet)
    return 0


def _report(history: Any, test: dict[str, float], seconds: float, out: Path, quiet: bool) -> None:
    for i, logs in enumerate(history.epochs, 1):
        say(f"epoch {i:3d}  " + "  ".join(f"{k} {v:.4f}" for k, v in logs.items() if k != "lr"), quiet)
    scores = "  ".join(f"test_{k} {v:.4f}" for k, v in test.items())
    print(f"{scores}  ({seconds:.1f} s)  saved to {out}/", flush=True)
