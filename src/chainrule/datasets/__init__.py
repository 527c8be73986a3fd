"""Datasets as plain NumPy arrays: embedded, generated, read from files, or downloaded (level 5).

Everything here returns a :class:`Dataset`: four arrays and a little metadata.
Preprocessing, splits and batch iteration live in :mod:`chainrule.data`, which
works on the arrays and never imports this module (both are level 5).

One entry point, :func:`load`, takes a registered name (see :data:`DATASETS`) or
a path, and dispatches on it:

==========================  ==================================================
``load("digits")``          scikit-learn's 8x8 digits, pixels scaled to [0, 1]
``load("mnist1d")``         MNIST-1D, generated locally by the ``mnist1d`` package
``load("moons")`` ...       synthetic teaching sets: moons, circles, spirals, xor,
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

The package, one concern per file (this file keeps :data:`DATASETS` and :func:`load`):

==========================  ==================================================
``_core``                   :class:`Dataset`, its validation, seeded splits, the cache folder
``builtin``                 digits, MNIST-1D and the synthetic sets
``files``                   IDX, CSV, NPZ and NPY readers (CSV targets decided by :mod:`chainrule.tables`)
``fetch``                   the opt-in download: mirrors, SHA-256 digests, MNIST from the cache
==========================  ==================================================
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chainrule.datasets._core import TASKS as TASKS
from chainrule.datasets._core import Dataset, default_cache_dir
from chainrule.datasets.builtin import circles, digits, mnist1d, moons, regression, spirals, teacher, xor
from chainrule.datasets.fetch import MIRRORS, SHA256, download, fashion_mnist, mnist
from chainrule.datasets.files import IDX_DTYPES as IDX_DTYPES
from chainrule.datasets.files import (
    IDX_FILES,
    IDX_IMAGES_MAGIC,
    IDX_LABELS_MAGIC,
    _has_idx_layout,
    load_csv,
    load_idx_folder,
    load_npy,
    load_npy_folder,
    load_npz,
    read_csv,
    read_idx,
    read_inputs,
    read_npy,
)
from chainrule.errors import ConfigError, DataError

# ----------------------------------------------------------------------------- one entry point

DATASETS: dict[str, Callable[..., Dataset]] = {
    "digits": digits,
    "mnist1d": mnist1d,
    "moons": moons,
    "circles": circles,
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


def downloaded(name: str, cache_dir: str | os.PathLike[str] | None = None) -> bool:
    """Whether the opt-in data set ``name`` (``mnist``, ``fashion-mnist``) is in the cache folder."""
    return _has_idx_layout(default_cache_dir(cache_dir) / name)


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
    "circles",
    "default_cache_dir",
    "digits",
    "download",
    "downloaded",
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
    "read_inputs",
    "read_npy",
    "regression",
    "spirals",
    "teacher",
    "xor",
]
