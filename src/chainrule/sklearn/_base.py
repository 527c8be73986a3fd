"""What MLPClassifier and MLPRegressor share: parameters, sklearn's training loop on chainrule, saving.

Part of :mod:`chainrule.sklearn` (level 8).

The loop is sklearn's ``BaseMultilayerPerceptron._fit_stochastic``, step for
step: the same random stream (initial weights, early-stopping split, then one
shuffle per epoch), the same batches, the same stopping rule on the training
loss or the validation score, the same learning-rate schedules for SGD. Each
step is chainrule's :meth:`~chainrule.train.Trainer.train_step`.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state, gen_batches, shuffle
from sklearn.utils.validation import check_is_fitted, validate_data

from chainrule import backend, serialize
from chainrule.autograd import no_grad
from chainrule.backend import threads as blas
from chainrule.errors import ConfigError, DataError, SerializationError, ShapeError
from chainrule.layers import Dense, Sequential
from chainrule.losses import get_loss, sample_weights
from chainrule.optim import Optimizer, get_optimizer
from chainrule.sklearn import _network, _params
from chainrule.train import Trainer

PREDICT_ROWS = 4096  # rows per forward pass when predicting (bounds the memory of a dense copy)


class BaseMLP(BaseEstimator):
    """Base of the chainrule MLP estimators; not used directly (see MLPClassifier, MLPRegressor)."""

    _losses: ClassVar[tuple[str, ...]] = ()  # the loss names this estimator takes

    def __init__(
        self,
        hidden_layer_sizes: Any = (100,),
        activation: str = "relu",
        *,
        solver: str = "adam",
        alpha: float = 0.0001,
        batch_size: int | str = "auto",
        learning_rate: str = "constant",
        learning_rate_init: float = 0.001,
        power_t: float = 0.5,
        max_iter: int = 200,
        loss: str = "squared_error",
        shuffle: bool = True,
        random_state: Any = None,
        tol: float = 1e-4,
        verbose: bool | int = False,
        warm_start: bool = False,
        momentum: float = 0.9,
        nesterovs_momentum: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        n_iter_no_change: int | float = 10,
        dropout: float = 0.0,
        optimizer_options: dict[str, Any] | None = None,
        device: str = "cpu",
        threads: int | None = None,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.loss = loss
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.dropout = dropout
        self.optimizer_options = optimizer_options
        self.device = device
        self.threads = threads

    # ------------------------------------------------------------ what subclasses provide
    def _validate_input(self, X: Any, y: Any, incremental: bool, reset: bool, classes: Any = None) -> Any:
        """``(X, Y, y)``: checked inputs, the targets the loss takes, ``y`` as given (checked)."""
        raise NotImplementedError

    def _training_loss(self) -> tuple[str, str]:
        """``(chainrule loss name, phi[L] applied before it)`` for the current targets."""
        raise NotImplementedError

    def _score(self, X: Any, y: Any, sample_weight: Any) -> float:
        raise NotImplementedError

    def _stratify(self, Y: np.ndarray) -> Any:
        return None

    def _weights(self, X: Any, y: Any, sample_weight: Any, incremental: bool) -> np.ndarray | None:
        """``sample_weight`` checked, as float64 of shape ``(m,)`` (or None)."""
        if sample_weight is None:
            return None
        w = np.asarray(sample_weight, dtype=np.float64)
        if w.ndim == 0:
            w = np.full(X.shape[0], float(w))
        return np.array(
            sample_weights(w, (X.shape[0],), np.float64, who=f"{type(self).__name__}: sample_weight")
        )

    # ------------------------------------------------------------------ fitting
    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> BaseMLP:
        """Train on ``X (n_samples, n_features)`` and targets ``y``, from sklearn's initial weights.

        ``sample_weight`` (shape ``(n_samples,)``, >= 0) weighs each example in the batch
        means: ``1/m`` becomes ``1/sum(w)`` in the loss and in the L2 term. With
        ``warm_start=True`` a fitted model continues from its weights (a new optimizer).
        """
        return self._fit(X, y, sample_weight, incremental=False)

    def _fit(self, X: Any, y: Any, sample_weight: Any, incremental: bool, classes: Any = None) -> BaseMLP:
        self._check_params()
        first = not self.__sklearn_is_fitted__() or not (self.warm_start or incremental)
        X, Y, y = self._validate_input(X, y, incremental, first, classes)
        sw = self._weights(X, y, sample_weight, incremental)
        if sw is not None and not sw.sum() > 0:
            raise DataError(
                f"{type(self).__name__}: the sample weights sum to 0 (every weight is zero): "
                "nothing to learn from."
            )
        self._random_state = check_random_state(self.random_state)
        if first:
            with backend.use_device("cpu"):  # the network starts on the host
                self._initialize(X, Y)
        else:
            self._check_architecture(X, Y)
        with backend.use_device(self.device), self._on_device(self.device):
            self._fit_stochastic(X, Y, y, sw, incremental)
        return self

    def _initialize(self, X: Any, Y: np.ndarray) -> None:
        """sklearn's ``_initialize``: the network from its initial weights, and the fit's records."""
        units = self._layer_units(X, Y)
        act = _network.SKLEARN_NAMES.get(self.activation, self.activation)
        weights = _network.initial_weights(units, act, self._random_state)
        self._model = _network.build_network(weights, act, float(self.dropout), X.dtype, self._random_state)
        self._optimizer: Optimizer | None = None
        self._trainer: Trainer | None = None
        self.n_layers_ = len(units)
        self.n_outputs_ = units[-1]
        self.out_activation_ = _network.OUT_ACTIVATION[self._training_output()]
        self.loss_curve_: list[float] = []
        self._no_improvement_count = 0
        self.t_ = 0
        self.n_iter_ = 0
        self._best_weights = [p.data.copy() for p in self._model.parameters()]
        self.validation_scores_: list[float] | None = None
        self.best_validation_score_: float | None = None
        self.best_loss_: float | None = None

    def _start_records(self) -> None:
        """sklearn's records of the stopping rule, started where missing (a warm start may switch rules)."""
        if self.early_stopping and self.validation_scores_ is None:
            self.validation_scores_, self.best_validation_score_ = [], -np.inf
        if not self.early_stopping and self.best_loss_ is None:
            self.best_loss_ = np.inf

    def _layer_units(self, X: Any, Y: np.ndarray) -> list[int]:
        hidden = (
            [self.hidden_layer_sizes] if np.ndim(self.hidden_layer_sizes) == 0 else self.hidden_layer_sizes
        )
        return [int(X.shape[1]), *[int(h) for h in hidden], self._n_units(Y)]

    def _n_units(self, Y: np.ndarray) -> int:
        """Output units: one per target column; for class labels ``(m,)``, one per class."""
        return int(Y.shape[1]) if Y.ndim == 2 else len(getattr(self, "classes_", ()))

    def _check_architecture(self, X: Any, Y: np.ndarray) -> None:
        """A warm start or partial fit must meet the network it continues."""
        have = [d.in_features for d in self._model.dense_layers()] + [
            self._model.dense_layers()[-1].out_features
        ]
        want = self._layer_units(X, Y)
        if have != want:
            raise ConfigError(
                f"{type(self).__name__}: the fitted network has layer sizes {have}, but these parameters and "
                f"data need {want} (hidden_layer_sizes or the targets changed); set warm_start=False to "
                "start anew."
            )

    def _fit_stochastic(
        self, X: Any, Y: np.ndarray, y: Any, sw: np.ndarray | None, incremental: bool
    ) -> None:
        """sklearn's ``_fit_stochastic``: epochs of mini-batch steps, the stopping rule, the records."""
        if not incremental or self._optimizer is None:
            self._optimizer = self._make_optimizer()
        if self.early_stopping and incremental:
            raise ConfigError(f"{type(self).__name__}: partial_fit does not support early_stopping=True.")
        X, Y, sw, val = self._split(X, Y, y, sw)
        self._start_records()
        n = X.shape[0]
        if self.batch_size != "auto" and self.batch_size > n:
            warnings.warn(
                "Got `batch_size` less than 1 or larger than sample size. It is going to be clipped",
                stacklevel=3,
            )
        batch_size = _network.batch_size_for(self.batch_size, n)
        trainer = self._get_trainer(batch_size)
        self.n_iter_ = 0
        # NOTE: a number of threads holds for the whole fit (entering a limit costs about 2 ms)
        whole_fit = contextlib.nullcontext() if self.threads is None else blas.limit(self.threads)
        try:
            with whole_fit:
                self._epochs(trainer, batch_size, X, Y, sw, val, incremental)
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.", stacklevel=3)
        if self.early_stopping:  # the weights of the best validation score
            for p, best in zip(self._model.parameters(), self._best_weights, strict=True):
                p.data[...] = backend.xp_of(p.data).asarray(best)

    def _epochs(
        self, trainer: Trainer, batch_size: int, X: Any, Y: np.ndarray, sw: Any, val: Any, incremental: bool
    ) -> None:
        """Up to ``max_iter`` epochs (one for ``partial_fit``), each reshuffled, until the rule stops them."""
        sample_idx = np.arange(X.shape[0], dtype=int)
        meter, largest = blas.CpuMeter(), blas.largest_product(self._model, batch_size)
        for _ in range(self.max_iter):
            if self.shuffle:
                sample_idx = shuffle(sample_idx, random_state=self._random_state)
            # threads=None: BLAS threads chosen per epoch as Trainer.train_epoch does (backend.threads)
            chosen = (
                blas.limit(blas.choose(largest, meter)) if self.threads is None else contextlib.nullcontext()
            )
            with chosen:
                self._epoch(trainer, batch_size, X, Y, sw, sample_idx)
            if self._end_of_epoch(val) or incremental:
                return
            if self.n_iter_ == self.max_iter:
                warnings.warn(
                    f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the "
                    "optimization hasn't converged yet.",
                    ConvergenceWarning,
                    stacklevel=4,
                )

    def _split(self, X: Any, Y: np.ndarray, y: Any, sw: np.ndarray | None) -> tuple[Any, ...]:
        """sklearn's early-stopping split (``train_test_split`` on the same random stream), or all rows."""
        if not self.early_stopping:
            return X, Y, sw, None
        rows = np.arange(X.shape[0])
        train, val = train_test_split(
            rows,
            random_state=self._random_state,
            test_size=self.validation_fraction,
            stratify=self._stratify(Y),
        )
        if val.shape[0] < 2:
            raise DataError(
                f"{type(self).__name__}: the validation set is too small ({val.shape[0]} row); increase "
                "validation_fraction or the size of your dataset."
            )
        y_val = y[val]
        sw_val = None if sw is None else sw[val]
        return X[train], Y[train], None if sw is None else sw[train], (X[val], y_val, sw_val)

    def _epoch(
        self,
        trainer: Trainer,
        batch_size: int,
        X: Any,
        Y: np.ndarray,
        sw: np.ndarray | None,
        order: np.ndarray,
    ) -> None:
        """One pass in sklearn's batches; the epoch's loss is the (weighted) mean of the batch losses."""
        n = X.shape[0]
        total, seen = 0.0, 0.0
        for step, batch in enumerate(gen_batches(n, batch_size)):
            rows = order[batch] if self.shuffle else batch
            wb = None if sw is None else sw[rows]
            size = float(batch.stop - batch.start) if wb is None else float(wb.sum())
            if size == 0.0:  # every weight in the batch is 0: nothing to learn from it
                continue
            xb = X[rows]
            xb = np.asarray(xb.toarray() if sparse.issparse(xb) else xb, dtype=self._dtype)
            yb = Y[rows]
            yb = yb.astype(self._dtype) if yb.dtype.kind == "f" else yb
            wb = None if wb is None else backend.asarray(wb.astype(self._dtype))
            total += trainer.train_step(backend.asarray(xb), backend.asarray(yb), step, wb=wb) * size
            seen += size
        self.n_iter_ += 1
        self.loss_ = total / seen
        self.t_ += n
        self.loss_curve_.append(self.loss_)
        if self.verbose:
            print(f"Iteration {self.n_iter_}, loss = {self.loss_:.8f}")

    def _end_of_epoch(self, val: Any) -> bool:
        """sklearn's bookkeeping after an epoch; True if training stops."""
        if val is not None:
            score = self._score(*val)
            assert self.validation_scores_ is not None and self.best_validation_score_ is not None
            self.validation_scores_.append(score)
            if self.verbose:
                print(f"Validation score: {score:f}")
            worse = score < self.best_validation_score_ + self.tol
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                self._best_weights = [backend.to_numpy(p.data).copy() for p in self._model.parameters()]
        else:
            assert self.best_loss_ is not None
            worse = self.loss_curve_[-1] > self.best_loss_ - self.tol
            self.best_loss_ = min(self.best_loss_, self.loss_curve_[-1])
        self._no_improvement_count = self._no_improvement_count + 1 if worse else 0
        assert self._optimizer is not None
        if self.solver == "sgd" and self.learning_rate == "invscaling":
            self._optimizer.lr = self.learning_rate_init / (self.t_ + 1) ** self.power_t
        if self._no_improvement_count <= self.n_iter_no_change:
            return False
        what = "Validation score" if val is not None else "Training loss"
        msg = (
            f"{what} did not improve more than tol={self.tol:f} for {self.n_iter_no_change} "
            "consecutive epochs."
        )
        if self.solver == "sgd" and self.learning_rate == "adaptive" and self._optimizer.lr > 1e-6:
            self._optimizer.lr /= 5.0
            self._no_improvement_count = 0
            if self.verbose:
                print(f"{msg} Setting learning rate to {self._optimizer.lr:f}")
            return False
        if self.verbose:
            print(f"{msg} Stopping.")
        return True

    @property
    def _dtype(self) -> Any:
        """The network's float dtype (the dtype of the first ``X`` it was fitted on: float32 or float64)."""
        return self._model.parameters()[0].dtype

    def _make_optimizer(self) -> Optimizer:
        """The solver as a chainrule optimizer: sklearn's hyper-parameters, then ``optimizer_options``."""
        adam = {"betas": (self.beta_1, self.beta_2), "eps": self.epsilon}
        by_solver: dict[str, dict[str, Any]] = {
            "sgd": {
                "momentum": self.momentum,
                "nesterov": bool(self.nesterovs_momentum and self.momentum > 0),
            },
            "adam": adam,
            "adamw": adam,
        }
        options = {**by_solver.get(self.solver, {}), **(self.optimizer_options or {})}
        return get_optimizer(self.solver, self._model.parameters(), lr=self.learning_rate_init, **options)

    def _get_trainer(self, batch_size: int) -> Trainer:
        """chainrule's Trainer for the network, the optimizer and the loss (kept for partial_fit)."""
        trainer = getattr(self, "_trainer", None)  # kept while the optimizer is: its compiled steps too
        if trainer is None or trainer.optimizer is not self._optimizer:
            name, output = self._training_loss()
            weights = [d.W for d in self._model.dense_layers()]
            loss = _network.MLPLoss(get_loss(name), output, float(self.alpha), weights)
            assert self._optimizer is not None
            trainer = Trainer(self._model, loss, self._optimizer, batch_size=batch_size)
            self._trainer = trainer
        return trainer

    @contextlib.contextmanager
    def _on_device(self, name: str) -> Iterator[None]:
        """The network (and the optimizer's state) on ``name``'s device for the block; on the host after."""
        if name == "cpu":
            yield
            return
        self._model.to(name)
        self._move_optimizer(name)
        try:
            yield
        finally:
            self._model.to("cpu")
            self._move_optimizer("cpu")

    def _move_optimizer(self, name: str) -> None:
        """The optimizer's per-parameter arrays (momentum, Adam's moments) to ``name``'s device."""
        if self._optimizer is not None:
            with backend.use_device(name):
                self._optimizer.load_state_dict(self._optimizer.state_dict())

    def _check_params(self) -> None:
        """Check every parameter (``_params.PARAMETERS``, the loss); a ConfigError names the first bad one."""
        for name, (ok, expected) in _params.PARAMETERS.items():
            value = getattr(self, name)
            if not ok(value):
                raise ConfigError(f"{type(self).__name__}: {name} must be {expected}, got {value!r}.")
        if self.loss not in self._losses:
            raise ConfigError(
                f"{type(self).__name__}: loss must be one of {list(self._losses)}, got {self.loss!r}."
            )

    # ---------------------------------------------------------------- predicting
    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "_model")

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    def _checked(self, X: Any) -> Any:
        check_is_fitted(self)
        return validate_data(self, X, accept_sparse="csr", dtype=(np.float64, np.float32), reset=False)

    def _logits(self, X: Any) -> np.ndarray:
        """``z[L]`` for checked inputs as NumPy, in eval mode (dropout off), without a graph.

        The forward pass runs where the network is: the host, except inside a fit on a GPU.
        """
        model = self._model
        first = model.parameters()[0].data
        where = "cpu" if isinstance(first, np.ndarray) else "gpu"
        was_training = model.training
        parts = []
        threads = blas.choose(blas.largest_product(model, min(PREDICT_ROWS, X.shape[0])), None, self.threads)
        with blas.limit(threads), backend.use_device(where), no_grad():
            model.eval()
            try:
                for start in range(0, X.shape[0], PREDICT_ROWS):
                    xb = X[start : start + PREDICT_ROWS]
                    xb = np.asarray(xb.toarray() if sparse.issparse(xb) else xb, dtype=first.dtype)
                    parts.append(backend.to_numpy(model(backend.asarray(xb)).data))
            finally:
                model.train(was_training)
        return np.concatenate(parts)

    # -------------------------------------------------- sklearn's attributes, views of the weights
    @property
    def coefs_(self) -> list[np.ndarray]:
        """``coefs_[l-1]`` of shape ``(n[l-1], n[l])``: the transpose of ``W[l]``, a view (writable)."""
        check_is_fitted(self)
        return [d.W.data.T for d in self._model.dense_layers()]

    @coefs_.setter
    def coefs_(self, values: list[Any]) -> None:
        self._assign("coefs_", values, [d.W.data.T for d in self._model_or_fail().dense_layers()])

    @property
    def intercepts_(self) -> list[np.ndarray]:
        """``intercepts_[l-1]`` of shape ``(n[l],)``: ``b[l]``, a view."""
        check_is_fitted(self)
        return [d.b.data for d in self._model.dense_layers() if d.b is not None]

    @intercepts_.setter
    def intercepts_(self, values: list[Any]) -> None:
        self._assign(
            "intercepts_", values, [d.b.data for d in self._model_or_fail().dense_layers() if d.b is not None]
        )

    def _model_or_fail(self) -> Sequential:
        if not self.__sklearn_is_fitted__():
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet: fit it first.")
        return self._model

    def _assign(self, what: str, values: list[Any], targets: list[np.ndarray]) -> None:
        if len(values) != len(targets):
            raise ShapeError(
                f"{type(self).__name__}.{what}: expected {len(targets)} arrays, got {len(values)}."
            )
        for i, (value, target) in enumerate(zip(values, targets, strict=True)):
            value = np.asarray(value)
            if value.shape != target.shape:
                raise ShapeError(
                    f"{type(self).__name__}.{what}[{i}]: expected shape {target.shape}, got {value.shape}."
                )
            target[...] = value

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        state.pop("_trainer", None)  # a cache of compiled steps: rebuilt on the next partial_fit
        return state

    # ------------------------------------------------------------------- saving
    def save(self, path: str | os.PathLike[str]) -> None:
        """Save the fitted estimator to ``path``: chainrule's safetensors format, never pickle.

        The file holds the network with its output activation (``chainrule.serialize.load``
        reads it as a model), the parameters, and what ``predict`` needs (classes, feature
        names, records). The optimizer's state is not kept: ``partial_fit`` after
        :meth:`load` continues with a fresh optimizer.
        """
        check_is_fitted(self)
        model = _network.with_output(self._model, self._training_output())
        meta = {"estimator": type(self).__name__, "params": _params.params_to_json(self.get_params())}
        meta["fitted"] = self._fitted_state()
        serialize.save(path, model, metadata=meta)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Any:
        """The estimator saved by :meth:`save` (SerializationError for another estimator's file)."""
        meta = serialize.load_metadata(path)
        if meta.get("estimator") != cls.__name__:
            raise SerializationError(
                f"{path}: holds a {meta.get('estimator')!r} estimator, not a {cls.__name__}; load it with "
                "that class."
            )
        model = serialize.load(path)
        last = model[len(model) - 1]
        if not isinstance(last, Dense):
            raise SerializationError(f"{path}: the network does not end in a Dense layer.")
        est = cls(**_params.params_from_json(meta.get("params", {})))
        est._model = _network.with_output(model, "identity")
        est._optimizer, est._trainer = None, None
        est._restore_fitted(meta.get("fitted", {}))
        return est

    def _training_output(self) -> str:
        raise NotImplementedError

    def _fitted_state(self) -> dict[str, Any]:
        state = {k: getattr(self, k) for k in _params.FITTED if hasattr(self, k)}
        if hasattr(self, "feature_names_in_"):
            state["feature_names_in_"] = [str(f) for f in self.feature_names_in_]
        return dict(json.loads(json.dumps(state, default=_params.to_json)))

    def _restore_fitted(self, state: dict[str, Any]) -> None:
        for key in _params.FITTED:
            if key in state:
                setattr(self, key, state[key])
        if "feature_names_in_" in state:
            self.feature_names_in_ = np.asarray(state["feature_names_in_"], dtype=object)
        self._best_weights = [p.data.copy() for p in self._model.parameters()]
