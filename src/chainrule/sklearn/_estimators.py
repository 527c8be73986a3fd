"""MLPClassifier and MLPRegressor: scikit-learn estimators trained by chainrule.

Part of :mod:`chainrule.sklearn` (level 8).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from scipy import special
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.metrics import accuracy_score, r2_score
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets, type_of_target, unique_labels
from sklearn.utils.validation import column_or_1d, validate_data

from chainrule.errors import ConfigError, DataError
from chainrule.sklearn import _network
from chainrule.sklearn._base import BaseMLP

CROSS_ENTROPIES = ("log_loss", "cross_entropy", "softmax_cross_entropy")
BINARY_CROSS_ENTROPIES = ("binary_cross_entropy", "sigmoid_binary_cross_entropy")
SQUARED = ("sse", "half_sse", "mse")

_COMMON_DOC = """
    hidden_layer_sizes : int or tuple of int, default=(100,)
        ``n[1], ..., n[L-1]``, the hidden layers' sizes (``()`` for none).
    activation : str, default='relu'
        ``phi`` of the hidden layers: sklearn's 'identity', 'logistic', 'tanh', 'relu', or any
        chainrule activation ('sigmoid', 'leaky_relu', 'softplus', 'elu', 'gelu', ...).
    solver : {'adam', 'sgd', 'adamw', 'rmsprop'}, default='adam'
        The chainrule optimizer. SGD's momentum is ``torch.optim.SGD``'s, the same steps as
        sklearn's for a constant learning rate; Adam's ``epsilon`` is added to
        ``sqrt(v / (1 - beta_2^t))`` (PyTorch's place), sklearn adds it to ``sqrt(v)``.
    alpha : float, default=1e-4
        L2 strength, sklearn's convention: ``alpha / (2 m) sum_l ||W[l]||^2`` added to each
        batch's cost (``m`` becomes ``sum(w)`` with sample weights), weights only.
    batch_size : int or 'auto', default='auto'
        ``m``; 'auto' is ``min(200, n_samples)``.
    learning_rate : {'constant', 'invscaling', 'adaptive'}, default='constant'
        sklearn's schedules, for ``solver='sgd'`` only.
    learning_rate_init, power_t, max_iter, shuffle, random_state, tol, verbose, warm_start,
    momentum, nesterovs_momentum, early_stopping, validation_fraction, beta_1, beta_2, epsilon,
    n_iter_no_change
        As in sklearn's MLP; ``random_state`` drives the same stream (initial weights,
        early-stopping split, shuffles), so the same seed starts from sklearn's weights.
    dropout : float, default=0.0
        Inverted dropout after every hidden layer during training (off when predicting).
    optimizer_options : dict, optional
        Extra keywords for the chainrule optimizer (e.g. ``{'weight_decay': 0.01}`` for
        'adamw'); they override the ones above.
    device : {'cpu', 'gpu'}, default='cpu'
        Where training runs ('gpu': CuPy); predictions run on the host.
    threads : int, optional
        BLAS threads in fit and predict (``threadpoolctl``, restored after). None (the default)
        chooses per epoch as ``Trainer`` does (:mod:`chainrule.backend.threads`: one thread for
        small matrix products or on a busy machine, else every core); 1 keeps parallel jobs
        (joblib, Dask) from oversubscribing the cores.
"""

_COMMON_ATTRIBUTES = """
    n_features_in_, feature_names_in_ : the input's width and column names (if it had any).
    coefs_ : list of ndarray, ``coefs_[l-1]`` of shape ``(n[l-1], n[l])``: the transpose of
        ``W[l]`` (chainrule's ``(n[l], n[l-1])``), a view: writing into it changes the network.
    intercepts_ : list of ndarray, ``intercepts_[l-1]`` of shape ``(n[l],)``: ``b[l]``.
    loss_curve_, loss_ : the training cost per epoch (the mean over examples, weighted by the
        sample weights, of each batch's cost, L2 term included), and the last one.
    validation_scores_, best_validation_score_ : with ``early_stopping`` (else None).
    best_loss_, n_iter_, t_, n_layers_, n_outputs_, out_activation_ : as in sklearn.
"""


class MLPClassifier(ClassifierMixin, BaseMLP):
    """Multilayer perceptron classifier: scikit-learn's ``MLPClassifier``, trained by chainrule.

    The output follows sklearn's rule: softmax over ``k`` classes for a multiclass
    problem, one sigmoid unit for two classes, a sigmoid unit per label for a
    multi-label indicator ``y``. ``loss='cross_entropy'`` asks for a softmax over
    every class (two units for two classes), ``loss='binary_cross_entropy'`` for sigmoid
    units (one-vs-rest for a multiclass problem, ``predict_proba`` normalised per row).
    The cross-entropies are fused with their output (``delta[L] = a[L] - y``).

    Parameters
    ----------
    loss : str, default='log_loss'
        'log_loss' (sklearn's), 'cross_entropy' (= 'softmax_cross_entropy'),
        'binary_cross_entropy' (= 'sigmoid_binary_cross_entropy'), or a squared loss on the
        probabilities: 'sse', 'half_sse', 'mse' (chainrule's conventions, see ``chainrule.losses``).
    class_weight : dict, 'balanced' or None, default=None
        Weights per class, multiplied into the sample weights: ``{label: weight}`` or
        'balanced', ``n_samples / (n_classes * count(label))``. Single-output targets only;
        'balanced' is refused by ``partial_fit`` (one batch's counts are not the data's).
    """

    __doc__ = (
        (__doc__ or "")
        + _COMMON_DOC
        + "\n    Attributes\n    ----------\n    classes_ : ndarray\n"
        + ("        The class labels (for multi-label ``y``, the column indices).\n" + _COMMON_ATTRIBUTES)
    )

    _losses: ClassVar[tuple[str, ...]] = CROSS_ENTROPIES + BINARY_CROSS_ENTROPIES + SQUARED

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
        loss: str = "log_loss",
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
        class_weight: dict[Any, float] | str | None = None,
    ) -> None:
        super().__init__(
            hidden_layer_sizes, activation, solver=solver, alpha=alpha, batch_size=batch_size,
            learning_rate=learning_rate, learning_rate_init=learning_rate_init, power_t=power_t,
            max_iter=max_iter, loss=loss, shuffle=shuffle, random_state=random_state, tol=tol,
            verbose=verbose, warm_start=warm_start, momentum=momentum,
            nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
            validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
            n_iter_no_change=n_iter_no_change, dropout=dropout, optimizer_options=optimizer_options,
            device=device, threads=threads,
        )  # fmt: skip
        self.class_weight = class_weight

    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None, classes: Any = None) -> MLPClassifier:
        """One epoch over ``(X, y)``, continuing the network (and the optimizer) of earlier calls.

        ``classes`` (every label of the whole data) is required on the first call,
        unless ``y`` is a multi-label indicator matrix.
        """
        if not self.__sklearn_is_fitted__():
            if classes is None and not type_of_target(y).startswith("multilabel"):
                raise ConfigError("MLPClassifier: classes must be passed on the first call to partial_fit.")
        elif classes is not None and not np.array_equal(unique_labels(classes), self.classes_):
            raise ConfigError(
                f"MLPClassifier: classes={list(classes)} is not the same as on the first call to "
                f"partial_fit, {list(self.classes_)}."
            )
        self._fit(X, y, sample_weight, incremental=True, classes=classes)
        return self

    def _check_params(self) -> None:
        super()._check_params()
        cw = self.class_weight
        if not (cw is None or cw == "balanced" or isinstance(cw, dict)):
            raise ConfigError(f"MLPClassifier: class_weight must be None, 'balanced' or a dict, got {cw!r}.")

    def _validate_input(self, X: Any, y: Any, incremental: bool, reset: bool, classes: Any = None) -> Any:
        X, y = validate_data(
            self, X, y, accept_sparse="csr", multi_output=True, dtype=(np.float64, np.float32), reset=reset
        )
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        y_type = type_of_target(y)
        if y_type not in ("binary", "multiclass", "multilabel-indicator"):
            raise DataError(
                f"MLPClassifier: targets of type {y_type!r} are not supported; expected class labels of "
                "shape (n_samples,) or a multi-label indicator matrix of 0/1."
            )
        if reset:
            self._set_classes(y, y_type, classes)
        else:
            self._check_classes(y, y_type, incremental)
        return X, self._encode(y), y

    def _set_classes(self, y: np.ndarray, y_type: str, classes: Any) -> None:
        multilabel = y_type == "multilabel-indicator"
        self.classes_ = (
            np.arange(y.shape[1]) if multilabel else unique_labels(y if classes is None else classes)
        )
        if not multilabel and len(self.classes_) < 2:
            raise DataError(
                f"MLPClassifier: needs samples of at least 2 classes, got 1 class: {self.classes_.tolist()}."
            )
        if multilabel and self.loss in CROSS_ENTROPIES[1:]:
            raise ConfigError(
                f"MLPClassifier: loss={self.loss!r} is a softmax over classes, but y is multi-label; use "
                "'log_loss' or 'binary_cross_entropy' (a sigmoid unit per label)."
            )
        if multilabel:
            self._kind = "multilabel"
        elif self.loss in CROSS_ENTROPIES[1:] or (
            len(self.classes_) > 2 and self.loss not in BINARY_CROSS_ENTROPIES
        ):
            self._kind = "multiclass"
        else:
            self._kind = "binary" if len(self.classes_) == 2 else "ovr"

    def _check_classes(self, y: np.ndarray, y_type: str, incremental: bool) -> None:
        if (y_type == "multilabel-indicator") != (self._kind == "multilabel"):
            raise DataError(
                f"MLPClassifier: y is {y_type}, but the model was fitted on {self._kind} targets."
            )
        if self._kind == "multilabel":
            return
        labels = unique_labels(y)
        if self.warm_start and not incremental and set(labels) != set(self.classes_):
            raise DataError(
                "MLPClassifier: warm_start can only be used where `y` has the same classes as in the "
                f"previous call to fit. Previously got {self.classes_}, `y` has {labels}"
            )
        unknown = np.setdiff1d(labels, self.classes_)
        if len(unknown):
            raise DataError(
                f"MLPClassifier: `y` has classes not in `self.classes_` {self.classes_}: {unknown}."
            )

    def _encode(self, y: np.ndarray) -> np.ndarray:
        """The targets of the loss: labels ``0 .. k-1`` (softmax cross-entropy), else 0/1 columns.

        One-hot rows are built once here, not per batch inside the loss (a compiled step
        would see them as a constant that changes).
        """
        if self._kind == "multilabel":
            return np.asarray(y, dtype=np.float64)
        index = np.searchsorted(self.classes_, y).astype(np.int64)
        if self._kind == "multiclass" and self.loss not in SQUARED:
            return index  # the fused softmax cross-entropy takes the labels themselves
        if self._kind == "binary":
            return (index == 1).astype(np.float64).reshape(-1, 1)
        return np.eye(len(self.classes_))[index]

    def _weights(self, X: Any, y: Any, sample_weight: Any, incremental: bool) -> np.ndarray | None:
        sw = super()._weights(X, y, sample_weight, incremental)
        if self.class_weight is None:
            return sw
        if self._kind == "multilabel":
            raise ConfigError(
                "MLPClassifier: class_weight needs single-output class labels, y is multi-label."
            )
        if incremental and self.class_weight == "balanced":
            raise ConfigError(
                "MLPClassifier: class_weight='balanced' is not supported by partial_fit (one batch's class "
                "counts are not the data's); pass a dict, e.g. from sklearn.utils.class_weight."
                "compute_class_weight('balanced', classes=classes, y=y_all)."
            )
        per_class = compute_class_weight(self.class_weight, classes=self.classes_, y=y)
        per_row = per_class[np.searchsorted(self.classes_, y)]
        return per_row if sw is None else sw * per_row

    def _stratify(self, Y: np.ndarray) -> Any:
        # sklearn stratifies its early-stopping split only for one output unit, on the 0/1 column
        return Y.astype(bool) if self._kind == "binary" else None

    def _training_loss(self) -> tuple[str, str]:
        output = self._training_output()
        if self.loss in SQUARED:
            return self.loss, output
        fused = "softmax_cross_entropy" if output == "softmax" else "sigmoid_binary_cross_entropy"
        return fused, "identity"

    def _training_output(self) -> str:
        return "softmax" if self._kind == "multiclass" else "sigmoid"

    # ------------------------------------------------------------------ predicting
    def decision_function(self, X: Any) -> np.ndarray:
        """The logits ``z[L]``: shape ``(n_samples,)`` for two classes (one unit), else ``(n_samples, k)``."""
        z = self._logits(self._checked(X))
        return z[:, 0] if self._kind == "binary" else z

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probabilities ``(n_samples, n_classes)``, in the order of ``classes_`` (per label: multi-label)."""
        return self._proba(self._logits(self._checked(X)), log=False)

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """``log(predict_proba(X))``, computed from the logits (finite where the probability underflows)."""
        return self._proba(self._logits(self._checked(X)), log=True)

    def _proba(self, z: np.ndarray, log: bool) -> np.ndarray:
        if self._kind == "binary":
            pair = np.hstack([-z, z])  # P(class 0) = sigmoid(-z), P(class 1) = sigmoid(z)
            return special.log_expit(pair) if log else special.expit(pair)
        output = {"multiclass": "softmax", "ovr": "ovr", "multilabel": "sigmoid"}[self._kind]
        return _network.probabilities(z, output, log)

    def predict(self, X: Any) -> np.ndarray:
        """Class labels (a 0/1 indicator matrix for multi-label ``y``), from ``predict_proba``."""
        return self._predict(self._checked(X))

    def _predict(self, X: Any) -> np.ndarray:
        proba = self._proba(self._logits(X), log=False)
        if self._kind == "multilabel":
            return (proba > 0.5).astype(int)
        if self._kind == "binary":
            return self.classes_[(proba[:, 1] > 0.5).astype(int)]
        return self.classes_[np.argmax(proba, axis=1)]

    def _score(self, X: Any, y: Any, sample_weight: Any) -> float:
        return float(accuracy_score(y, self._predict(X), sample_weight=sample_weight))

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags

    def _fitted_state(self) -> dict[str, Any]:
        state = super()._fitted_state()
        state.update(classes=self.classes_.tolist(), classes_dtype=self.classes_.dtype.str, kind=self._kind)
        return state

    def _restore_fitted(self, state: dict[str, Any]) -> None:
        super()._restore_fitted(state)
        dtype = np.dtype(state["classes_dtype"]) if state["classes_dtype"] != "|O" else object
        self.classes_ = np.asarray(state["classes"], dtype=dtype)
        self._kind = state["kind"]


class MLPRegressor(RegressorMixin, BaseMLP):
    """Multilayer perceptron regressor: scikit-learn's ``MLPRegressor``, trained by chainrule.

    An identity output ``a[L] = z[L]``, one unit per target column.

    Parameters
    ----------
    loss : {'squared_error', 'half_sse', 'sse', 'mse'}, default='squared_error'
        'squared_error' is sklearn's: trained as chainrule's 'half_sse',
        ``C = 1/2 sum_j (a_j - y_j)^2`` with ``delta[L] = a[L] - y``, the gradient sklearn
        uses. For ``k > 1`` outputs sklearn *reports* that loss divided by ``k`` (its value is
        a mean over outputs, its gradient a sum), so there ``loss_curve_`` (and a stopping
        rule on it) is ``k`` times sklearn's. 'poisson' is not offered.
    """

    __doc__ = (__doc__ or "") + _COMMON_DOC + "\n    Attributes\n    ----------\n" + _COMMON_ATTRIBUTES

    _losses: ClassVar[tuple[str, ...]] = ("squared_error", *SQUARED)

    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPRegressor:
        """One epoch over ``(X, y)``, continuing the network (and the optimizer) of earlier calls."""
        self._fit(X, y, sample_weight, incremental=True)
        return self

    def _validate_input(self, X: Any, y: Any, incremental: bool, reset: bool, classes: Any = None) -> Any:
        X, y = validate_data(
            self, X, y, accept_sparse="csr", multi_output=True, y_numeric=True,
            dtype=(np.float64, np.float32), reset=reset,
        )  # fmt: skip
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        return X, np.asarray(y, dtype=X.dtype).reshape(len(y), -1), y

    def _training_loss(self) -> tuple[str, str]:
        return ("half_sse" if self.loss == "squared_error" else self.loss), "identity"

    def _training_output(self) -> str:
        return "identity"

    def predict(self, X: Any) -> np.ndarray:
        """Predictions ``a[L] = z[L]``: shape ``(n_samples,)`` for one target, else ``(n_samples, k)``."""
        return self._predict(self._checked(X))

    def _predict(self, X: Any) -> np.ndarray:
        z = self._logits(X)
        return z.ravel() if z.shape[1] == 1 else z

    def _score(self, X: Any, y: Any, sample_weight: Any) -> float:
        return float(r2_score(y, self._predict(X), sample_weight=sample_weight))

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
