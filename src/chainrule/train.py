"""Training: the step, the epoch, ``fit``, evaluation, early stopping, the history plot (level 6).

One step of mini-batch gradient descent on a batch of ``m`` examples:

    forward:   a[0] = X,  z[l] = a[l-1] W[l]^T + b[l],  a[l] = phi[l](z[l])
    loss:      C = 1/m sum_i C_i          (the loss's convention)
    backward:  every dC/dW[l], dC/db[l] by reverse-mode autodiff
    update:    W[l] := W[l] - alpha dC/dW[l]   (or the chosen optimizer)

A model ending in softmax trained with ``cross_entropy`` (or sigmoid with
``binary_cross_entropy``) is fused: the loss is taken on the logits ``z[L]``
and ``delta[L] = a[L] - y``.
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
import math
import numbers
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from chainrule import backend
from chainrule.autograd import no_grad
from chainrule.backend import threads as blas
from chainrule.data import check_shapes, train_val_split
from chainrule.diagnostics import Diagnostics, layers_in, plot_panel
from chainrule.divergence import DivergenceGuard
from chainrule.errors import ConfigError, DataError, GradientError
from chainrule.jit import Compiler, LearningRate
from chainrule.layers import Sequential
from chainrule.losses import Loss, fused, get_loss, sample_weights
from chainrule.metrics import accuracy, regression_scores
from chainrule.optim import SGD, Optimizer, Schedule, clip_grad_norm, get_optimizer
from chainrule.tables import model_inputs
from chainrule.tensor import Tensor


class Distributed(Protocol):
    """What ``Trainer(distributed=...)`` calls: :class:`chainrule.distributed.Communicator` on MPI.

    ``attach`` joins the trainer (weights from rank 0); ``inputs`` checks and splits the
    data reading this rank's rows only; ``part`` is this rank's part of a global batch
    (None: the batch's weights are all 0, no step); ``step`` runs the step on it;
    ``reduce_gradients`` averages over the global batch (and sets ``batch_loss``);
    ``sum``, ``any`` and ``evaluate`` reduce over ranks.
    """

    rank: int
    batch_loss: float  # the loss of the last global batch, known after reduce_gradients

    def attach(self, trainer: Trainer) -> None: ...
    def inputs(
        self, trainer: Trainer, x: Any, y: Any, val: Any, split: float, weight: Any
    ) -> tuple[Any, Any, Any, Any]: ...
    def part(self, rows: Any, w: Any) -> Any: ...
    def step(self, compiler: Compiler, batch: dict[str, Any], model: Sequential) -> float: ...
    def reduce_gradients(self, params: list[Tensor], reduction: str) -> None: ...
    def sum(self, *values: float) -> tuple[float, ...]: ...
    def any(self, flag: bool) -> bool: ...
    def evaluate(self, model: Sequential, x: Any, y: Any, loss: Any, batch_size: int) -> dict[str, float]: ...


class Callback(Protocol):
    """Called after every epoch with the trainer and that epoch's metrics; return True to stop."""

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> bool | None: ...


@dataclass
class History:
    """Per-epoch metrics: ``history.epochs[e]`` has ``loss``, ``accuracy``, ``val_loss``, ..."""

    epochs: list[dict[str, float]] = field(default_factory=list)

    def __getitem__(self, key: str) -> list[float]:
        return [e[key] for e in self.epochs if key in e]

    def __len__(self) -> int:
        return len(self.epochs)


def check_data(x: Any, y: Any, who: str = "fit") -> tuple[np.ndarray, np.ndarray]:
    """Validate a dataset: 2-D inputs, matching lengths, finite values, non-empty.

    Raises
    ------
    DataError, ShapeError
        Naming ``who`` and what is wrong.
    """
    x, y = np.asarray(backend.to_numpy(x)), np.asarray(backend.to_numpy(y))
    check_shapes(x, y, who)
    for name, arr in (("inputs", x), ("targets", y)):
        if arr.dtype.kind == "f" and not _all_finite(arr):
            bad = np.argwhere(~np.isfinite(arr))[0]
            where = tuple(int(i) for i in bad)  # plain ints: NumPy 2 would print np.int64(3)
            raise DataError(f"{who}: {name} contain NaN or infinite values (first at index {where}).")
    return x, y


def _all_finite(a: np.ndarray, rows: int = 4096) -> bool:
    """``isfinite(a).all()`` in blocks of rows, so no mask the size of the data is built."""
    return all(bool(np.isfinite(a[i : i + rows]).all()) for i in range(0, a.shape[0], rows))


def _finite(a: Any) -> bool:
    return bool(backend.xp_of(a).isfinite(a).all())


def _is_classification(y: np.ndarray, loss: Loss) -> bool:
    return y.dtype.kind in "iu" or "cross_entropy" in loss.name


class Trainer:
    """Holds the model, loss, optimizer and the training state (epoch, RNG, history).

    Parameters
    ----------
    model : Sequential
    loss : str or Loss
        Fused automatically with the model's output activation where possible.
    optimizer : Optimizer or str
        An optimizer, or a name (``sgd``, ``adam``, ...) built with ``lr``.
    lr : float
        Learning rate ``alpha`` when ``optimizer`` is a name.
    batch_size : int
        ``m``, examples per step.
    seed : int
        Seeds the shuffling generator.
    clip_norm : float, optional
        Clip the joint gradient norm to this value each step.
    schedule : callable, optional
        ``schedule(optimizer) -> Schedule``, stepped once per epoch.
    compiled : bool
        Compile the step (:mod:`chainrule.jit`): after two recorded eager steps for
        batches of a shape, replay the recording instead of rebuilding the graph on
        every step. The loss, every gradient and so every weight are bit for bit the
        eager step's; a step that cannot be compiled runs eagerly and says why once
        (a :class:`~chainrule.errors.CompileWarning`). False: always eager.
    threads : int, optional
        BLAS threads per step; None (the default) chooses per epoch from the size of the
        step's matrix products and how busy the machine is (:mod:`chainrule.backend.threads`).
    fused_update : bool
        Opt-in, for plain SGD only (no momentum, weight decay or ``clip_norm``): the
        compiled step takes the update inside the backward pass, ``W -= alpha delta^T
        A_prev`` in the GEMM that would have formed ``dC/dW``
        (:func:`chainrule.jit.passes.fuse_sgd`). The weights equal the separate
        update's up to rounding in the last bits; those parameters' ``grad`` stays None.
    distributed : chainrule.distributed.Communicator, optional
        Data-parallel training over MPI ranks: each rank steps on its rows of every
        global batch of ``batch_size`` rows and the gradients are averaged over the
        global batch, so N ranks give the weights of one process (``docs/distributed.md``).
    diagnostics : bool or Diagnostics
        After each epoch, record per layer the gradient and weight norms, the update
        ratio, dead ReLUs and saturated units on a fixed probe batch, and warn about
        what they show (:mod:`chainrule.diagnostics`). Off by default.
    allow_divergence : bool
        A batch loss over 1000 times the run's first is an error naming the step
        (:mod:`chainrule.divergence`); True makes it one warning instead.

    Attributes
    ----------
    compiler : chainrule.jit.Compiler
        The step's compiler: ``compiler.entries`` holds, per kind of batch, the
        compiled step or why it runs eagerly.
    blas_threads : int
        BLAS threads the last epoch used.

    Raises
    ------
    ConfigError
        A bad batch size, a loss on logits after an output activation, or
        ``fused_update`` with an optimizer other than plain SGD, or under ``distributed``.
    """

    def __init__(
        self,
        model: Sequential,
        loss: str | Loss = "softmax_cross_entropy",
        optimizer: Optimizer | str = "sgd",
        lr: float = 0.01,
        batch_size: int = 32,
        seed: int = 0,
        clip_norm: float | None = None,
        schedule: Callable[[Optimizer], Schedule] | None = None,
        optimizer_options: dict[str, Any] | None = None,
        compiled: bool = True,
        fused_update: bool = False,
        threads: int | None = None,
        diagnostics: bool | Diagnostics = False,
        distributed: Distributed | None = None,
        allow_divergence: bool = False,
    ) -> None:
        _check_settings(batch_size, clip_norm, seed)
        self.model = model
        self.loss = get_loss(loss)
        self.step_loss = fused(self.loss, model.output_activation) or self.loss
        self.logits = self.step_loss is not self.loss
        if self.loss.from_logits and model.output_activation != "identity":
            raise ConfigError(
                f"Trainer: loss {self.loss.name!r} takes logits, but the model ends in "
                f"{model.output_activation!r} (it would be applied twice); end the model with an "
                "identity output, or use 'cross_entropy' / 'binary_cross_entropy', fused automatically."
            )
        if isinstance(optimizer, str):
            optimizer = get_optimizer(optimizer, model.parameters(), lr=lr, **(optimizer_options or {}))
        self.schedule = schedule(optimizer) if schedule else None
        self.batch_size = int(batch_size)
        self.clip_norm = clip_norm
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.epoch = 0
        self.history = History()
        self.stop = False
        self.compiled = compiled
        self.fused_update = fused_update
        self.diagnostics = Diagnostics() if diagnostics is True else diagnostics or None
        self.threads = blas.check_threads(threads)
        self.blas_threads = 1  # what the last epoch used
        self._cpu = blas.CpuMeter()
        self.divergence = DivergenceGuard(allow=allow_divergence)
        self._lr = LearningRate(optimizer.lr)
        self.optimizer = optimizer
        self.distributed: Distributed | None = None
        if distributed is not None:
            distributed.attach(self)  # refuses fused_update, sets the threads, broadcasts the weights

    @property
    def optimizer(self) -> Optimizer:
        """The optimizer; setting another one compiles the step afresh for it."""
        return self._optimizer

    @optimizer.setter
    def optimizer(self, optimizer: Optimizer) -> None:
        if self.fused_update and not _plain_sgd(optimizer, self.clip_norm):
            raise ConfigError(
                f"Trainer: fused_update takes plain SGD (no momentum, weight decay or clip_norm), "
                f"got {optimizer!r} with clip_norm={self.clip_norm}; pass fused_update=False."
            )
        self._optimizer = optimizer
        self.compiler = Compiler(
            self._loss_of,
            self.model.parameters,
            fuse=optimizer.params if self.fused_update else (),
            lr=self._lr,
            enabled=self.compiled,
        )

    def __repr__(self) -> str:
        return (
            f"Trainer(loss={self.loss!r}, optimizer={self.optimizer!r}, batch_size={self.batch_size}, "
            f"fused={self.logits})"
        )

    # ----------------------------------------------------------------- step
    def train_step(self, xb: Any, yb: Any, step: int = 0, wb: Any = None) -> float:
        """One forward, one backward, one update on a batch; returns the batch loss.

        The step is compiled (see ``compiled``): its numbers are the eager step's. A step
        with per-example weights ``wb`` (shape ``(m,)``: the loss's ``1/m`` becomes
        ``1/sum(wb)``, see :meth:`chainrule.losses.Loss.weighted`) compiles too.
        """
        self.optimizer.zero_grad()  # a frozen parameter must not keep a stale gradient
        self._lr.value = self.optimizer.lr
        batch = {"x": xb, "y": yb} if wb is None else {"x": xb, "y": yb, "w": wb}
        if self.distributed is None:
            value = float(self.compiler(batch, self.model.training))
        else:  # this rank's rows of the global batch, with their dropout masks
            value = self.distributed.step(self.compiler, batch, self.model)
        if not math.isfinite(value):
            if self.fused_update:  # a fused step kept no gradient: find the culprit eagerly
                self.optimizer.zero_grad()
                self.compiler.eager(batch)
            raise GradientError(self._non_finite_message(value, step))
        if self.distributed is not None:  # dC/dW of the global batch: the notes' 1/m is the global m
            self.distributed.reduce_gradients(self.optimizer.params, self.step_loss.reduction)
        if self.clip_norm is not None:
            clip_grad_norm(self.optimizer.params, self.clip_norm)
        self.optimizer.step()
        return value

    def _loss_of(self, x: Tensor, y: Any, w: Any = None) -> Tensor:
        out = self.model(x, logits=self.logits)
        return self.step_loss(out, y) if w is None else self.step_loss(out, y, w)

    def _non_finite_message(self, value: float, step: int) -> str:
        """Name the first layer whose gradient (or, if that is the cause, weight) is non-finite."""
        culprit = "no gradient was non-finite (check the inputs)"
        params = self.model.named_parameters()
        bad_weights = [(n, p.data) for n, p in params if not _finite(p.data)]
        bad_grads = [(n, p.grad) for n, p in params if p.grad is not None and not _finite(p.grad)]
        if bad_grads:
            culprit = "first non-finite gradient: " + self._where(bad_grads[0][0], "dC/d")
        if bad_weights:  # a weight that is already inf/NaN poisons every gradient: name it
            culprit += "; first non-finite weight: " + self._where(bad_weights[0][0], "")
        return (
            f"training stopped: the loss became {value} at epoch {self.epoch + 1}, step {step + 1}; "
            f"{culprit}. Try a smaller learning rate or gradient clipping (clip_norm)."
        )

    def _where(self, name: str, prefix: str) -> str:
        i, pname = name.split(".")[1:3]
        return f"layers[{i}] {self.model[int(i)]!r}, {prefix}{pname}"

    def batches(self, x: Any, y: Any, shuffle: bool = True, w: Any = None) -> Iterator[tuple[Any, ...]]:
        """Mini-batches ``(xb, yb)`` of ``batch_size`` rows, in a fresh seeded order each epoch.

        The order is drawn on the host (the same on every backend) and moved to
        the data's device once per epoch, so batches are cut where the data lives.
        With per-example weights ``w`` (shape ``(m,)``) they are ``(xb, yb, wb)``.
        Under ``distributed``, each is this rank's part of the global batch.
        """
        m = x.shape[0]
        order = backend.xp_of(x).asarray(self.rng.permutation(m)) if shuffle else None
        arrays = (x, y) if w is None else (x, y, w)
        for start in range(0, m, self.batch_size):
            end = min(start + self.batch_size, m)
            rows = slice(start, end) if order is None else order[start:end]
            if self.distributed is not None:  # this rank's part of the global batch, or skip it with all
                rows = self.distributed.part(rows, w)
                if rows is None:
                    continue
            yield tuple(a[rows] for a in arrays)

    def train_epoch(self, x: Any, y: Any, shuffle: bool = True, w: Any = None) -> float:
        """One pass over the data; returns the epoch's loss on the scale ``evaluate`` reports.

        With ``reduction="mean"`` that is the mean over examples (batch losses weighted
        by batch size, or by the batch's sum of weights ``w``); with ``reduction="sum"``
        the sum over all examples. A batch whose weights are all 0 takes no step.
        """
        self.model.train()
        self.compiler.verify()  # each compiled step records once more and checks it is unchanged
        mean = self.step_loss.reduction == "mean"
        total, seen = 0.0, 0.0
        largest = blas.largest_product(self.model, min(self.batch_size, x.shape[0]))
        self.blas_threads = blas.choose(largest, self._cpu, self.threads)
        self._cpu.begin()  # what other processes use while this epoch runs decides the next one's threads
        with blas.limit(self.blas_threads):
            for step, (xb, yb, *wb) in enumerate(self.batches(x, y, shuffle, w)):
                size = float(wb[0].sum()) if wb else xb.shape[0]
                if size == 0 and self.distributed is None:  # all weights 0: nothing to learn, no step
                    continue
                value = self.train_step(xb, yb, step, *wb)
                batch = value if self.distributed is None else self.distributed.batch_loss  # global batch's
                self.divergence.check(batch, self.epoch + 1, step + 1, self.optimizer.lr)
                total += value * (size if mean else 1)
                seen += size
        self._cpu.end()
        if self.distributed is not None:
            total, seen = self.distributed.sum(total, seen)
        return total / seen if mean else total

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        x: Any,
        y: Any,
        epochs: int = 10,
        validation_data: tuple[Any, Any] | None = None,
        validation_split: float = 0.0,
        shuffle: bool = True,
        callbacks: Sequence[Callback] = (),
        verbose: int = 1,
        sample_weight: Any = None,
        **misspelt: Any,
    ) -> History:
        """Train until ``epochs`` epochs have run in total (so a resumed trainer continues).

        Parameters
        ----------
        x : array, shape (m, n[0]), or a pandas/polars DataFrame (its column names are kept)
        y : array, shape (m,) integer labels or (m, n[L]) targets, or a Series (text labels encoded)
        validation_data : (x_val, y_val), optional
        validation_split : float
            Fraction of ``(x, y)`` held out for validation (a cut seeded by ``seed``, the same
            on every call, so a resumed run validates on the same examples; stratified for
            class labels).
        verbose : int
            0 silent; 1 a tqdm progress bar over epochs with the metrics.
        sample_weight : array, shape (m,), optional
            Non-negative weight of each example in the loss: the batch mean ``1/m sum_i C_i``
            becomes ``sum_i w_i C_i / sum_i w_i`` (weight 2 counts a row twice). Validation
            is unweighted.

        Raises
        ------
        ConfigError
            An unknown option (the nearest valid one is named).
        """
        valid = set(inspect.signature(Trainer.fit).parameters) - {"self", "x", "y", "misspelt"}
        _check_options("Trainer.fit", misspelt, valid)
        if self.distributed is None:
            x, y, w, val = self._inputs(x, y, validation_data, validation_split, sample_weight)
        else:  # each rank checks and reads only its own rows
            x, y, w, val = self.distributed.inputs(
                self, x, y, validation_data, validation_split, sample_weight
            )
        classify = _is_classification(y, self.loss)
        y_loss = self._targets(y)
        self.divergence.start(self.history.epochs)
        if self.diagnostics is not None:  # measures first, before other callbacks move any weight
            callbacks = [self.diagnostics.start(self, x, y_loss), *callbacks]
        bar = _progress(self.epoch, epochs, verbose if getattr(self.distributed, "rank", 0) == 0 else 0)
        for _ in range(self.epoch, epochs):
            started = time.perf_counter()
            logs = {"loss": self.train_epoch(x, y_loss, shuffle, w)}
            logs.update(self._epoch_metrics(x, y, val, classify))
            logs.update(lr=self.optimizer.lr, seconds=time.perf_counter() - started)
            self.epoch += 1
            self.history.epochs.append(logs)
            if self.schedule:
                self.schedule.step()
            if bar is not None:
                bar.update(1)
                bar.set_postfix({k: f"{v:.4f}" for k, v in logs.items() if k not in ("lr", "seconds")})
            stop = any([bool(cb.on_epoch_end(self, self.epoch, logs)) for cb in callbacks]) or self.stop
            if stop if self.distributed is None else self.distributed.any(stop):  # all ranks stop together
                break
        if bar is not None:
            bar.close()
        return self.history

    def _inputs(
        self,
        x: Any,
        y: Any,
        validation_data: tuple[Any, Any] | None,
        validation_split: float,
        sample_weight: Any,
    ) -> tuple[Any, Any, Any, Any]:
        """Checked training inputs, targets, weights (or None) and validation pair (or None), cast."""
        x, y = check_data(*model_inputs(self.model, x, y, "fit"))  # DataFrames, Series, text labels
        if validation_data is not None:
            validation_data = model_inputs(self.model, *validation_data, "fit validation_data")
        w = None if sample_weight is None else np.asarray(backend.to_numpy(sample_weight))
        if w is not None:
            w = sample_weights(w, (x.shape[0],), np.float64, who="fit sample_weight")
        if validation_data is None and validation_split:
            # NOTE: a generator of its own, not self.rng: a resumed or continued fit must cut the same split
            x, y, w, validation_data = _split(x, y, validation_split, self.seed, w)
        x, y = self._prepare(x, y)
        if w is not None:
            w = backend.asarray(w.astype(self.model.parameters()[0].dtype))
        val = (
            self._prepare(*check_data(*validation_data, who="fit validation_data"))
            if validation_data
            else None
        )
        return x, y, w, val

    def _prepare(self, x: np.ndarray, y: np.ndarray) -> tuple[Any, Any]:
        """Cast inputs to the model's dtype once and move both to the active backend."""
        dtype = self.model.parameters()[0].dtype
        if y.dtype.kind == "f":
            y = y.astype(dtype, copy=False)
        return backend.asarray(x.astype(dtype, copy=False)), backend.asarray(y)

    def _targets(self, y: Any) -> Any:
        """Targets in the form the loss takes, built once for the whole set (labels range-checked).

        Integer labels become one-hot rows here, not per batch, for every loss but the
        fused softmax cross-entropy, which takes the labels themselves.
        """
        k = self.model.dense_layers()[-1].out_features
        dtype = self.model.parameters()[0].dtype
        return self.step_loss.targets(Tensor(backend.xp_of(y).empty((y.shape[0], k), dtype=dtype)), y)

    def _epoch_metrics(self, x: Any, y: Any, val: Any, classify: bool) -> dict[str, float]:
        logs: dict[str, float] = {}
        score = evaluate if self.distributed is None else self.distributed.evaluate  # over ranks' shares
        with blas.limit(self.blas_threads):  # the epoch's choice of threads
            if classify:
                logs["accuracy"] = score(self.model, x, y, self.loss, self.batch_size)["accuracy"]
            if val is not None:
                scores = score(self.model, val[0], val[1], self.loss, self.batch_size)
                logs.update({f"val_{k}": v for k, v in scores.items()})
        return logs


def _plain_sgd(optimizer: Optimizer, clip_norm: float | None) -> bool:
    """True if the update is exactly ``W := W - alpha dC/dW`` (what a fused update takes)."""
    return (
        type(optimizer) is SGD and not optimizer.momentum and not optimizer.weight_decay and clip_norm is None
    )


def _check_settings(batch_size: Any, clip_norm: Any, seed: Any) -> None:
    """Refuse settings that would train silently wrong (``clip_norm=-1`` climbs uphill)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ConfigError(f"Trainer: batch_size must be an integer >= 1, got {batch_size!r}.")
    try:
        bad_clip = clip_norm is not None and (
            isinstance(clip_norm, bool)
            or not isinstance(clip_norm, numbers.Real)
            or not 0 < float(clip_norm) < math.inf
        )
    except OverflowError:  # an integer beyond any float
        bad_clip = True
    if bad_clip:
        raise ConfigError(
            f"Trainer: clip_norm must be a finite number > 0 (None: no clipping), got {clip_norm!r}."
        )
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0):
        raise ConfigError(f"Trainer: seed must be an integer >= 0 (or None), got {seed!r}.")


def _split(x: np.ndarray, y: np.ndarray, fraction: float, seed: int, w: Any = None) -> Any:
    """Hold out ``fraction`` of the rows: seeded, stratified for class labels (:mod:`chainrule.data`).

    The rows' indices are split (the cut depends on ``y`` and the seed only), so the
    weights ``w`` follow their rows.
    """
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"fit: validation_split must be in (0, 1), got {fraction}.")
    rows = np.arange(x.shape[0]).reshape(-1, 1)
    i_train, _, i_val, _ = train_val_split(rows, y, fraction, rng=seed)
    i_train, i_val = i_train[:, 0], i_val[:, 0]
    w_train = None if w is None else w[i_train]
    return x[i_train], y[i_train], w_train, (x[i_val], y[i_val])


def _progress(start: int, epochs: int, verbose: int) -> Any:
    if not verbose:
        return None
    from tqdm.auto import tqdm  # imported lazily: only for interactive runs

    return tqdm(total=epochs, initial=start, desc="epochs", unit="epoch", disable=None)


def fit(
    model: Sequential,
    x: Any,
    y: Any,
    loss: str | Loss = "softmax_cross_entropy",
    optimizer: str = "sgd",
    lr: float = 0.01,
    epochs: int = 10,
    batch_size: int = 32,
    seed: int = 0,
    **options: Any,
) -> History:
    """Train ``model`` on ``(x, y)``: a :class:`Trainer` plus :meth:`Trainer.fit` in one call.

    Examples
    --------
    >>> import numpy as np
    >>> from chainrule.layers import mlp
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(64, 2)).astype(np.float32); y = (x[:, 0] > 0).astype(np.int64)
    >>> h = fit(mlp([2, 8, 2], output="softmax"), x, y, "cross_entropy", "adam", 0.05, epochs=20, verbose=0)
    >>> h["accuracy"][-1] > 0.9
    True
    """
    trainer_keys = {
        "clip_norm",
        "schedule",
        "optimizer_options",
        "compiled",
        "fused_update",
        "diagnostics",
        "allow_divergence",
        "threads",
        "distributed",
    }
    fit_keys = set(inspect.signature(Trainer.fit).parameters) - {"self", "x", "y", "epochs", "misspelt"}
    own = set(inspect.signature(fit).parameters) - {"options"}  # a misspelt 'epoch' is near 'epochs'
    _check_options("fit", options, trainer_keys | fit_keys | own)
    trainer = Trainer(
        model,
        loss,
        optimizer,
        lr,
        batch_size,
        seed,
        **{k: v for k, v in options.items() if k in trainer_keys},
    )
    return trainer.fit(x, y, epochs, **{k: v for k, v in options.items() if k not in trainer_keys})


def _check_options(who: str, options: dict[str, Any], valid: set[str]) -> None:
    """A ConfigError naming the first option not in ``valid``, and the nearest valid one."""
    for key in options:
        if key not in valid:
            near = difflib.get_close_matches(key, sorted(valid), n=1)
            hint = f"; did you mean {near[0]!r}?" if near else f"; valid options: {sorted(valid)}."
            raise ConfigError(f"{who}: unknown option {key!r}{hint}")


def _inputs(model: Sequential, x: Any) -> Any:
    """``x`` (any array-like, on any device) as an array of the model's dtype on the active device."""
    dtype = model.parameters()[0].dtype
    return backend.asarray(np.asarray(backend.to_numpy(x)).astype(dtype, copy=False))


def _default_loss(model: Sequential) -> str:
    """The loss a model's output suggests: cross-entropy after softmax or sigmoid, else MSE."""
    return {"softmax": "cross_entropy", "sigmoid": "binary_cross_entropy"}.get(model.output_activation, "mse")


@contextlib.contextmanager
def _evaluating(model: Sequential, x: Any, who: str, batch_size: int) -> Iterator[None]:
    """Eval mode, no graph and the BLAS threads for the block; the model's mode is restored after it."""
    if x.shape[0] == 0:
        raise DataError(f"{who}: no examples (0 rows).")
    was_training = model.training
    model.eval()
    try:
        with no_grad(), blas.limit(blas.choose(blas.largest_product(model, min(batch_size, x.shape[0])))):
            yield
    finally:
        model.train(was_training)


def predict(model: Sequential, x: Any, batch_size: int = 1024) -> np.ndarray:
    """Outputs ``a[L]`` for inputs ``x`` of shape ``(m, n[0])``, in eval mode, as NumPy.

    ``x`` may be any array-like (a list, a NumPy or CuPy array of any dtype, a DataFrame):
    it is cast to the model's dtype and moved to the active device.
    """
    x, _ = model_inputs(model, x, None, "predict")
    x = _inputs(model, x)
    with _evaluating(model, x, "predict", batch_size):
        parts = [model(x[i : i + batch_size]).numpy() for i in range(0, x.shape[0], batch_size)]
    return np.concatenate(parts)


def evaluate(
    model: Sequential, x: Any, y: Any, loss: str | Loss | None = None, batch_size: int = 1024
) -> dict[str, float]:
    """Mean loss, and accuracy (classes) or MAE, RMSE and R^2 (regression) over ``(x, y)``, no gradients.

    ``x`` takes what :func:`predict` takes; ``y`` any array-like of labels or targets (DataFrames
    and Series too: :func:`chainrule.tables.model_inputs`). ``loss`` defaults to the one the
    output suggests (``cross_entropy`` after softmax, ``binary_cross_entropy`` after sigmoid,
    else ``mse``).
    """
    x, y = model_inputs(model, x, y, "evaluate")
    x = _inputs(model, x)
    y = np.asarray(backend.to_numpy(y))
    y = backend.asarray(y.astype(x.dtype, copy=False) if y.dtype.kind == "f" else y)
    loss = get_loss(_default_loss(model) if loss is None else loss)
    step_loss = fused(loss, model.output_activation)
    total, outputs = 0.0, []
    with _evaluating(model, x, "evaluate", batch_size):
        for i in range(0, x.shape[0], batch_size):
            xb, yb = x[i : i + batch_size], y[i : i + batch_size]
            out = model(xb, logits=step_loss is not None)
            total += float((step_loss or loss)(out, yb).data) * (
                xb.shape[0] if loss.reduction == "mean" else 1
            )
            outputs.append(backend.to_numpy(out.data))
    scores = {"loss": total / x.shape[0] if loss.reduction == "mean" else total}
    if _is_classification(backend.to_numpy(y), loss):
        out_all = np.concatenate(outputs)
        if (step_loss is not None or loss.from_logits) and out_all.shape[1] == 1:
            out_all = (out_all > 0).astype(np.float64)  # sigmoid logits: z > 0 <=> a > 0.5
        scores["accuracy"] = accuracy(out_all, backend.to_numpy(y))
    else:
        scores.update(regression_scores(np.concatenate(outputs), y))
    return scores


class EarlyStopping:
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    With ``restore_best_weights`` the model gets back the weights of its best epoch.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 5,
        min_delta: float = 0.0,
        restore_best_weights: bool = True,
    ) -> None:
        self.monitor, self.patience, self.min_delta = monitor, int(patience), float(min_delta)
        self.restore_best_weights = restore_best_weights
        self.mode = "max" if "accuracy" in monitor or "r2" in monitor else "min"
        self.best = -math.inf if self.mode == "max" else math.inf
        self.best_epoch = 0
        self.wait = 0
        self.best_weights: list[Any] | None = None

    def __repr__(self) -> str:
        return (
            f"EarlyStopping(monitor={self.monitor!r}, patience={self.patience}, min_delta={self.min_delta})"
        )

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> bool:
        if self.monitor not in logs:
            raise ConfigError(f"EarlyStopping: metric {self.monitor!r} not in this epoch's {sorted(logs)}.")
        value = logs[self.monitor]
        better = (
            value > self.best + self.min_delta if self.mode == "max" else value < self.best - self.min_delta
        )
        if better:
            self.best, self.best_epoch, self.wait = value, epoch, 0
            self.best_weights = [p.data.copy() for p in trainer.model.parameters()]
            return False
        self.wait += 1
        if self.wait < self.patience:
            return False
        if self.restore_best_weights and self.best_weights is not None:
            for p, w in zip(trainer.model.parameters(), self.best_weights, strict=True):
                p.data[...] = w
        return True


def plot_history(history: History, path: str) -> None:
    """Write a PNG of loss (and accuracy, if recorded) per epoch, train and validation.

    With diagnostics in the history, one more panel shows each layer's gradient norm.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in ("loss", "accuracy") if history[k]]
    panels = len(keys) + bool(layers_in(history))
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 3.5), squeeze=False)
    epochs = range(1, len(history) + 1)
    if panels > len(keys):
        plot_panel(axes[0][-1], history)
    for ax, key in zip(axes[0][: len(keys)], keys, strict=True):
        ax.plot(epochs, history[key], label=f"train {key}")
        if history[f"val_{key}"]:
            ax.plot(epochs, history[f"val_{key}"], label=f"validation {key}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


__all__ = [
    "Callback",
    "EarlyStopping",
    "History",
    "Trainer",
    "check_data",
    "evaluate",
    "fit",
    "plot_history",
    "predict",
]
