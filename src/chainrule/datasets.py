"""Datasets as plain NumPy arrays: embedded, generated, read from files, or downloaded (level 5).

Everything here returns a :class:`Dataset`: four arrays and a little metadata.
Preprocessing, splits and batch iteration live in :mod:`chainrule.data`, which
works on the arrays and never imports this module (both are level 5).

One entry point, :func:`load`, takes a registered name (see :data:`DATASETS`) or
a path, and dispatches on it:

==========================  ==================================================
``load("digits")``          scikit-learn's 8x8 digits, pixels scaled to [0, 1]
``load("mnist1d")``         MNIST-1D, generated locally by the ``mnist1d`` package
``load("moons")`` ...       synthetic teaching sets: moons, spirals, xor,
                            regression, teacher
``load("mnist")``           MNIST / Fashion-MNIST from the cache folder
                            (``download=True`` fetches them once, opt-in)
``load("dir/")``            a folder of the four MNIST IDX files (raw or .gz),
                            or of ``x_train.npy``, ``y_train.npy``, ... (memory-mapped)
``load("file.csv")``        a CSV table, target column by name or index
``load("file.npz")``        keys ``x_train, y_train, x_test, y_test`` or ``x, y``
``load("file.npy")``        one memory-mapped 2-D table, target column first or last
==========================  ==================================================

Nothing touches the network unless :func:`download` (or ``download=True``) is
called. Every file problem raises :class:`~chainrule.errors.DataError` naming
the file and, where it helps, the byte offset, line or column.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import http.client
import inspect
import itertools
import json
import os
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from chainrule.errors import ConfigError, DataError

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
        Number of classes; ``None`` for regression. Inferred as ``max(label) + 1``
        when not given.

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
    ) -> None:
        if task not in TASKS:
            raise ConfigError(f"Dataset {name!r}: task must be one of {TASKS}, got {task!r}.")
        self.name, self.task = name, task
        self.x_train = _as_inputs(x_train, name, "x_train")
        self.x_test = _as_inputs(x_test, name, "x_test")
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


def _as_inputs(x: np.ndarray, name: str, key: str) -> np.ndarray:
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
        highest = max(highest, high)
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
    """Write an .npz next to ``path`` then rename it, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **dict(arrays))  # type: ignore[arg-type]
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- embedded datasets


def digits(test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """scikit-learn's handwritten digits: 1,797 images of 8x8 pixels, 10 classes, offline.

    Pixels (0..16) are divided by 16 into [0, 1]. The split is stratified and seeded.

    Shapes
    ------
    x : (m, 64) float32, y : (m,) int64; with the defaults m_train = 1437, m_test = 360.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int64)
    x_train, y_train, x_test, y_test = _split(
        x, y, test_fraction=test_fraction, seed=seed, stratify=True, name="digits"
    )
    return Dataset(x_train, y_train, x_test, y_test, name="digits", n_classes=10)


def mnist1d(
    num_samples: int = 5000,
    train_split: float = 0.8,
    seed: int = 42,
    cache_dir: str | os.PathLike[str] | None = None,
    cache: bool = True,
) -> Dataset:
    """MNIST-1D (Greydanus, 2020): 40-sample 1-D signals of the ten digits, generated locally.

    Built by ``mnist1d.data.make_dataset`` with the package's default arguments
    (5,000 samples, 80% train: 4,000 / 1,000), deterministically from ``seed``;
    the package's downloader is never used. Generation takes about a second, so
    the arrays are cached as ``mnist1d/mnist1d-<key>.npz`` in the cache folder
    (see :func:`default_cache_dir`), keyed by the generation arguments.

    Shapes
    ------
    x : (m, 40) float32 (the package centres and scales to unit std), y : (m,) int64.

    Notes
    -----
    ``make_dataset`` reseeds Python's and NumPy's global random generators; their
    states are saved and restored around it, so calling this has no side effect.
    """
    from mnist1d.data import get_dataset_args

    args = get_dataset_args(as_dict=False)
    args.num_samples, args.train_split, args.seed = int(num_samples), float(train_split), int(seed)
    key_args = {k: v for k, v in sorted(vars(args).items()) if k != "url"}
    key = hashlib.sha256(json.dumps(key_args, sort_keys=True).encode()).hexdigest()[:16]
    path = default_cache_dir(cache_dir) / "mnist1d" / f"mnist1d-{key}.npz"
    if cache and path.is_file():
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in ("x", "y", "x_test", "y_test")}
    else:
        arrays = _generate_mnist1d(args)
        if cache:
            _save_npz_atomic(path, arrays)
    return Dataset(arrays["x"], arrays["y"], arrays["x_test"], arrays["y_test"], name="mnist1d", n_classes=10)


def _generate_mnist1d(args: Any) -> dict[str, np.ndarray]:
    """Run the package's generator with the global random states saved and restored."""
    from mnist1d.data import make_dataset

    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        data = make_dataset(args)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    return {
        "x": data["x"].astype(np.float32),
        "y": data["y"].astype(np.int64),
        "x_test": data["x_test"].astype(np.float32),
        "y_test": data["y_test"].astype(np.int64),
    }


def moons(n_train: int = 800, n_test: int = 200, noise: float = 0.1, seed: int = 0) -> Dataset:
    """Two interleaving half circles (scikit-learn ``make_moons``), 2 classes.

    Shapes
    ------
    x : (m, 2) float32, y : (m,) int64.
    """
    from sklearn.datasets import make_moons

    _check_counts("moons", n_train, n_test)
    x, y = make_moons(n_samples=n_train + n_test, noise=noise, random_state=seed)
    return _from_generated("moons", x, y, n_train, n_classes=2)


def spirals(
    *,
    n_train: int = 900,
    n_test: int = 300,
    n_arms: int = 3,
    turns: float = 0.75,
    noise: float = 0.2,
    seed: int = 0,
) -> Dataset:
    """``n_arms`` interleaved spiral arms in the plane, one class per arm.

    Math
    ----
    For arm k and radius r uniform in [0, 1]:
    theta = 2 pi (turns r + k / n_arms) + noise * N(0, 1),   x = r [cos theta, sin theta].

    Shapes
    ------
    x : (m, 2) float32, y : (m,) int64 in 0 .. n_arms - 1.
    """
    _check_counts("spirals", n_train, n_test)
    if n_arms < 2:
        raise ConfigError(f"spirals: n_arms must be >= 2, got {n_arms}.")
    rng = np.random.default_rng(seed)
    m = n_train + n_test
    y = rng.integers(0, n_arms, size=m)
    r = rng.uniform(0.0, 1.0, size=m)
    theta = 2 * np.pi * (turns * r + y / n_arms) + noise * rng.standard_normal(m)
    x = np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1)
    return _from_generated("spirals", x, y, n_train, n_classes=n_arms)


def xor(n_train: int = 800, n_test: int = 200, noise: float = 0.0, seed: int = 0) -> Dataset:
    """Points uniform in [-1, 1]^2, class 1 where the two coordinates have opposite signs.

    ``noise`` adds Gaussian jitter to the points after labelling (so some cross the axes).

    Shapes
    ------
    x : (m, 2) float32, y : (m,) int64 in {0, 1}.
    """
    _check_counts("xor", n_train, n_test)
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, size=(n_train + n_test, 2))
    y = ((x[:, 0] > 0) != (x[:, 1] > 0)).astype(np.int64)
    x = x + noise * rng.standard_normal(x.shape)
    return _from_generated("xor", x, y, n_train, n_classes=2)


def regression(n_train: int = 200, n_test: int = 100, noise: float = 0.1, seed: int = 0) -> Dataset:
    """A noisy 1-D curve: y = sin(x) + noise * N(0, 1), x uniform in [-pi, pi].

    Shapes
    ------
    x : (m, 1) float32, y : (m, 1) float32; ``task='regression'``, ``n_classes=None``.
    """
    _check_counts("regression", n_train, n_test)
    rng = np.random.default_rng(seed)
    x = rng.uniform(-np.pi, np.pi, size=(n_train + n_test, 1))
    y = np.sin(x) + noise * rng.standard_normal(x.shape)
    return _from_generated("regression", x, y, n_train, n_classes=None)


def teacher(
    *,
    n_train: int = 60000,
    n_test: int = 10000,
    n_features: int = 784,
    hidden: Sequence[int] = (128,),
    n_classes: int = 10,
    sparsity: float = 0.8,
    seed: int = 0,
) -> Dataset:
    """Labels from a fixed random teacher network: a learnable, MNIST-sized benchmark set.

    Inputs are sparse like MNIST pixels: each entry is 0 with probability
    ``sparsity``, else uniform in [0, 1]. The teacher is an MLP with ReLU hidden
    layers of sizes ``hidden`` (``()`` for a linear teacher) and He-scaled
    Gaussian weights; each pre-activation is centred over the data, which keeps
    ReLUs alive and the classes roughly balanced. Everything is float32; the
    defaults (70,000 x 784) take well under a second.

    Math
    ----
    a[0] = x,   a[l] = relu(W[l] a[l-1] - mean_m(W[l] a[l-1])),   y = argmax(W[L] a[L-1] - mean_m(...)).

    Shapes
    ------
    x : (m, n_features) float32, y : (m,) int64 in 0 .. n_classes - 1.
    """
    _check_counts("teacher", n_train, n_test)
    if not 0.0 <= sparsity < 1.0:
        raise ConfigError(f"teacher: sparsity must be in [0, 1), got {sparsity}.")
    if n_classes < 2 or n_features < 1 or any(h < 1 for h in hidden):
        raise ConfigError(
            f"teacher: need n_classes >= 2, n_features >= 1 and positive hidden sizes, "
            f"got n_classes={n_classes}, n_features={n_features}, hidden={tuple(hidden)}."
        )
    rng = np.random.default_rng(seed)
    m = n_train + n_test
    x = rng.random((m, n_features), dtype=np.float32)
    # u >= sparsity happens with probability 1 - sparsity, and (u - s) / (1 - s) is then uniform in [0, 1)
    keep = x >= sparsity
    x -= np.float32(sparsity)
    x *= np.float32(1.0 / (1.0 - sparsity))
    x *= keep
    a = x
    sizes = [n_features, *hidden, n_classes]
    for layer, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        W = rng.standard_normal((n_out, n_in), dtype=np.float32) * np.float32(np.sqrt(2.0 / n_in))
        z = a @ W.T
        z -= z.mean(axis=0)
        a = np.maximum(z, 0.0) if layer < len(sizes) - 2 else z
    y = np.argmax(a, axis=1)
    return _from_generated("teacher", x, y, n_train, n_classes=n_classes)


def _check_counts(name: str, n_train: int, n_test: int) -> None:
    if n_train < 1 or n_test < 0:
        raise ConfigError(
            f"{name}: need n_train >= 1 and n_test >= 0, got n_train={n_train}, n_test={n_test}."
        )


def _from_generated(name: str, x: np.ndarray, y: np.ndarray, n_train: int, n_classes: int | None) -> Dataset:
    """Cut i.i.d. generated rows into train (first ``n_train``) and test (the rest)."""
    x = np.asarray(x, dtype=np.float32)
    task = "regression" if n_classes is None else "classification"
    return Dataset(
        x[:n_train], y[:n_train], x[n_train:], y[n_train:], name=name, task=task, n_classes=n_classes
    )


# ----------------------------------------------------------------------------- IDX files (MNIST)

IDX_DTYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
}
IDX_DTYPES |= {0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
IDX_IMAGES_MAGIC = 0x00000803  # ubyte, 3 dims: (count, rows, cols)
IDX_LABELS_MAGIC = 0x00000801  # ubyte, 1 dim: (count,)
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def read_idx(path: str | os.PathLike[str], expected_magic: int | None = None) -> np.ndarray:
    """Read one IDX file (the MNIST format), raw or gzip-compressed (``.gz``).

    Layout: a 4-byte big-endian magic number ``0x0000 <dtype byte> <ndims>``,
    then ``ndims`` big-endian uint32 sizes, then the data in C order.

    Parameters
    ----------
    path : path-like
        The file; a name ending in ``.gz`` is decompressed.
    expected_magic : int, optional
        The exact magic to require, e.g. :data:`IDX_IMAGES_MAGIC` (0x00000803) or
        :data:`IDX_LABELS_MAGIC` (0x00000801). Any valid IDX magic when ``None``.

    Returns
    -------
    ndarray
        Shape ``dims``, in the native-endian version of the file's dtype.

    Raises
    ------
    DataError
        Wrong magic (the file, byte offset 0, the value found and expected); an
        unknown dtype byte; a header cut short; data shorter or longer than the
        dims declare (bytes expected vs found, and where the data ends); a broken gzip stream.
    """
    path = Path(path)
    raw = _read_bytes(path)
    where = f"{path.name}" + (" (after gunzip)" if path.suffix == ".gz" else "")
    if len(raw) < 4:
        raise DataError(
            f"{where}: truncated IDX header: need 4 bytes of magic at byte offset 0, found {len(raw)}."
        )
    magic = int.from_bytes(raw[:4], "big")
    dtype_byte, ndim = raw[2], raw[3]
    if expected_magic is not None and magic != expected_magic:
        raise DataError(
            f"{where}: bad IDX magic number at byte offset 0: found 0x{magic:08X}, expected "
            f"0x{expected_magic:08X}. Is this the right file (images 0x00000803, labels 0x00000801)?"
        )
    if raw[0] != 0 or raw[1] != 0 or dtype_byte not in IDX_DTYPES or ndim == 0:
        raise DataError(
            f"{where}: bad IDX magic number at byte offset 0: found 0x{magic:08X}, expected "
            f"0x0000TTNN with dtype byte TT in {{08, 09, 0B, 0C, 0D, 0E}} and NN >= 1 dims; "
            f"this is not an IDX file."
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(
            f"{where}: truncated IDX header: {ndim} dims need {header} bytes, the file has {len(raw)}."
        )
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = IDX_DTYPES[dtype_byte]
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    found = len(raw) - header
    if found != expected:
        problem = "truncated data" if found < expected else "trailing bytes after the data"
        raise DataError(
            f"{where}: {problem}: dims {dims} of {dtype.str} need {expected} bytes of data from "
            f"byte offset {header}, found {found} (the file ends at byte offset {len(raw)}, "
            f"the data should end at {header + expected})."
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return data.astype(dtype.newbyteorder("="))


def _read_bytes(path: Path) -> bytes:
    """All bytes of ``path``, gunzipped when it ends in ``.gz``."""
    if not path.is_file():
        raise DataError(f"{path}: no such file.")
    if path.suffix != ".gz":
        return path.read_bytes()
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"{path.name}: not a valid gzip file ({exc}); delete it and fetch it again.") from exc


def _find_idx(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def _has_idx_layout(folder: Path) -> bool:
    return all(_find_idx(folder, stem) is not None for stem in IDX_FILES.values())


def load_idx_folder(folder: str | os.PathLike[str], name: str | None = None) -> Dataset:
    """Load the standard four-file MNIST layout (also Fashion-MNIST, KMNIST...) from a folder.

    Files: ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each raw or ``.gz``.
    Pixels are divided by 255 into [0, 1] and images flattened.

    Shapes
    ------
    x : (m, rows * cols) float32 (784 for MNIST), y : (m,) int64, n_classes = 10.

    Raises
    ------
    DataError
        A file is missing, malformed (see :func:`read_idx`), or the image and
        label counts of a split disagree (both files and counts are named).
    """
    folder = Path(folder)
    paths = {}
    for key, stem in IDX_FILES.items():
        found = _find_idx(folder, stem)
        if found is None:
            raise DataError(
                f"{folder}: missing {stem} (or {stem}.gz); an MNIST folder needs all four IDX files."
            )
        paths[key] = found
    arrays = {}
    for split in ("train", "test"):
        images = read_idx(paths[f"{split}_images"], IDX_IMAGES_MAGIC)
        labels = read_idx(paths[f"{split}_labels"], IDX_LABELS_MAGIC)
        if images.shape[0] != labels.shape[0]:
            raise DataError(
                f"{paths[f'{split}_images'].name} has {images.shape[0]} images but "
                f"{paths[f'{split}_labels'].name} has {labels.shape[0]} labels; they must match."
            )
        arrays[split] = (
            images.reshape(images.shape[0], -1).astype(np.float32) / np.float32(255.0),
            labels.astype(np.int64),
        )
    n_classes = max(10, int(arrays["train"][1].max(initial=0)) + 1)
    return Dataset(*arrays["train"], *arrays["test"], name=name or folder.name, n_classes=n_classes)


# ----------------------------------------------------------------------------- CSV, NPZ, NPY


def _resolve_column(target: str | int, header: list[str] | None, n_cols: int, where: str) -> int:
    if isinstance(target, str):
        if header is None:
            raise ConfigError(f"{where}: target={target!r} names a column, but the file has no header row.")
        if target not in header:
            raise ConfigError(f"{where}: no column named {target!r}; the header has {header}.")
        return header.index(target)
    col = target + n_cols if target < 0 else target
    if not 0 <= col < n_cols:
        raise ConfigError(f"{where}: target column {target} is out of range for {n_cols} columns.")
    return col


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def read_csv(
    path: str | os.PathLike[str],
    target: str | int = -1,
    header: bool | None = None,
    delimiter: str = ",",
) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
    """Parse a numeric CSV table into inputs and one target column.

    Parameters
    ----------
    path : path-like
    target : str or int, default -1
        The target column, by header name or by 0-based index (negative counts from the end).
    header : bool, optional
        Whether the first row is a header; auto-detected when ``None`` (a header
        is a first row with any cell that is not a number).
    delimiter : str, default ","

    Returns
    -------
    x : (m, n_columns - 1) float64
    y : (m,) float64
    header : list of str, or None

    Raises
    ------
    DataError
        A non-numeric or empty cell, NaN or infinity, or a row with the wrong
        number of cells: the message names the file, the 1-based line of the file
        and the 1-based column (and its header name). An empty file or table.
    ConfigError
        An unknown target column.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file.")
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = [(reader_line, row) for reader_line, row in _csv_rows(f, delimiter) if row]
    if not rows:
        raise DataError(f"{path.name}: the CSV file is empty; the dataset has no rows.")
    first = rows[0][1]
    has_header = header if header is not None else not all(_is_number(c) for c in first)
    names = [c.strip() for c in first] if has_header else None
    body = rows[1:] if has_header else rows
    if not body:
        raise DataError(f"{path.name}: the CSV file has a header but no data rows; the dataset is empty.")
    n_cols = len(first)
    col_t = _resolve_column(target, names, n_cols, path.name)
    table = np.empty((len(body), n_cols), dtype=np.float64)
    for i, (line, row) in enumerate(body):
        if len(row) != n_cols:
            raise DataError(
                f"{path.name}: line {line} has {len(row)} cells, expected {n_cols} (as on line {rows[0][0]})."
            )
        for j, cell in enumerate(row):
            label = f"column {j + 1}" + (f" ({names[j]!r})" if names else "")
            try:
                value = float(cell)
            except ValueError:
                shown = "an empty cell" if not cell.strip() else f"{cell!r}"
                raise DataError(
                    f"{path.name}: line {line}, {label}: cannot parse {shown} as a number."
                ) from None
            if not np.isfinite(value):
                raise DataError(
                    f"{path.name}: line {line}, {label}: value {cell.strip()!r} is NaN or infinite; "
                    "clean or drop this row."
                )
            table[i, j] = value
    x = np.delete(table, col_t, axis=1)
    return x, table[:, col_t], names


def _csv_rows(f: Any, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """Rows with the 1-based line number of the file where each row starts."""
    reader = csv.reader(f, delimiter=delimiter)
    start = 1
    for row in reader:
        yield start, row
        start = reader.line_num + 1


def _task_of(y: np.ndarray, task: str) -> str:
    """``'auto'``: classification for integer dtypes or whole-number floats, else regression."""
    if task != "auto":
        if task not in TASKS:
            raise ConfigError(f"task must be 'auto' or one of {TASKS}, got {task!r}.")
        return task
    if np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.bool_):
        return "classification"
    y = np.asarray(y)
    return (
        "classification"
        if y.ndim == 1 and np.all(np.isfinite(y)) and np.all(y == np.round(y))
        else "regression"
    )


def load_csv(
    path: str | os.PathLike[str],
    *,
    target: str | int = -1,
    header: bool | None = None,
    delimiter: str = ",",
    task: str = "auto",
    n_classes: int | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> Dataset:
    """A CSV table as a Dataset, split seeded (stratified for classes) into train and test.

    ``task='auto'`` treats a target of whole numbers as class labels, anything
    else as regression. See :func:`read_csv` for parsing and its errors.
    """
    x, y, _ = read_csv(path, target=target, header=header, delimiter=delimiter)
    kind = _task_of(y, task)
    name = Path(path).name
    if kind == "classification":
        y = _as_labels(y, name, "target")
    parts = _split(x, y, test_fraction=test_fraction, seed=seed, stratify=kind == "classification", name=name)
    return Dataset(*parts, name=name, task=kind, n_classes=n_classes)


def load_npz(
    path: str | os.PathLike[str],
    *,
    task: str = "auto",
    n_classes: int | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> Dataset:
    """An ``.npz`` with keys ``x_train, y_train, x_test, y_test``, or ``x, y`` (split seeded here).

    Raises
    ------
    DataError
        Missing keys (the keys found are listed), NaN or infinity, bad labels, empty arrays.
    """
    path = Path(path)
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path.name}: cannot read as .npz: {exc}") from exc
    with z:
        keys = set(z.files)
        if {"x_train", "y_train", "x_test", "y_test"} <= keys:
            x_train, y_train, x_test, y_test = (z[k] for k in ("x_train", "y_train", "x_test", "y_test"))
            split = False
        elif {"x", "y"} <= keys:
            x, y = z["x"], z["y"]
            split = True
        else:
            raise DataError(
                f"{path.name}: expected arrays x_train, y_train, x_test, y_test (or x, y), "
                f"found {sorted(keys)}."
            )
    kind = _task_of(y_train if not split else y, task)
    if split:
        if len(x) == 0:
            raise DataError(f"{path.name}: the dataset is empty (x has 0 rows).")
        if kind == "classification":
            y = _as_labels(y, path.name, "y")
        _check_finite(np.asarray(x).reshape(len(x), -1), path.name, "x")
        x_train, y_train, x_test, y_test = _split(
            x, y, test_fraction=test_fraction, seed=seed, stratify=kind == "classification", name=path.name
        )
    return Dataset(x_train, y_train, x_test, y_test, name=path.name, task=kind, n_classes=n_classes)


def load_npy(
    path: str | os.PathLike[str],
    *,
    target: int = -1,
    task: str = "auto",
    n_classes: int | None = None,
    test_fraction: float = 0.2,
    mmap: bool = True,
    check_finite: bool = True,
) -> Dataset:
    """One 2-D ``.npy`` table, memory-mapped; the target is its first or last column.

    The inputs stay a memory-mapped view (nothing is read until used), so files
    larger than memory can be iterated with :func:`chainrule.data.iterate_batches`.
    The target column (m values) is read into memory.

    NOTE: to keep the memory map, the split is not shuffled: the last
    ``test_fraction`` of the rows is the test set. Shuffle the file beforehand,
    or use :func:`chainrule.data.train_val_split` on loaded arrays.

    Raises
    ------
    DataError
        Not a 2-D array, NaN or infinity (scanned in chunks; ``check_finite=False``
        skips the scan), bad labels, an empty table.
    ConfigError
        A target column other than the first or last.
    """
    path = Path(path)
    try:
        table = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path.name}: cannot read as .npy: {exc}") from exc
    if table.ndim != 2 or table.shape[1] < 2:
        raise DataError(f"{path.name}: expected a 2-D table (m, n_features + 1), got shape {table.shape}.")
    if table.shape[0] == 0:
        raise DataError(f"{path.name}: the dataset is empty (0 rows).")
    col = target + table.shape[1] if target < 0 else target
    if col not in (0, table.shape[1] - 1):
        raise ConfigError(f"{path.name}: target must be the first (0) or last (-1) column, got {target}.")
    x = table[:, 1:] if col == 0 else table[:, :-1]
    y = np.array(table[:, col])
    if check_finite:
        _check_finite(x, path.name, "x")
        _check_finite(y, path.name, "y")
    if not 0.0 <= test_fraction < 1.0:
        raise ConfigError(f"{path.name}: test_fraction must be in [0, 1), got {test_fraction!r}.")
    cut = table.shape[0] - round(test_fraction * table.shape[0])
    kind = _task_of(y, task)
    return Dataset(x[:cut], y[:cut], x[cut:], y[cut:], name=path.name, task=kind, n_classes=n_classes)


def load_npy_folder(
    folder: str | os.PathLike[str], *, task: str = "auto", n_classes: int | None = None, mmap: bool = True
) -> Dataset:
    """A folder of ``x_train.npy, y_train.npy, x_test.npy, y_test.npy``; the x files memory-mapped."""
    folder = Path(folder)
    arrays = {}
    for key in ("x_train", "y_train", "x_test", "y_test"):
        file = folder / f"{key}.npy"
        if not file.is_file():
            raise DataError(
                f"{folder}: missing {file.name}; an array folder needs x_train/y_train/x_test/y_test.npy."
            )
        try:
            arrays[key] = np.load(file, mmap_mode="r" if mmap and key[0] == "x" else None, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataError(f"{file}: cannot read as .npy: {exc}") from exc
    kind = _task_of(arrays["y_train"], task)
    return Dataset(**arrays, name=folder.name, task=kind, n_classes=n_classes)


# ----------------------------------------------------------------------------- opt-in download

MIRRORS: dict[str, tuple[str, ...]] = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
}
# Published SHA-256 digests of the gzip files (the same values appear in torchvision, chainer,
# tensorflow-datasets checksum tables and elsewhere; see docs/datasets.md).
SHA256: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
}
_NETWORK_ERRORS = (urllib.error.URLError, http.client.HTTPException, OSError, TimeoutError)


def download(
    name: str,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    mirrors: Sequence[str] | None = None,
    timeout: float = 30.0,
    retries: int = 3,
    sha256: Mapping[str, str] | None = None,
    backoff: float = 1.0,
) -> Path:
    """Fetch MNIST or Fashion-MNIST into ``<cache>/<name>/``, verified; the only network access.

    Each file is fetched from the first mirror that works, ``retries`` attempts
    per mirror with exponential ``backoff`` seconds between them. Bytes go to
    ``<file>.part``; an interrupted transfer is resumed with an HTTP Range request;
    the SHA-256 is checked before ``os.replace`` moves the file into place, so a
    partial or corrupt file never passes as a dataset. Files already present
    with the right digest are not fetched again.

    Parameters
    ----------
    name : {"mnist", "fashion-mnist"}
    cache_dir : path-like, optional
        See :func:`default_cache_dir`.
    mirrors : sequence of str, optional
        Base URLs, each followed by a file name; defaults to :data:`MIRRORS` ``[name]``.
    timeout : float
        Seconds for each connection and read.
    retries : int
        Attempts per mirror (>= 1).
    sha256 : mapping of file name to hex digest, optional
        Defaults to :data:`SHA256` ``[name]``; its keys are the files fetched.
    backoff : float
        Seconds before the second attempt, doubled after each.

    Returns
    -------
    Path
        The folder now holding the four verified ``.gz`` files.

    Raises
    ------
    ConfigError
        An unknown ``name``, or ``retries < 1``.
    DataError
        Every mirror failed for a file: each URL is listed with what went wrong.
    """
    if name not in SHA256 and sha256 is None:
        raise ConfigError(f"download: unknown dataset {name!r}; downloadable: {sorted(SHA256)}.")
    if retries < 1:
        raise ConfigError(f"download: retries must be >= 1, got {retries}.")
    digests = dict(sha256) if sha256 is not None else SHA256[name]
    bases = tuple(mirrors) if mirrors is not None else MIRRORS.get(name, ())
    if not bases:
        raise ConfigError(f"download: no mirrors for {name!r}; pass mirrors=[base_url, ...].")
    folder = default_cache_dir(cache_dir) / name
    folder.mkdir(parents=True, exist_ok=True)
    for filename, digest in digests.items():
        final = folder / filename
        if final.is_file() and _sha256_of(final) == digest:
            continue
        _fetch_verified(
            filename,
            digest=digest,
            bases=bases,
            final=final,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
        )
    return folder


def _fetch_verified(
    filename: str,
    *,
    digest: str,
    bases: Sequence[str],
    final: Path,
    timeout: float,
    retries: int,
    backoff: float,
) -> None:
    """Try each mirror in turn until ``final`` holds bytes with the right SHA-256."""
    part = final.with_name(final.name + ".part")
    failures = []
    for base in bases:
        url = base.rstrip("/") + "/" + filename
        for attempt in range(retries):
            try:
                _http_get_resume(url, part, timeout)
            except urllib.error.HTTPError as exc:
                failures.append(f"{url}: HTTP {exc.code} {exc.reason}")
                if exc.code in (403, 404, 410):
                    break  # the file is not there; retrying will not help
            except _NETWORK_ERRORS as exc:
                failures.append(f"{url}: {type(exc).__name__}: {exc}")
            else:
                found = _sha256_of(part)
                if found == digest:
                    os.replace(part, final)
                    return
                part.unlink()
                failures.append(f"{url}: SHA-256 mismatch: got {found}, expected {digest}")
                break  # this mirror serves other bytes; try the next one
            if attempt + 1 < retries:
                time.sleep(backoff * 2**attempt)
    raise DataError(
        f"could not download {filename} into {final.parent}; every mirror failed:\n  "
        + "\n  ".join(failures)
        + f"\nCheck the network, or fetch the file by hand into {final.parent} and load that folder."
    )


def _http_get_resume(url: str, part: Path, timeout: float) -> None:
    """GET ``url`` into ``part``, continuing from its current size with a Range request."""
    have = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "chainrule"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to send: the .part is already whole
            return
        raise
    with response:
        resumed = bool(have) and response.status == 206
        if resumed and not response.headers.get("Content-Range", "").startswith(f"bytes {have}-"):
            part.unlink()  # the server resumed from elsewhere; start clean on the next attempt
            raise ConnectionError(f"bad Content-Range {response.headers.get('Content-Range')!r} for a resume")
        expected = response.headers.get("Content-Length")
        written = 0
        with open(part, "ab" if resumed else "wb") as out:
            while chunk := response.read(1 << 20):
                out.write(chunk)
                written += len(chunk)
    # NOTE: http.client returns b"" rather than raising when a connection closes early,
    # so a short body is detected here; the .part stays for the next attempt to resume.
    if expected is not None and written < int(expected):
        raise ConnectionError(f"connection closed after {written} of {expected} bytes")


def _sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _cached_idx(name: str, download_: bool, cache_dir: str | os.PathLike[str] | None, **kw: Any) -> Dataset:
    folder = default_cache_dir(cache_dir) / name
    if not _has_idx_layout(folder):
        if not download_:
            raise DataError(
                f"{name} is not in the cache folder {folder}. Download it once with "
                f"chainrule.datasets.download({name!r}) or load({name!r}, download=True), "
                "or load a folder holding the four IDX files: load('path/to/folder')."
            )
        download(name, cache_dir=cache_dir, **kw)
    return load_idx_folder(folder, name=name)


def mnist(
    download: bool = False, cache_dir: str | os.PathLike[str] | None = None, **download_options: Any
) -> Dataset:
    """MNIST (60,000 / 10,000 handwritten digits, 28x28) from the cache; ``download=True`` fetches it once.

    Shapes
    ------
    x : (m, 784) float32 in [0, 1], y : (m,) int64.
    """
    return _cached_idx("mnist", download, cache_dir, **download_options)


def fashion_mnist(
    download: bool = False, cache_dir: str | os.PathLike[str] | None = None, **download_options: Any
) -> Dataset:
    """Fashion-MNIST (60,000 / 10,000 clothing images, 28x28) from the cache; ``download=True`` fetches it.

    Shapes
    ------
    x : (m, 784) float32 in [0, 1], y : (m,) int64.
    """
    return _cached_idx("fashion-mnist", download, cache_dir, **download_options)


# ----------------------------------------------------------------------------- one entry point

DATASETS: dict[str, Callable[..., Dataset]] = {
    "digits": digits,
    "mnist1d": mnist1d,
    "moons": moons,
    "spirals": spirals,
    "xor": xor,
    "regression": regression,
    "teacher": teacher,
    "mnist": mnist,
    "fashion-mnist": fashion_mnist,
}


def load(name_or_path: str | os.PathLike[str], **options: Any) -> Dataset:
    """Load a registered dataset by name, or a dataset file or folder by path.

    Parameters
    ----------
    name_or_path : str or path-like
        A key of :data:`DATASETS`, or a path: a folder of MNIST IDX files or of
        ``x_train.npy``..., a ``.csv``, ``.npz`` or ``.npy`` file.
    **options
        Passed to the loader (e.g. ``seed=1``, ``target="label"``).

    Raises
    ------
    ConfigError
        Neither a known name nor an existing path; an option the loader does not take.
    DataError
        From the loader: a malformed file.

    Examples
    --------
    >>> load("xor", n_train=8, n_test=4)
    Dataset(name='xor', task='classification', n_classes=2, x_train=(8, 2) float32, y_train=(8,) int64, \
x_test=(4, 2) float32, y_test=(4,) int64)
    """
    key = str(name_or_path)
    if key in DATASETS:
        return _call(DATASETS[key], key, options)
    path = Path(name_or_path)
    if path.is_dir():
        if _has_idx_layout(path):
            return _call(load_idx_folder, key, options)
        if (path / "x_train.npy").is_file():
            return _call(load_npy_folder, key, options)
        raise DataError(
            f"{path}: folder holds neither the four MNIST IDX files ({', '.join(IDX_FILES.values())}) "
            "nor x_train.npy, y_train.npy, x_test.npy, y_test.npy."
        )
    readers: dict[str, Callable[..., Dataset]] = {
        ".csv": load_csv,
        ".tsv": load_csv,
        ".npz": load_npz,
        ".npy": load_npy,
    }
    if path.is_file() and path.suffix.lower() in readers:
        if path.suffix.lower() == ".tsv":
            options.setdefault("delimiter", "\t")
        return _call(readers[path.suffix.lower()], key, options)
    if path.is_file():
        raise ConfigError(
            f"{path}: unknown file type {path.suffix!r}; use .csv, .tsv, .npz, .npy or an IDX folder."
        )
    raise ConfigError(
        f"load: {key!r} is neither a dataset name ({', '.join(DATASETS)}) nor an existing file or folder."
    )


def _call(loader: Callable[..., Any], what: str, options: dict[str, Any]) -> Dataset:
    """Call ``loader(what, **options)`` (or ``loader(**options)`` for names), options checked first."""
    signature = inspect.signature(loader)
    takes_path = loader not in DATASETS.values()
    args = (what,) if takes_path else ()
    try:
        signature.bind(*args, **options)
    except TypeError:
        accepted = [p for p in signature.parameters if p not in ("path", "folder", "download_options")]
        unknown = sorted(set(options) - set(accepted))
        raise ConfigError(
            f"load({what!r}): unknown option(s) {unknown}; {loader.__name__} accepts {accepted}."
        ) from None
    return loader(*args, **options)


__all__ = [
    "DATASETS",
    "Dataset",
    "IDX_IMAGES_MAGIC",
    "IDX_LABELS_MAGIC",
    "MIRRORS",
    "SHA256",
    "default_cache_dir",
    "digits",
    "download",
    "fashion_mnist",
    "load",
    "load_csv",
    "load_idx_folder",
    "load_npy",
    "load_npy_folder",
    "load_npz",
    "mnist",
    "mnist1d",
    "moons",
    "read_csv",
    "read_idx",
    "regression",
    "spirals",
    "teacher",
    "xor",
]
