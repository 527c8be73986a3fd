"""``chainrule train``: train an MLP on a dataset, write the model, metrics.json and a plot.

Part of :mod:`chainrule.cli` (level 9). A run says what it does before it does it:
the data, the target column and the task (with the reason when inferred), the
classes, the recipe with the options that changed it, and the target scaling of a
regression; after training, why it stopped and which weights it kept.
"""

from __future__ import annotations

import argparse
import textwrap
import time
from pathlib import Path
from typing import Any

from chainrule import backend, datasets
from chainrule.backend import memory
from chainrule.cli import mpi, saved
from chainrule.cli.common import (
    add_device,
    fit_target_scaling,
    int_list,
    load_data,
    positive_int,
    say,
    scale_target,
    target_option,
    unscale_target,
    use_device,
)
from chainrule.cli.output import RunDir
from chainrule.errors import ConfigError
from chainrule.functional import ACTIVATIONS
from chainrule.layers import mlp
from chainrule.losses import LOSSES, get_loss
from chainrule.metrics import regression_scores
from chainrule.optim import OPTIMIZERS, CosineAnnealingLR
from chainrule.tables import likely_target, preview
from chainrule.train import EarlyStopping, Trainer, evaluate, predict

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
FROM_RECIPE = "(default: from the data set's recipe, listed below)"


def recipe_of(name: str) -> dict[str, Any]:
    """The full recipe of data set ``name``: its own settings over :data:`DEFAULT_RECIPE`."""
    return {**DEFAULT_RECIPE, **RECIPES.get(name, {})}


def describe_recipe(recipe: dict[str, Any]) -> str:
    """``layers 256,256, activation relu, ...``: every setting of a recipe, in one line."""
    shown = {**recipe, "layers": ",".join(map(str, recipe["layers"])) or "none"}
    return ", ".join(
        f"{key} {value:g}" if isinstance(value, float) else f"{key} {value}" for key, value in shown.items()
    )


def _epilog() -> str:
    lines = ["recipes (each option above overrides its setting):"]
    recipes = [(name, recipe_of(name)) for name in RECIPES] + [("any other", DEFAULT_RECIPE)]
    for name, recipe in recipes:
        lines += textwrap.wrap(
            describe_recipe(recipe), 100, initial_indent=f"  {name + ':':<12}", subsequent_indent=" " * 14
        )
    lines += [
        "",
        "regression targets are standardized (mean and std of the training split) for training and",
        "scaled back for the metrics (MAE, RMSE, R2) and for `chainrule predict`.",
    ]
    return "\n".join(lines)


def add_arguments(train: argparse.ArgumentParser) -> None:
    """The options of ``chainrule train``; every default is stated in ``--help``."""
    train.formatter_class = argparse.RawDescriptionHelpFormatter
    train.description = (
        "Train an MLP on a data set and write model.safetensors, metrics.json and history.png.\n"
        "Before training it prints the data, the target and the task (with the reason when inferred),\n"
        "the classes, and the recipe with the options that changed it."
    )
    train.epilog = _epilog()
    names = ", ".join(datasets.DATASETS)
    train.add_argument(
        "--data",
        default="digits",
        metavar="NAME_OR_PATH",
        help=f"a data set ({names}) or a .csv/.tsv/.npz/.npy file or folder (default: digits)",
    )
    train.add_argument(
        "--target",
        metavar="NAME|INDEX",
        help="target column of a table file, by header name or 1-based column number, negative from the "
        "end (default: the last column)",
    )
    train.add_argument(
        "--task",
        choices=["auto", "classification", "regression"],
        default="auto",
        help="what the target is (default: auto: inferred from the target column; the reason is printed)",
    )
    train.add_argument(
        "--layers", type=int_list, help=f"hidden layer sizes, e.g. 128,64, or none {FROM_RECIPE}"
    )
    train.add_argument("--activation", help=f"hidden activation: {', '.join(ACTIVATIONS)} {FROM_RECIPE}")
    train.add_argument(
        "--loss", help=f"{', '.join(LOSSES)} (default: cross_entropy for classes, mse for regression)"
    )
    train.add_argument("--optimizer", help=f"{', '.join(OPTIMIZERS)} {FROM_RECIPE}")
    train.add_argument("--lr", type=float, help=f"learning rate alpha {FROM_RECIPE}")
    train.add_argument("--epochs", type=positive_int, help=f"passes over the training data {FROM_RECIPE}")
    train.add_argument("--batch-size", type=positive_int, help=f"examples per step {FROM_RECIPE}")
    train.add_argument(
        "--dropout", type=float, help=f"dropout after each hidden layer, 0: none {FROM_RECIPE}"
    )
    train.add_argument("--weight-decay", type=float, help=f"L2 (AdamW: decoupled) weight decay {FROM_RECIPE}")
    train.add_argument(
        "--schedule", choices=["none", "cosine"], help=f"learning-rate schedule over the epochs {FROM_RECIPE}"
    )
    train.add_argument(
        "--validation-split",
        type=float,
        default=0.1,
        help="fraction of the training split held out to validate each epoch (default: 0.1)",
    )
    train.add_argument(
        "--patience",
        type=int,
        default=0,
        help="stop when val_loss has not improved for this many epochs, keeping the best weights "
        "(default: 0: off)",
    )
    train.add_argument(
        "--seed", type=int, default=0, help="seeds the weights, dropout and shuffling (default: 0)"
    )
    add_device(train)
    train.add_argument(
        "--threads",
        type=positive_int,
        help="BLAS threads per training step (default: chosen per epoch from the model's matrix "
        "products and how busy the machine is; one for small models)",
    )
    train.add_argument("--out", default="runs/latest", help="output folder (default: runs/latest)")
    train.add_argument(
        "--quiet", action="store_true", help="no progress bar or per-epoch lines (default: off)"
    )
    train.add_argument(
        "--init-from",
        metavar="MODEL",
        help="fine-tune: start from this model's layers and weights (.safetensors or .onnx) instead of "
        "a new MLP, so --layers, --activation and --dropout are unused (default: a new MLP)",
    )
    mpi.add_arguments(train)
    train.add_argument(
        "--allow-divergence",
        action="store_true",
        help="warn instead of stopping when the loss grows over 1000x its start; a NaN loss still stops "
        "(default: off)",
    )
    train.add_argument(
        "--diagnose",
        action="store_true",
        help="after each epoch, per-layer gradient norms, update ratios, dead and saturated units, with "
        "warnings (docs/diagnostics.md) (default: off)",
    )


def _load(args: argparse.Namespace) -> Any:
    """The data set of ``--data``, with ``--target`` and ``--task`` for table files."""
    options: dict[str, Any] = {}
    if args.target is not None or args.task != "auto":
        if args.data in datasets.DATASETS:
            raise ConfigError(
                f"--target and --task apply to table files (.csv, .tsv, .npy); the built-in data set "
                f"{args.data!r} has its own target and task."
            )
        if args.task != "auto":
            options["task"] = args.task
        if args.target is not None:
            options["target"] = target_option(args.target)
    if args.distributed and str(args.data).endswith(".npy"):  # each rank checks the rows it reads
        options["check_finite"] = False
    return load_data(args.data, **options)


def _describe_data(data: Any, args: argparse.Namespace) -> list[str]:
    m_train, m_test = len(data.x_train), len(data.x_test)
    n = data.n_features
    lines = [f"data: {data.name}: {m_train} training and {m_test} test examples, {n} feature{'s' * (n != 1)}"]
    if data.feature_names:
        lines[0] += f" ({preview(data.feature_names)})"
    if data.name in datasets.DATASETS:  # a built-in: say what it is (the loader's first docstring line)
        lines.append(
            f"about {data.name}: {(datasets.DATASETS[data.name].__doc__ or '').strip().splitlines()[0]}"
        )
    if data.target_name is not None:
        how = (
            f"--target {args.target}"
            if args.target is not None
            else "the last column; --target NAME|INDEX picks another"
        )
        shown = data.target_name if data.target_name.startswith("column ") else repr(data.target_name)
        lines.append(f"target: {shown} ({how})")
        hint = likely_target(data.feature_names)
        if args.target is None and hint is not None:
            lines.append(f"note: a column is named {hint!r}; if it is the target, pass --target {hint}")
    if data.task_reason is not None:
        lines.append(f"task: {data.task}, inferred: {data.task_reason} (--task decides otherwise)")
    elif args.task != "auto":
        lines.append(f"task: {data.task} (--task {args.task})")
    else:
        lines.append(f"task: {data.task}")
    if data.classes is not None:
        lines.append(
            f"classes: {len(data.classes)} ({preview(data.classes)}), "
            f"numbered 0 .. {len(data.classes) - 1} in this order"
        )
    elif data.n_classes is not None:
        lines.append(f"classes: {data.n_classes} (labels 0 .. {data.n_classes - 1})")
    return lines


def _recipe(data: Any, args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    """The recipe of the run and the line that says where each setting came from."""
    recipe = recipe_of(data.name)
    changed = {k: v for k, v in vars(args).items() if k in DEFAULT_RECIPE and v is not None}
    recipe.update(changed)
    whose = f"the {data.name} recipe" if data.name in RECIPES else "the default recipe"
    note = f"; set by options: {', '.join(sorted(changed))}" if changed else ""
    return recipe, f"recipe ({whose}{note}): {describe_recipe(recipe)}"


def run(args: argparse.Namespace) -> int:
    """Train on ``--data`` and write model.safetensors, metrics.json and history.png to ``--out``."""
    if args.distributed:  # on every rank mpiexec started; an error on any ends the job (cli.mpi)
        return mpi.run(args, _train)
    return _train(args, None)


def _train(args: argparse.Namespace, comm: Any) -> int:
    """The run of :func:`run`; ``comm``: the ranks of a ``--distributed`` run, or None."""
    use_device(args.device)
    out = RunDir(args.out)
    if comm is None or comm.rank == 0:  # only rank 0 writes
        out.prepare()  # a bad --out fails now, not after training
    memory.keep_freed_memory()  # the application's choice, made here: steps reuse freed memory
    data = _load(args)
    recipe, recipe_line = _recipe(data, args)
    regression = data.task == "regression"
    scaling = fit_target_scaling(data.y_train) if regression else None
    y_train = scale_target(data.y_train, scaling) if scaling else data.y_train
    n_out = y_train.shape[1] if regression and y_train.ndim == 2 else (data.n_classes or 1)
    loss = args.loss or ("mse" if regression else "cross_entropy")
    if regression and "cross_entropy" in get_loss(loss).name:
        raise ConfigError(
            f"--loss {loss} needs class labels, but the task is regression; pass --task classification, "
            "or a regression loss (mse, sse, half_sse)."
        )
    # a loss on logits (softmax_cross_entropy, ...) gets the logits: no output activation
    output = "identity" if regression or get_loss(loss).from_logits else "softmax"
    sizes = [data.x_train.shape[1], *recipe["layers"], n_out]
    if args.init_from:
        model, loss = saved.start_from(args.init_from, data, args.loss)
    else:
        model = mlp(sizes, recipe["activation"], output, dropout=recipe.get("dropout", 0.0), seed=args.seed)
    model.feature_names, model.classes = data.feature_names, data.classes
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
        threads=args.threads,
        diagnostics=args.diagnose,
        allow_divergence=args.allow_divergence,
        distributed=comm,
    )
    for line in [*_describe_data(data, args), recipe_line]:
        say(line, args.quiet)
    if scaling:
        say(
            f"target scaling: (y - mean) / std with the training split's mean {_nums(scaling['mean'])} and "
            f"std {_nums(scaling['std'])}; predictions and metrics are scaled back",
            args.quiet,
        )
    say(f"model: {model!r}\n{trainer!r}", args.quiet)
    if comm is not None:
        say(_ranks(comm, recipe["batch_size"], trainer.threads), args.quiet)
    if args.patience and not args.validation_split:
        raise ConfigError("--patience needs a validation split to watch (--validation-split > 0).")
    stopper = EarlyStopping(patience=args.patience) if args.patience else None
    started = time.perf_counter()
    history = trainer.fit(
        data.x_train,
        y_train,
        recipe["epochs"],
        validation_split=args.validation_split,
        callbacks=[stopper] if stopper else [],
        verbose=0 if args.quiet else 1,
    )
    seconds = time.perf_counter() - started
    test = _test_scores(model, data, loss, scaling, comm)
    if comm is not None and comm.rank != 0:
        return 0  # rank 0 writes and reports
    meta = {
        "loss": loss,
        "data": args.data,
        "n_classes": data.n_classes,
        "task": data.task,
        "target": data.target_name,
        "target_column": args.target,
        "target_scaling": scaling,
    }
    metrics: dict[str, Any] = {f"test_{k}": v for k, v in test.items()}
    metrics.update(
        recipe=recipe, loss_name=loss, seconds=seconds, epochs_run=len(history), history=history.epochs
    )
    out.commit(model, meta, metrics, history)  # model, metrics.json, history.png: one unit
    stopped = _stopped(stopper, len(history), recipe["epochs"]) if stopper else None
    _report(history, test, seconds, out.folder, args.quiet, regression, stopped)
    return 0


def _nums(values: list[float]) -> str:
    return ", ".join(f"{v:.6g}" for v in values)


def _test_scores(
    model: Any, data: Any, loss: str, scaling: dict[str, list[float]] | None, comm: Any = None
) -> dict[str, float]:
    """Test loss (on the scale trained on) and accuracy, or MAE, RMSE and R2 in the target's units.

    With ``comm`` each rank evaluates its block of the test rows and the scores are reduced.
    """
    y_test = scale_target(data.y_test, scaling) if scaling else data.y_test
    if comm is not None:
        test = comm.evaluate(model, data.x_test, y_test, loss)
        if scaling:
            out = unscale_target(comm.predict(model, data.x_test), scaling)
            test.update(regression_scores(out, data.y_test))
        return test
    x_test = backend.asarray(data.x_test.astype(model.parameters()[0].dtype))
    test = evaluate(model, x_test, backend.asarray(y_test), loss)
    if scaling:
        test.update(regression_scores(unscale_target(predict(model, x_test), scaling), data.y_test))
    return test


def _ranks(comm: Any, batch_size: int, threads: int | None) -> str:
    """``distributed: 4 ranks (...), global batch 32 (8 rows per rank), 1 BLAS thread per rank; ...``."""
    low, high = batch_size // comm.size, -(-batch_size // comm.size)
    per = f"{low}" if low == high else f"{low}-{high}"
    return (
        f"distributed: {comm.size} ranks (rank 0 reports), global batch {batch_size} ({per} rows per rank), "
        f"{threads} BLAS thread{'s' * (threads != 1)} per rank; the numbers of one process"
    )


def _stopped(stopper: EarlyStopping, ran: int, epochs: int) -> str:
    """What early stopping did: whether it stopped, when, and which weights the model has."""
    best = f"{stopper.monitor} {stopper.best:.4f}"
    if ran < epochs:
        return (
            f"early stopping: {stopper.monitor} did not improve for {stopper.patience} epochs; stopped "
            f"after epoch {ran} of {epochs} and restored the weights of epoch {stopper.best_epoch}, "
            f"the best ({best})"
        )
    return (
        f"early stopping: did not stop; the model keeps the weights of the last epoch, {ran} "
        f"(the best was epoch {stopper.best_epoch}, {best})"
    )


def _report(
    history: Any,
    test: dict[str, float],
    seconds: float,
    out: Path,
    quiet: bool,
    regression: bool,
    stopped: str | None,
) -> None:
    scale = " (standardized targets)" if regression else ""
    say(
        f"per epoch: loss = mean loss of the epoch's training batches{scale}, while training (dropout "
        "on, weights still moving); the other columns are evaluated after the epoch (dropout off)",
        quiet,
    )
    for i, logs in enumerate(history.epochs, 1):
        say(f"epoch {i:3d}  " + "  ".join(f"{k} {v:.4f}" for k, v in logs.items() if k != "lr"), quiet)
    if stopped:
        say(stopped, quiet)
    order = ["mae", "rmse", "r2", "loss"] if regression else ["loss", "accuracy"]
    fmt = ".4g" if regression else ".4f"
    scores = "  ".join(f"test_{k} {test[k]:{fmt}}" for k in order if k in test)
    units = " (MAE, RMSE in the target's units; loss on standardized targets)" if regression else ""
    print(f"{scores}{units}  ({seconds:.1f} s)  saved to {out}/", flush=True)
