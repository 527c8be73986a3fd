"""Losses by name, each with its exact convention (level 5).

Every loss states its per-example cost ``C`` and the gradient it sends back,
``dC/da[L]`` (and ``delta[L] = dC/dz[L]`` where it is fused with the output
activation). Over a batch of ``m`` examples the default ``reduction="mean"``
averages the per-example costs (the notes' ``1/n``); ``reduction="sum"``
adds them. Per-example weights ``w`` (``loss(output, target, weight=w)``)
turn the mean into ``sum_i w_i C_i / sum_i w_i`` (``1/m`` becomes
``1/sum(w)``) and the sum into ``sum_i w_i C_i``: weight 2 counts a row twice.
Targets are arrays shaped like the output, or integer class
labels of shape ``(m,)``, turned into one-hot rows.

| name | C per example | dC/da[L] |
|---|---|---|
| ``sse`` | ``sum_j (a_j - y_j)^2`` (note 003) | ``2 (a - y)`` |
| ``half_sse`` | ``1/2 sum_j (a_j - y_j)^2`` (notes 002, 004) | ``a - y`` |
| ``mse`` | mean of ``(a - y)^2`` over all entries (PyTorch's default) | ``2 (a - y) / (m k)`` |
| ``cross_entropy`` | ``-sum_j y_j log a_j`` on probabilities (note 000) | ``-y / a`` |
| ``binary_cross_entropy`` | ``-sum_j [y_j log a_j + (1-y_j) log(1-a_j)]`` | ``(a - y) / (a (1 - a))`` |
| ``softmax_cross_entropy`` | ``-sum_j y_j log softmax(z)_j`` on logits | ``delta[L] = a - y`` |
| ``sigmoid_binary_cross_entropy`` | BCE of ``sigmoid(z)`` on logits | ``delta[L] = a - y`` |

A model ending in softmax trained with ``cross_entropy`` (or in sigmoid with
``binary_cross_entropy``) is fused automatically (see :func:`fused`): the loss
is computed from the logits, stable for any logit, with ``delta[L] = a - y``
(note 004's table).
"""

from __future__ import annotations

from typing import Any, ClassVar

from chainrule import backend, ops
from chainrule.errors import ConfigError, DataError, ShapeError
from chainrule.functional import check_labels, check_probabilities, one_hot
from chainrule.tensor import Tensor

LOSSES: dict[str, type[Loss]] = {}
REDUCTIONS = ("mean", "sum")


class Loss:
    """Base class: turns ``(output, target)`` into the scalar cost ``C``."""

    name: ClassVar[str] = ""
    from_logits: ClassVar[bool] = False
    fuses: ClassVar[dict[str, str]] = {}  # output activation -> fused loss on logits

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name:  # a named loss; a base without a name is not one
            LOSSES[cls.name] = cls

    def __init__(self, reduction: str = "mean") -> None:
        if reduction not in REDUCTIONS:
            raise ConfigError(
                f"{type(self).__name__}: reduction must be one of {REDUCTIONS}, got {reduction!r}."
            )
        self.reduction = reduction

    def __repr__(self) -> str:
        return f"{type(self).__name__}(reduction={self.reduction!r})"

    def __call__(self, output: Tensor, target: Any, weight: Any = None) -> Tensor:
        """Scalar ``C`` for outputs ``(m, k)`` (or one example ``(k,)``) and targets.

        ``weight``, shape ``(m,)``, weighs each example's cost (see :meth:`weighted`).
        """
        y = self.targets(output, target)
        per_example = self.per_example(output, y)
        if weight is not None:
            return self.weighted(per_example, weight)
        return per_example.mean() if self.reduction == "mean" else per_example.sum()

    def weighted(self, per_example: Tensor, weight: Any) -> Tensor:
        """``sum_i w_i C_i / sum_i w_i`` (mean) or ``sum_i w_i C_i`` (sum) of per-example costs ``(m,)``.

        Math: ``dC/dC_i = w_i / sum(w)`` for the mean: the notes' ``1/m`` becomes ``1/sum(w)``,
        so an integer weight ``w_i`` is the same as row ``i`` repeated ``w_i`` times.

        Raises
        ------
        ShapeError
            If ``weight`` is not of shape ``(m,)``.
        DataError
            If a weight is negative or not finite, or (for the mean) all weights are zero.
        """
        w = sample_weights(weight, tuple(per_example.shape), per_example.dtype, who=repr(self))
        total = (per_example * w).sum()
        if self.reduction == "sum":
            return total
        w_sum = float(w.sum())
        if w_sum <= 0:
            raise DataError(f"{self!r}: the sample weights sum to {w_sum}; at least one must be positive.")
        return total / Tensor(w).sum()  # an op of the step: a compiled step sums each batch's weights

    def per_example(self, a: Tensor, y: Any) -> Tensor:
        """``C`` of each example, shape ``(m,)`` (``()`` for one example)."""
        raise NotImplementedError

    def targets(self, output: Tensor, target: Any) -> Any:
        """``target`` as an array shaped like ``output``: one-hot for integer labels.

        Raises
        ------
        ShapeError
            If the target shape fits neither the output nor ``(m,)`` labels.
        DataError
            If an integer label is outside ``[0, k)``.
        """
        y = target.data if isinstance(target, Tensor) else backend.asarray(target)
        a_shape = tuple(output.data.shape)
        if tuple(y.shape) == a_shape:
            return y.astype(output.dtype, copy=False)
        if y.ndim == 1 and len(a_shape) == 2 and y.shape[0] == a_shape[0]:
            if a_shape[1] == 1:
                return y.reshape(-1, 1).astype(output.dtype, copy=False)
            if y.dtype.kind in "iu":
                return one_hot(y, a_shape[1], output.dtype, who=repr(self))
            raise DataError(  # the shape is right for labels: the dtype is what is wrong
                f"{self!r}: got {y.dtype} targets of shape {tuple(y.shape)}, but one target per row must "
                f"be an integer class label 0 .. {a_shape[1] - 1}; encode text labels first (a pandas "
                "Series, or chainrule.tables.decide_target), or for numeric targets use a regression "
                "loss (mse) with one output."
            )
        raise ShapeError(
            f"{self!r}: expected target of shape {a_shape} or integer labels of shape "
            f"({a_shape[0] if a_shape else 1},), got {tuple(y.shape)}."
        )


class SSE(Loss):
    """Sum of squared errors, note 003: ``C = sum_j (a_j - y_j)^2``.

    Math: ``dC/da[L] = 2 (a - y)``; ``delta[L] = 2 (a - y) * phi'(z[L])``.
    """

    name = "sse"

    def per_example(self, a: Tensor, y: Any) -> Tensor:
        d = a - y
        return (d * d).sum(axis=-1)


class HalfSSE(Loss):
    """Half sum of squared errors, notes 002 and 004: ``C = 1/2 sum_j (a_j - y_j)^2``.

    Math: ``dC/da[L] = a - y``; ``delta[L] = (a - y) * phi'(z[L])``, and just
    ``a - y`` for an identity output (linear regression, note 004's table).
    """

    name = "half_sse"

    def per_example(self, a: Tensor, y: Any) -> Tensor:
        d = a - y
        return 0.5 * (d * d).sum(axis=-1)


class MSE(Loss):
    """Mean squared error over all entries, PyTorch's ``MSELoss`` default.

    Math: ``C = 1/(m k) sum_i sum_j (a_ij - y_ij)^2``; ``dC/da = 2 (a - y) / (m k)``.
    With ``reduction="sum"``, ``C = sum_i sum_j (a_ij - y_ij)^2`` (= ``sse`` summed).
    Weighted: ``sum_i w_i (1/k) sum_j (a_ij - y_ij)^2 / sum_i w_i`` (mean), and
    ``sum_i w_i sum_j (a_ij - y_ij)^2`` (sum).
    """

    name = "mse"

    def __call__(self, output: Tensor, target: Any, weight: Any = None) -> Tensor:
        d = output - self.targets(output, target)
        sq = d * d
        if weight is not None:  # per example: the mean over k for the mean, the sum over k for the sum
            return self.weighted(sq.mean(axis=-1) if self.reduction == "mean" else sq.sum(axis=-1), weight)
        return sq.mean() if self.reduction == "mean" else sq.sum()

    def per_example(self, a: Tensor, y: Any) -> Tensor:
        d = a - y
        return (d * d).mean(axis=-1)


class CrossEntropy(Loss):
    """Cross-entropy on probabilities, note 000: ``C = -sum_j y_j log a_j``.

    Math: ``dC/da[L] = -y / a``. Entries with ``y_j = 0`` are left out, so an
    exact ``a_j = 0`` there costs nothing (never clipped). After a softmax
    output this is fused: ``delta[L] = a - y``.
    """

    name = "cross_entropy"
    fuses: ClassVar[dict[str, str]] = {"softmax": "softmax_cross_entropy"}

    def per_example(self, a: Tensor, y: Any) -> Tensor:
        return -ops.xlogy(y, a).sum(axis=-1)  # 0 log a = 0: where y_j = 0, a_j is never read


class _ProbabilityTargets(Loss):
    """Base of the binary cross-entropies: every target must lie in ``[0, 1]``."""

    def targets(self, output: Tensor, target: Any) -> Any:
        """As :meth:`Loss.targets`; a DataError names a target outside ``[0, 1]``."""
        return check_probabilities(super().targets(output, target), who=repr(self))


class BinaryCrossEntropy(_ProbabilityTargets):
    """Binary cross-entropy on probabilities: ``C = -sum_j [y_j log a_j + (1 - y_j) log(1 - a_j)]``.

    Math: ``dC/da[L] = (a - y) / (a (1 - a))``. Terms with a zero weight are
    left out, so exact 0/1 probabilities with matching targets cost nothing.
    After a sigmoid output this is fused: ``delta[L] = a - y``. For one output
    the mean equals PyTorch's ``BCELoss``.
    """

    name = "binary_cross_entropy"
    fuses: ClassVar[dict[str, str]] = {"sigmoid": "sigmoid_binary_cross_entropy"}

    def per_example(self, a: Tensor, y: Any) -> Tensor:
        y = Tensor(y)  # 1 - y is an op of the step (a compiled step replays it on each batch)
        return -(ops.xlogy(y, a) + ops.xlogy(1.0 - y, 1.0 - a)).sum(axis=-1)


class SoftmaxCrossEntropy(Loss):
    """Softmax + cross-entropy on logits ``z``, fused and stable.

    Math: ``C = -sum_j y_j log softmax(z)_j = logsumexp(z) - sum_j y_j z_j`` (one-hot
    ``y``); ``delta[L] = dC/dz[L] = softmax(z) - y = a - y``.
    """

    name = "softmax_cross_entropy"
    from_logits = True

    def targets(self, output: Tensor, target: Any) -> Any:
        """Integer labels stay labels (range-checked): no one-hot rows are built."""
        y = target.data if isinstance(target, Tensor) else target
        if getattr(y, "ndim", 0) == 1 and y.dtype.kind in "iu" and output.data.ndim == 2:
            k = output.data.shape[1]
            if y.shape[0] == output.data.shape[0] and k > 1:
                return check_labels(y, k, who=repr(self))
        return super().targets(output, target)

    def __call__(self, output: Tensor, target: Any, weight: Any = None) -> Tensor:
        y = self.targets(output, target)
        if y.dtype.kind in "iu" and weight is None:  # labels: one fused op, the batch mean (or sum) included
            return ops.softmax_cross_entropy_labels(output, labels=y, reduction=self.reduction)
        return super().__call__(output, y, weight)

    def per_example(self, a: Tensor, y: Any) -> Tensor:
        if y.dtype.kind in "iu":
            return ops.softmax_cross_entropy_labels(a, labels=y)
        return ops.softmax_cross_entropy(a, y)


class SigmoidBinaryCrossEntropy(_ProbabilityTargets):
    """Sigmoid + binary cross-entropy on logits ``z``, fused and stable.

    Math: ``C = sum_j [max(z_j, 0) - z_j y_j + log(1 + e**-|z_j|)]``;
    ``delta[L] = sigmoid(z) - y = a - y``.
    """

    name = "sigmoid_binary_cross_entropy"
    from_logits = True

    def per_example(self, a: Tensor, y: Any) -> Tensor:
        return ops.sigmoid_binary_cross_entropy(a, y).sum(axis=-1)


def sample_weights(weight: Any, shape: tuple[int, ...], dtype: Any, who: str = "sample_weight") -> Any:
    """``weight`` as an array of ``shape`` (one weight per example) and ``dtype``, checked.

    Raises
    ------
    ShapeError
        If the shape differs.
    DataError
        If a weight is negative, NaN or infinite (the first is named).
    """
    w = weight.data if isinstance(weight, Tensor) else backend.asarray(weight)
    if tuple(w.shape) != tuple(shape):
        raise ShapeError(f"{who}: expected sample weights of shape {tuple(shape)}, got {tuple(w.shape)}.")
    w = w.astype(dtype, copy=False)
    bad = ~(backend.xp_of(w).isfinite(w) & (w >= 0))
    if bool(bad.any()):
        i = tuple(int(j) for j in backend.xp_of(w).argwhere(bad)[0])
        raise DataError(f"{who}: sample weights must be finite and >= 0; weight{list(i)} = {w[i].item()}.")
    return w


def get_loss(loss: str | Loss, reduction: str = "mean") -> Loss:
    """The loss named ``loss`` (or ``loss`` itself if already a :class:`Loss`)."""
    if isinstance(loss, Loss):
        return loss
    try:
        return LOSSES[loss](reduction=reduction)
    except KeyError:
        raise ConfigError(f"unknown loss {loss!r}; expected one of {sorted(LOSSES)}.") from None


def fused(loss: Loss, output_activation: str) -> Loss | None:
    """The loss on logits that replaces ``output_activation`` + ``loss``, if one exists."""
    name = loss.fuses.get(output_activation)
    return None if name is None else LOSSES[name](reduction=loss.reduction)


__all__ = [
    "LOSSES",
    "BinaryCrossEntropy",
    "CrossEntropy",
    "HalfSSE",
    "Loss",
    "MSE",
    "SSE",
    "SigmoidBinaryCrossEntropy",
    "SoftmaxCrossEntropy",
    "fused",
    "get_loss",
    "sample_weights",
]
