"""Preprocessing, splits and batch iteration on NumPy arrays (level 5).

Scalers are fitted on the training split only, then applied to every split,
so no statistic of the validation or test data leaks into training. Splits are
seeded with a ``numpy.random.Generator`` and stratified for class labels.
:func:`iterate_batches` reads memory-mapped arrays one batch at a time, so a
file larger than memory can be trained on.

This module works on plain arrays; :mod:`chainrule.datasets` produces them.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from chainrule.errors import ConfigError, DataError, ShapeError
from chainrule.functional import one_hot

_CHUNK_ROWS = 4096  # rows per chunk when fitting scalers on memory-mapped arrays


def check_shapes(x: np.ndarray, y: np.ndarray, who: str) -> None:
    """2-D, non-empty inputs ``x`` (m, n_features) and as many targets ``y`` (m, ...).

    Raises
    ------
    DataError, ShapeError
        Naming ``who`` and what is wrong.
    """
    if x.ndim != 2:
        raise ShapeError(f"{who}: expected inputs of shape (m, n_features), got {x.shape}.")
    if x.shape[0] == 0:
        raise DataError(f"{who}: the dataset is empty (0 examples).")
    if y.shape[0] != x.shape[0]:
        raise ShapeError(f"{who}: {x.shape[0]} inputs but {y.shape[0]} targets.")


def _rows(x: np.ndarray, who: str) -> np.ndarray:
    """``x`` as a 2-D array (memory maps left unread)."""
    if not isinstance(x, np.ndarray):
        x = np.asarray(x)
    if x.ndim != 2:
        raise ShapeError(f"{who}: expected x of shape (m, n_features), got {x.shape}.")
    return x


def _chunks(x: np.ndarray) -> Iterator[np.ndarray]:
    """Float64 row blocks of ``x``: bounded memory even for a memory map."""
    for start in range(0, x.shape[0], _CHUNK_ROWS):
        yield np.asarray(x[start : start + _CHUNK_ROWS], dtype=np.float64)


class StandardScaler:
    """Standardize features: subtract the training mean, divide by the training std.

    Parameters
    ----------
    eps : float, default 1e-12
        A feature whose std is below ``eps`` (constant) is divided by 1 instead,
        so it maps to 0 rather than to NaN (scikit-learn's convention).

    Shapes
    ------
    x : (m, n_features) -> (m, n_features) float32;  mean_, scale_ : (n_features,)

    Math
    ----
    x_hat = (x - mean) / std, mean and std (population, ddof=0) over the rows of
    the training split. Fitting accumulates per-chunk means and squared deviations
    in float64 and merges them (Chan et al.), so a memory map is read once, in chunks.

    Raises
    ------
    ConfigError
        ``transform`` before ``fit``.
    ShapeError
        ``x`` not 2-D, or a different number of features than at fit.
    DataError
        ``fit`` on an empty array.

    Examples
    --------
    >>> scaler = StandardScaler().fit(np.array([[0.0, 1.0], [2.0, 1.0]]))
    >>> scaler.transform(np.array([[1.0, 5.0]]))
    array([[0., 4.]], dtype=float32)
    """

    def __init__(self, eps: float = 1e-12) -> None:
        self.eps = eps
        self.mean_: np.ndarray | None = None
        self.scale_: np.ndarray | None = None

    def fit(self, x_train: np.ndarray) -> StandardScaler:
        """Learn the per-feature mean and std of ``x_train``; returns ``self``."""
        x_train = _rows(x_train, "StandardScaler.fit")
        if x_train.shape[0] == 0:
            raise DataError("StandardScaler.fit: x_train is empty (0 rows).")
        count, mean, m2 = 0, np.zeros(x_train.shape[1]), np.zeros(x_train.shape[1])
        for block in _chunks(x_train):
            n_b, mean_b = block.shape[0], block.mean(axis=0)
            m2_b = ((block - mean_b) ** 2).sum(axis=0)
            delta, total = mean_b - mean, count + n_b
            mean = mean + delta * (n_b / total)
            m2 = m2 + m2_b + delta**2 * (count * n_b / total)
            count = total
        std = np.sqrt(m2 / count)
        self.mean_, self.scale_ = mean, np.where(std < self.eps, 1.0, std)
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Return ``(x - mean_) / scale_`` as float32."""
        mean, scale = _fitted(self, self.mean_, self.scale_, x)
        return ((np.asarray(x, dtype=np.float64) - mean) / scale).astype(np.float32)

    def fit_transform(self, x_train: np.ndarray) -> np.ndarray:
        """``fit(x_train)`` then ``transform(x_train)``."""
        return self.fit(x_train).transform(x_train)

    def __repr__(self) -> str:
        state = f"n_features={len(self.mean_)}" if self.mean_ is not None else "unfitted"
        return f"StandardScaler(eps={self.eps}, {state})"


class MinMaxScaler:
    """Rescale each feature linearly so the training minimum and maximum map to ``feature_range``.

    Parameters
    ----------
    feature_range : (float, float), default (0.0, 1.0)
        Target interval ``(low, high)``, ``low < high``. A constant feature maps to ``low``.

    Shapes
    ------
    x : (m, n_features) -> (m, n_features) float32;  min_, range_ : (n_features,)

    Math
    ----
    x_hat = low + (x - min) / (max - min) * (high - low), min and max over the
    training rows. Test values outside the training range fall outside ``feature_range``.

    Raises
    ------
    ConfigError
        ``low >= high``, or ``transform`` before ``fit``.
    ShapeError
        ``x`` not 2-D, or a different number of features than at fit.
    DataError
        ``fit`` on an empty array.

    Examples
    --------
    >>> MinMaxScaler().fit_transform(np.array([[1.0], [3.0], [2.0]])).ravel()
    array([0. , 1. , 0.5], dtype=float32)
    """

    def __init__(self, feature_range: tuple[float, float] = (0.0, 1.0)) -> None:
        low, high = feature_range
        if not low < high:
            raise ConfigError(f"MinMaxScaler: feature_range must have low < high, got {feature_range}.")
        self.feature_range = (float(low), float(high))
        self.min_: np.ndarray | None = None
        self.range_: np.ndarray | None = None

    def fit(self, x_train: np.ndarray) -> MinMaxScaler:
        """Learn the per-feature minimum and maximum of ``x_train``; returns ``self``."""
        x_train = _rows(x_train, "MinMaxScaler.fit")
        if x_train.shape[0] == 0:
            raise DataError("MinMaxScaler.fit: x_train is empty (0 rows).")
        low = np.full(x_train.shape[1], np.inf)
        high = np.full(x_train.shape[1], -np.inf)
        for block in _chunks(x_train):
            low, high = np.minimum(low, block.min(axis=0)), np.maximum(high, block.max(axis=0))
        span = high - low
        self.min_, self.range_ = low, np.where(span > 0, span, 1.0)
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Return ``low + (x - min_) / range_ * (high - low)`` as float32."""
        low_x, span_x = _fitted(self, self.min_, self.range_, x)
        low, high = self.feature_range
        unit = (np.asarray(x, dtype=np.float64) - low_x) / span_x
        return (low + unit * (high - low)).astype(np.float32)

    def fit_transform(self, x_train: np.ndarray) -> np.ndarray:
        """``fit(x_train)`` then ``transform(x_train)``."""
        return self.fit(x_train).transform(x_train)

    def __repr__(self) -> str:
        state = f"n_features={len(self.min_)}" if self.min_ is not None else "unfitted"
        return f"MinMaxScaler(feature_range={self.feature_range}, {state})"


def _fitted(
    scaler: object, shift: np.ndarray | None, scale: np.ndarray | None, x: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The fitted statistics of ``scaler``, after checking it was fitted and ``x`` matches."""
    name = type(scaler).__name__
    if shift is None or scale is None:
        raise ConfigError(f"{name}.transform: not fitted yet; call fit(x_train) first.")
    x = _rows(x, f"{name}.transform")
    if x.shape[1] != shift.shape[0]:
        raise ShapeError(
            f"{scaler!r}.transform: expected x of shape (m, {shift.shape[0]}), got {x.shape}; "
            "fit and transform need the same features."
        )
    return shift, scale


def standardize(x_train: np.ndarray, *x_others: np.ndarray) -> tuple[np.ndarray, ...]:
    """Standardize ``x_train`` and each of ``x_others`` with statistics of ``x_train`` only.

    Returns
    -------
    tuple of ndarray
        ``(x_train_hat, *x_others_hat)``, float32, same shapes as the inputs.

    Examples
    --------
    >>> tr, te = standardize(np.array([[1.0], [3.0]]), np.array([[5.0]]))
    >>> tr.ravel(), te.ravel()
    (array([-1.,  1.], dtype=float32), array([3.], dtype=float32))
    """
    scaler = StandardScaler().fit(x_train)
    return tuple(scaler.transform(x) for x in (x_train, *x_others))


def _as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _split_indices(
    y: np.ndarray, fractions: tuple[float, ...], rng: np.random.Generator, stratify: bool
) -> list[np.ndarray]:
    """Shuffled row indices cut into ``len(fractions) + 1`` parts; the first part takes the rest.

    Stratified: each class is cut in the same proportions. Counts per class use
    largest remainders, so the totals match the unstratified counts.
    """
    m = y.shape[0]
    groups = [np.flatnonzero(y == c) for c in np.unique(y)] if stratify else [np.arange(m)]
    parts: list[list[np.ndarray]] = [[] for _ in range(len(fractions) + 1)]
    # per-class quota of each held-out part: floor, then hand the leftovers to the largest remainders
    quotas = []
    for fraction in fractions:
        size = round(fraction * m)
        exact = np.array([len(g) * size / m for g in groups])
        quota = np.floor(exact).astype(np.int64)
        leftover = size - int(quota.sum())
        quota[np.argsort(-(exact - quota), kind="stable")[:leftover]] += 1
        quotas.append(quota)
    for gi, group in enumerate(groups):
        idx = rng.permutation(group)
        start = 0
        for k, quota in enumerate(quotas):
            parts[k + 1].append(idx[start : start + int(quota[gi])])
            start += int(quota[gi])
        parts[0].append(idx[start:])
    return [rng.permutation(np.concatenate(p)) for p in parts]


def _check_split(x: np.ndarray, y: np.ndarray, fractions: tuple[float, ...], who: str) -> None:
    if x.shape[0] != y.shape[0]:
        raise ShapeError(f"{who}: x has {x.shape[0]} rows but y has {y.shape[0]}.")
    if any(not 0.0 < f < 1.0 for f in fractions) or sum(fractions) >= 1.0:
        raise ConfigError(f"{who}: fractions must each be in (0, 1) and sum below 1, got {fractions}.")
    if x.shape[0] == 0:
        raise DataError(f"{who}: cannot split an empty dataset.")


def _is_labels(y: np.ndarray) -> bool:
    return y.ndim == 1 and np.issubdtype(y.dtype, np.integer)


def train_val_split(
    x: np.ndarray,
    y: np.ndarray,
    val_fraction: float = 0.1,
    rng: np.random.Generator | int | None = 0,
    stratify: bool | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split rows into a training and a validation part, seeded and (for labels) stratified.

    Parameters
    ----------
    x, y : ndarray
        Inputs and labels or targets with the same number of rows ``m``.
    val_fraction : float in (0, 1)
        Share of rows held out, ``round(val_fraction * m)`` rows.
    rng : numpy.random.Generator, int or None
        The generator, or a seed for ``numpy.random.default_rng``.
    stratify : bool, optional
        Keep class proportions in both parts; default: when ``y`` is 1-D integer labels.

    Returns
    -------
    x_train, y_train, x_val, y_val : ndarray

    Raises
    ------
    ConfigError
        ``val_fraction`` outside (0, 1).
    ShapeError
        ``x`` and ``y`` rows disagree.
    DataError
        Empty input, or a split that would leave a part empty.

    Examples
    --------
    >>> x, y = np.arange(20.0).reshape(10, 2), np.array([0] * 5 + [1] * 5)
    >>> x_tr, y_tr, x_va, y_va = train_val_split(x, y, val_fraction=0.2, rng=0)
    >>> sorted(y_va.tolist()), x_tr.shape
    ([0, 1], (8, 2))
    """
    x_tr, y_tr, x_va, y_va, _, _ = _split_n(x, y, (val_fraction,), rng, stratify, "train_val_split")
    return x_tr, y_tr, x_va, y_va


def train_val_test_split(
    x: np.ndarray,
    y: np.ndarray,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    rng: np.random.Generator | int | None = 0,
    stratify: bool | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split rows into training, validation and test parts; see :func:`train_val_split`.

    Returns
    -------
    x_train, y_train, x_val, y_val, x_test, y_test : ndarray
    """
    return _split_n(x, y, (val_fraction, test_fraction), rng, stratify, "train_val_test_split")


def _split_n(
    x: np.ndarray,
    y: np.ndarray,
    fractions: tuple[float, ...],
    rng: np.random.Generator | int | None,
    stratify: bool | None,
    who: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x, y = np.asarray(x), np.asarray(y)
    _check_split(x, y, fractions, who)
    strat = _is_labels(y) if stratify is None else stratify
    parts = _split_indices(y, fractions, _as_rng(rng), strat)
    for idx, part in zip(parts, ("train", "val", "test"), strict=False):
        if idx.size == 0:
            raise DataError(f"{who}: the {part} part would be empty with {x.shape[0]} rows and {fractions}.")
    out = [a for idx in parts for a in (x[idx], y[idx])]
    out += [x[:0], y[:0]] * (3 - len(parts))
    return out[0], out[1], out[2], out[3], out[4], out[5]


def iterate_batches(
    x: np.ndarray,
    y: np.ndarray | None = None,
    batch_size: int = 32,
    shuffle: bool = True,
    rng: np.random.Generator | int | None = None,
    drop_last: bool = False,
) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """Yield ``(x_batch, y_batch)`` pairs covering every row once, reading one batch at a time.

    Works on memory-mapped arrays (``np.load(path, mmap_mode="r")``) without
    reading them whole: without shuffling each batch is a contiguous slice; with
    shuffling the rows are permuted and each batch gathers its rows by *sorted*
    indices (sequential reads; the order inside a batch does not matter to a
    gradient step). Memory beyond one batch is the permutation, 8 bytes a row.

    Parameters
    ----------
    x : ndarray, (m, n_features)
    y : ndarray, (m,) or (m, k), optional
        Labels keep their integer dtype; float targets become float32. ``None``
        yields ``(x_batch, None)``.
    batch_size : int >= 1
    shuffle : bool
        A new permutation every call (every epoch).
    rng : numpy.random.Generator, int or None
        The generator, or a seed for ``numpy.random.default_rng``.
    drop_last : bool
        Skip a last batch smaller than ``batch_size``.

    Shapes
    ------
    x_batch : (b, n_features) float32, a fresh array;  y_batch : (b,) or (b, k);  b <= batch_size.

    Raises
    ------
    ConfigError
        ``batch_size < 1``.
    ShapeError
        ``x`` and ``y`` rows disagree.

    Examples
    --------
    >>> x = np.arange(10).reshape(5, 2)
    >>> [xb.shape for xb, _ in iterate_batches(x, batch_size=2, shuffle=False)]
    [(2, 2), (2, 2), (1, 2)]
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer) or batch_size < 1:
        raise ConfigError(f"iterate_batches: batch_size must be a positive integer, got {batch_size!r}.")
    m = x.shape[0]
    if y is not None and y.shape[0] != m:
        raise ShapeError(f"iterate_batches: x has {m} rows but y has {y.shape[0]}.")
    order = _as_rng(rng).permutation(m) if shuffle else None
    stop = m - m % batch_size if drop_last else m
    for start in range(0, stop, batch_size):
        if order is None:  # a slice of a memory map is a view: copy just this batch
            rows: slice | np.ndarray = slice(start, min(start + batch_size, m))
            x_batch = np.array(x[rows], dtype=np.float32)
        else:  # fancy indexing already copies; convert without a second copy
            rows = np.sort(order[start : start + batch_size])
            x_batch = np.asarray(x[rows], dtype=np.float32)
        y_batch = None if y is None else _target_batch(y[rows])
        yield x_batch, y_batch


def _target_batch(y: np.ndarray) -> np.ndarray:
    if np.issubdtype(y.dtype, np.integer):
        return np.array(y)
    return np.array(y, dtype=np.float32)


__all__ = [
    "MinMaxScaler",
    "StandardScaler",
    "check_shapes",
    "iterate_batches",
    "one_hot",
    "standardize",
    "train_val_split",
    "train_val_test_split",
]
