"""What each rank runs when ``tests/test_distributed.py`` starts ``mpiexec``, and the recipes both share.

``python tests/distributed_worker.py CASE FOLDER`` on every rank: the case trains
through :class:`chainrule.distributed.Communicator` on the data in ``FOLDER`` and
writes what it got there (weights as ``.npz`` without pickles, metrics as JSON);
the test compares that with one process running the same recipe. MPI is imported
only when the script runs, never when the tests import :func:`recipe` and
:func:`train_here`.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import chainrule as cr
from chainrule.serialize import Checkpoint

# optimizer, its options, learning rate, dtype: SGD with momentum and Adam, float64 and float32
CONFIGS: dict[str, tuple[str, dict[str, Any], float, Any]] = {
    "sgd64": ("sgd", {"momentum": 0.9}, 0.05, np.float64),
    "adam64": ("adam", {}, 0.01, np.float64),
    "sgd32": ("sgd", {"momentum": 0.9}, 0.05, np.float32),
    "adam32": ("adam", {}, 0.01, np.float32),
}
ROWS, FEATURES, CLASSES = 103, 6, 3  # 103 = 6 * 16 + 7: a last global batch of 7 rows
BATCH, EPOCHS = 16, 3


def make_data(folder: Path) -> None:
    """``x.npy`` (float64, opened memory-mapped by the ranks) and ``y.npy`` (labels) in ``folder``."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(ROWS, FEATURES))
    y = (x[:, 0] + x[:, 1] * x[:, 2] > 0).astype(np.int64) + (x[:, 3] > 1).astype(np.int64)
    np.save(folder / "x.npy", x)
    np.save(folder / "y.npy", y)


def load_data(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    return np.load(folder / "x.npy", mmap_mode="r"), np.load(folder / "y.npy")


def recipe(name: str, distributed: Any = None) -> cr.Trainer:
    """The model and trainer of config ``name`` (dropout 0.25 after each hidden layer)."""
    optimizer, options, lr, dtype = CONFIGS[name]
    model = cr.mlp([FEATURES, 16, 12, CLASSES], "tanh", "softmax", dropout=0.25, seed=3, dtype=dtype)
    return cr.Trainer(
        model,
        "cross_entropy",
        optimizer,
        lr,
        BATCH,
        seed=11,
        optimizer_options=options,
        distributed=distributed,
    )


def train_here(name: str, folder: Path) -> cr.Trainer:
    """One process: the reference."""
    x, y = load_data(folder)
    trainer = recipe(name)
    trainer.fit(x, y, EPOCHS, validation_split=0.2, verbose=0)
    return trainer


def train_early(folder: Path, distributed: Any = None) -> cr.Trainer:
    """SGD with momentum for up to 8 epochs under EarlyStopping (patience 1): all ranks stop together."""
    x, y = load_data(folder)
    trainer = recipe("sgd64", distributed)
    stopper = cr.EarlyStopping(monitor="val_accuracy", patience=1)
    trainer.fit(x, y, 8, validation_split=0.2, verbose=0, callbacks=[stopper])
    return trainer


def train_weighted(folder: Path, distributed: Any = None) -> cr.Trainer:
    """Adam with per-example weights, in file order: rows 16 .. 31 (a whole batch) weigh 0, so no rank
    steps on it; 70% of the others weigh 0 too, so a rank's part is often all 0 while the batch is not.
    """
    x, y = load_data(folder)
    rng = np.random.default_rng(8)
    w = (rng.random(ROWS) < 0.3) * rng.integers(1, 4, size=ROWS).astype(np.float64)
    w[16:32] = 0.0
    trainer = recipe("adam64", distributed)
    trainer.fit(x, y, EPOCHS, shuffle=False, sample_weight=w, verbose=0)
    return trainer


def weights(trainer: cr.Trainer) -> dict[str, np.ndarray]:
    return {name: np.array(p.data) for name, p in trainer.model.named_parameters()}


def _equal(comm: Any, folder: Path, out: Path) -> None:
    """Every config, 3 epochs; adam64 also writes a checkpoint after epoch 2 and goes on to 3."""
    x, y = load_data(folder)
    for name in CONFIGS:
        trainer = recipe(name, comm)
        if name == "adam64":
            trainer.fit(x, y, 2, validation_split=0.2, verbose=0, callbacks=[Checkpoint(out / "adam64.ckpt")])
        trainer.fit(x, y, EPOCHS, validation_split=0.2, verbose=0)
        _write(comm, out, name, trainer)
    _write(comm, out, "early", train_early(folder, comm))
    _write(comm, out, "weighted", train_weighted(folder, comm))


def _resume(comm: Any, folder: Path, out: Path) -> None:
    """Resume the one-process checkpoint ``resume.ckpt`` (epoch 2 of adam64) to epoch 3."""
    from chainrule.distributed import load_checkpoint

    x, y = load_data(folder)
    trainer = load_checkpoint(folder / "resume.ckpt", comm)
    trainer.fit(x, y, EPOCHS, validation_split=0.2, verbose=0)
    _write(comm, out, "resumed", trainer)


def regression(folder: Path) -> tuple[Any, np.ndarray, np.ndarray]:
    """A model with 2 outputs and its targets: what the scores over ranks are checked on."""
    x, _ = load_data(folder)
    targets = np.stack([np.asarray(x[:, 0]) * 2, np.asarray(x[:, 1]) ** 2], axis=1)
    return cr.mlp([FEATURES, 8, 2], "tanh", seed=4, dtype=np.float64), x, targets


def _scores(comm: Any, folder: Path, out: Path) -> None:
    """evaluate and predict over ranks: a regression (MAE, RMSE, R^2 of gathered outputs) and classes."""
    model, x, targets = regression(folder)
    scores = {"regression": comm.evaluate(model, x, targets, "mse")}
    scores["classes"] = comm.evaluate(recipe("adam64").model, x, load_data(folder)[1])
    np.save(out / f"predict.rank{comm.rank}.npy", comm.predict(model, x))
    (out / f"scores.rank{comm.rank}.json").write_text(json.dumps(scores))


def _write(comm: Any, out: Path, name: str, trainer: cr.Trainer) -> None:
    np.savez(out / f"{name}.rank{comm.rank}.npz", **weights(trainer))
    compiled = sum(e.step is not None for e in trainer.compiler.entries.values())
    info = {"history": trainer.history.epochs, "compiled": compiled, "threads": trainer.blas_threads}
    (out / f"{name}.rank{comm.rank}.json").write_text(json.dumps(info))


def _non_finite(comm: Any, folder: Path, out: Path) -> None:
    """Rank 1 reads a shard whose values overflow float32 (ReLU keeps the infinities): its loss is NaN."""
    x, y = load_data(folder)
    x = np.array(x, dtype=np.float32)
    if comm.rank == 1:
        x[:] = 3e38
    model = cr.mlp([FEATURES, 16, CLASSES], "relu", "softmax", seed=3)
    cr.Trainer(model, "cross_entropy", "sgd", 0.1, BATCH, distributed=comm).fit(x, y, EPOCHS, verbose=0)


def _bad_shard(comm: Any, folder: Path, out: Path) -> None:
    """A NaN in row 70 of the memory-mapped inputs: in rank 1's block of rows (52 .. 102)."""
    x = np.load(folder / "x_nan.npy", mmap_mode="r")
    recipe("sgd64", comm).fit(x, load_data(folder)[1], EPOCHS, verbose=0)


class _AtEpoch:
    def __init__(self, epoch: int, rank: int, action: Any) -> None:
        self.epoch, self.rank, self.action = epoch, rank, action

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict[str, float]) -> bool:
        if epoch == self.epoch and trainer.distributed.rank == self.rank:
            self.action()
        return False


def _killed(comm: Any, folder: Path, out: Path) -> None:
    """Checkpoints each epoch; rank 1 is killed (SIGKILL) at the end of epoch 2."""
    x, y = load_data(folder)
    kill = _AtEpoch(2, 1, lambda: os.kill(os.getpid(), signal.SIGKILL))
    callbacks = [Checkpoint(out / "run.ckpt"), kill]
    recipe("adam64", comm).fit(x, y, 5, validation_split=0.2, verbose=0, callbacks=callbacks)


def _hangs(comm: Any, folder: Path, out: Path) -> None:
    """Rank 1 stops answering after epoch 1 (it sleeps); the others give up after the 2 s timeout."""
    x, y = load_data(folder)
    sleep = _AtEpoch(1, 1, lambda: time.sleep(120))
    recipe("sgd64", comm).fit(x, y, 5, verbose=0, callbacks=[sleep])


CASES = {
    "equal": _equal,
    "resume": _resume,
    "scores": _scores,
    "non_finite": _non_finite,
    "bad_shard": _bad_shard,
    "killed": _killed,
    "hangs": _hangs,
}


def main(cases: str, folder: str, out: str) -> None:
    """Run the comma-separated ``cases`` in order, in one job."""
    from chainrule.distributed import Communicator

    comm = Communicator(timeout=2.0 if cases == "hangs" else 60.0)
    for case in cases.split(","):
        CASES[case](comm, Path(folder), Path(out))


if __name__ == "__main__":
    main(*sys.argv[1:4])
