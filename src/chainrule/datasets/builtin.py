"""Embedded and generated datasets: digits, MNIST-1D, and the synthetic teaching sets.

Part of :mod:`chainrule.datasets` (level 5). Nothing here reads a user file or the network.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import random
from collections.abc import Sequence
from typing import Any

import numpy as np

from chainrule.datasets._core import Dataset, _save_npz_atomic, _split, default_cache_dir
from chainrule.errors import ConfigError

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


def circles(
    n_train: int = 800, n_test: int = 200, noise: float = 0.05, factor: float = 0.5, seed: int = 0
) -> Dataset:
    """A small circle inside a large one (scikit-learn ``make_circles``), 2 classes.

    Class 0 is the outer circle (radius 1), class 1 the inner one (radius ``factor``);
    ``noise`` is the standard deviation of Gaussian jitter added to the points.

    Shapes
    ------
    x : (m, 2) float32, y : (m,) int64 in {0, 1}.
    """
    from sklearn.datasets import make_circles

    _check_counts("circles", n_train, n_test)
    if not 0.0 < factor < 1.0:
        raise ConfigError(f"circles: factor (inner radius / outer radius) must be in (0, 1), got {factor}.")
    x, y = make_circles(n_samples=n_train + n_test, noise=noise, factor=factor, random_state=seed)
    return _from_generated("circles", x, y, n_train, n_classes=2)


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
