"""The :class:`Dataset` container, its validation helpers, seeded splits and the cache folder.

Part of :mod:`chainrule.datasets` (level 5); the other submodules build on this one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from chainrule import limits
from chainrule.errors import ConfigError, DataError
from chainrule.fileio import write_atomic

TASKS = ("classification", "regression")
_CHUNK_ROWS = 4096  # rows per chunk when scanning memory-mapped arrays

# ----------------------------------------------------------------------------- the container


class Dataset:
    """A train/test split of one dataset, as NumPy arrays.

    Parameters
    ----------
    x_train, x_test : ndarray
        Inputs, float32, one example per row. Memory-mapped arrays (from ``.npy``
        files) are kept as they are, in their stored dtype, and never read whole;
        :func:`chainrule.data.iterate_batches` casts each batch to float32.
    y_train, y_test : ndarray
        Class labels (int64, 0 .. n_classes - 1) for classification, float32
        targets of shape ``(m, k)`` for regression (a 1-D target becomes ``(m, 1)``).
    name : str
        Where the data came from: a registered name or a file name.
    task : {"classification", "regression"}
    n_classes : int or None
        Number of classes; ``None`` for regression. Inferred as ``len(classes)``,
        else ``max(label) + 1``, when not given.
    classes : list, optional
        The label of each class code (``classes[y]``), for a table whose labels
        were encoded (text, 1-based, sparse); ``None`` when the codes are the labels.
    feature_names : list of str, optional
        The input columns' names (a CSV header); ``target_name`` the target's.
    task_reason : str, optional
        Why the task was inferred (``None`` when it was given or is the data set's own).
    check_finite : bool
        Scan the inputs for NaN and infinity (a memory map in chunks); False leaves that to
        the reader of each part (a rank of a distributed run checks only its rows).

    Shapes
    ------
    x_train : (m_train, n_features)     y_train : (m_train,) or (m_train, k)
    x_test  : (m_test, n_features)      y_test  : (m_test,) or (m_test, k)

    Raises
    ------
    DataError
        If the training split is empty, rows of x and y disagree, a float array
        holds NaN or infinity (the row is named), or a label is negative or
        ``>= n_classes``.
    ConfigError
        If ``task`` is not one of :data:`TASKS`.

    Examples
    --------
    >>> ds = Dataset(np.zeros((4, 2)), np.array([0, 1, 0, 1]), np.ones((2, 2)), np.array([1, 0]), name="toy")
    >>> ds.n_classes, ds.n_features, ds.x_train.dtype
    (2, 2, dtype('float32'))
    """

    def __init__(
        self,
        x_train: np.ndarray,
        y_train: np.ndarray,
        x_test: np.ndarray,
        y_test: np.ndarray,
        *,
        name: str = "dataset",
        task: str = "classification",
        n_classes: int | None = None,
        classes: list[Any] | None = None,
        feature_names: list[str] | None = None,
        target_name: str | None = None,
        task_reason: str | None = None,
        check_finite: bool = True,
    ) -> None:
        if task not in TASKS:
            raise ConfigError(f"Dataset {name!r}: task must be one of {TASKS}, got {task!r}.")
        self.name, self.task = name, task
        self.classes, self.feature_names, self.target_name = classes, feature_names, target_name
        self.task_reason = task_reason
        if classes is not None and n_classes is None:
            n_classes = len(classes)
        self.x_train = _as_inputs(x_train, name, "x_train", check_finite)
        self.x_test = _as_inputs(x_test, name, "x_test", check_finite)
        if self.x_train.shape[0] == 0:
            raise DataError(f"{name}: the dataset is empty (x_train has 0 rows); nothing to train on.")
        if self.x_test.shape[1:] != self.x_train.shape[1:]:
            raise DataError(
                f"{name}: x_train has {self.x_train.shape[1]} features but x_test has {self.x_test.shape[1]}."
            )
        if task == "classification":
            self.y_train = _as_labels(y_train, name, "y_train")
            self.y_test = _as_labels(y_test, name, "y_test")
            self.n_classes: int | None = _check_classes(self.y_train, self.y_test, n_classes, name)
        else:
            self.y_train = _as_targets(y_train, name, "y_train")
            self.y_test = _as_targets(y_test, name, "y_test")
            self.n_classes = None
        for x, y, split in ((self.x_train, self.y_train, "train"), (self.x_test, self.y_test, "test")):
            if x.shape[0] != y.shape[0]:
                raise DataError(f"{name}: x_{split} has {x.shape[0]} rows but y_{split} has {y.shape[0]}.")

    @property
    def n_features(self) -> int:
        """Number of input features, ``n[0]``."""
        return int(self.x_train.shape[1])

    def __repr__(self) -> str:
        def desc(a: np.ndarray) -> str:
            kind = " memmap" if isinstance(a, np.memmap) else ""
            return f"{tuple(a.shape)} {a.dtype}{kind}"

        arrays = ", ".join(
            f"{key}={desc(getattr(self, key))}" for key in ("x_train", "y_train", "x_test", "y_test")
        )
        return f"Dataset(name={self.name!r}, task={self.task!r}, n_classes={self.n_classes}, {arrays})"


def _as_inputs(x: np.ndarray, name: str, key: str, check_finite: bool = True) -> np.ndarray:
    """Inputs as a 2-D float32 array (memory maps kept as they are), checked finite."""
    if not isinstance(x, np.memmap):
        x = np.asarray(x)
        if x.ndim == 1:
            x = x.reshape(-1, 1)
        if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
            raise DataError(f"{name}: {key} must be numeric, got dtype {x.dtype}.")
        x = x.astype(np.float32, copy=False)
    if x.ndim != 2:
        raise DataError(f"{name}: {key} must be 2-D (m, n_features), got shape {x.shape}.")
    if check_finite:  # False: the reader checks each part it reads (distributed training)
        _check_finite(x, name, key)
    return x


def _as_labels(y: np.ndarray, name: str, key: str) -> np.ndarray:
    """Class labels as 1-D int64; float labels must be whole numbers."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"{name}: {key} must hold one class label per row, got shape {y.shape}.")
    if np.issubdtype(y.dtype, np.floating):
        _check_finite(y, name, key)
        if not np.all(y == np.round(y)):
            raise DataError(
                f"{name}: {key} has non-integer class labels; pass task='regression' for float targets."
            )
        huge = np.flatnonzero(np.abs(y) >= 2.0**62)
        if huge.size:  # NOTE: int64 would wrap it (1e21 became -9223372036854775808)
            i = int(huge[0])
            raise DataError(
                f"{name}: {key}[{i}] = {y[i]:g} is not a class number (0 .. n_classes - 1); "
                "pass task='regression' for numeric targets, or encode the labels first."
            )
    elif not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{name}: {key} must hold integer class labels, got dtype {y.dtype}.")
    return y.astype(np.int64, copy=False)


def _as_targets(y: np.ndarray, name: str, key: str) -> np.ndarray:
    """Regression targets as 2-D float32 ``(m, k)``."""
    y = np.asarray(y, dtype=np.float32)
    if y.ndim == 1:
        y = y.reshape(-1, 1)
    if y.ndim != 2:
        raise DataError(f"{name}: {key} must have shape (m,) or (m, k), got {y.shape}.")
    _check_finite(y, name, key)
    return y


def _check_classes(y_train: np.ndarray, y_test: np.ndarray, n_classes: int | None, name: str) -> int:
    """Check labels lie in ``0 .. n_classes - 1``; infer ``n_classes`` when not given."""
    if n_classes is not None and (not isinstance(n_classes, int | np.integer) or n_classes < 1):
        raise ConfigError(f"{name}: n_classes must be a positive integer, got {n_classes!r}.")
    highest = -1
    for y, key in ((y_train, "y_train"), (y_test, "y_test")):
        if y.size == 0:
            continue
        low, high = int(y.min()), int(y.max())
        if low < 0:
            row = int(np.argmax(y < 0))
            raise DataError(
                f"{name}: {key}[{row}] = {low} is a negative class label; labels must be >= 0 "
                "(pass task='regression' for numeric targets)."
            )
        if n_classes is not None and high >= n_classes:
            row = int(np.argmax(y >= n_classes))
            raise DataError(
                f"{name}: {key}[{row}] = {int(y[row])} is out of range for n_classes={n_classes} "
                f"(labels must be 0 .. {n_classes - 1})."
            )
        if n_classes is None and high + 1 > limits.get("max_classes"):
            row = int(np.argmax(y))
            limits.check("max_classes", high + 1, name, f" (the label {high} at {key}[{row}] implies them)")
        highest = max(highest, high)
    if n_classes is not None:
        limits.check("max_classes", int(n_classes), name, " (n_classes)")
    return int(n_classes) if n_classes is not None else highest + 1


def _check_finite(a: np.ndarray, name: str, key: str) -> None:
    """Raise DataError naming the first row with NaN or infinity; scans memory maps in chunks."""
    if not np.issubdtype(a.dtype, np.floating):
        return
    for start in range(0, a.shape[0], _CHUNK_ROWS):
        block = np.asarray(a[start : start + _CHUNK_ROWS])
        bad = ~np.isfinite(block)
        if bad.any():
            where = np.argwhere(bad)[0]
            row = start + int(where[0])
            col = f", column {int(where[1])}" if block.ndim > 1 else ""
            raise DataError(
                f"{name}: {key} contains NaN or infinity (first at row {row}{col}, value "
                f"{block[tuple(where)]}); clean the data or drop those rows."
            )


# ----------------------------------------------------------------------------- splits and cache


def _split(
    x: np.ndarray, y: np.ndarray, *, test_fraction: float, seed: int, stratify: bool, name: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Seeded (stratified) train/test split of in-memory arrays; ``test_fraction=0`` keeps all rows."""
    if not 0.0 <= test_fraction < 1.0:
        raise ConfigError(f"{name}: test_fraction must be in [0, 1), got {test_fraction!r}.")
    if test_fraction == 0.0:
        return x, y, x[:0], y[:0]
    from sklearn.model_selection import train_test_split

    try:
        parts = train_test_split(
            x, y, test_size=test_fraction, random_state=seed, stratify=y if stratify else None
        )
    except ValueError as exc:  # e.g. a class with a single member cannot be stratified
        raise DataError(
            f"{name}: cannot split {len(y)} rows with test_fraction={test_fraction}: {exc}"
        ) from exc
    x_train, x_test, y_train, y_test = parts
    return x_train, y_train, x_test, y_test


def default_cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The cache folder: ``cache_dir`` if given, else ``$CHAINRULE_CACHE``, else ``~/.cache/chainrule``."""
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("CHAINRULE_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "chainrule"


def _save_npz_atomic(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write an .npz atomically and durably (:func:`chainrule.fileio.write_atomic`): never half a file."""
    write_atomic(path, lambda f: np.savez(f, **dict(arrays)))  # type: ignore[arg-type]
