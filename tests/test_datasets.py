"""Tests of chainrule.datasets: embedded sets, file readers and their errors, opt-in download.

Everything is offline: files are written to tmp_path, and the download tests
talk to a small http.server on 127.0.0.1.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import random
import re
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from chainrule import datasets
from chainrule.datasets import DATASETS, Dataset, download, load, read_idx
from chainrule.errors import ConfigError, DataError, LimitError


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test writes to the real ~/.cache."""
    monkeypatch.setenv("CHAINRULE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


# ----------------------------------------------------------------------------- the container


def test_dataset_repr_and_dtypes() -> None:
    ds = Dataset(np.zeros((4, 3), np.float64), [0, 1, 2, 1], np.zeros((2, 3)), [0, 0], name="toy")
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert ds.n_classes == 3 and ds.n_features == 3
    assert repr(ds) == (
        "Dataset(name='toy', task='classification', n_classes=3, x_train=(4, 3) float32, "
        "y_train=(4,) int64, x_test=(2, 3) float32, y_test=(2,) int64)"
    )


def test_dataset_regression_targets_become_2d() -> None:
    ds = Dataset(np.zeros((3, 1)), np.array([0.5, 1.5, 2.0]), np.zeros((1, 1)), [1.0], task="regression")
    assert ds.y_train.shape == (3, 1) and ds.y_train.dtype == np.float32 and ds.n_classes is None


def test_dataset_empty_is_an_error() -> None:
    with pytest.raises(DataError, match=r"toy: the dataset is empty \(x_train has 0 rows\)"):
        Dataset(np.zeros((0, 2)), np.zeros(0, int), np.zeros((0, 2)), np.zeros(0, int), name="toy")


def test_dataset_negative_label() -> None:
    with pytest.raises(DataError, match=r"toy: y_train\[1\] = -1 is a negative class label"):
        Dataset(np.zeros((2, 1)), [0, -1], np.zeros((1, 1)), [0], name="toy")


def test_dataset_label_beyond_n_classes() -> None:
    with pytest.raises(
        DataError, match=r"toy: y_test\[0\] = 3 is out of range for n_classes=3 \(labels must be 0 .. 2\)"
    ):
        Dataset(np.zeros((2, 1)), [0, 1], np.zeros((1, 1)), [3], name="toy", n_classes=3)


def test_dataset_nan_names_the_row() -> None:
    x = np.zeros((5, 2))
    x[3, 1] = np.inf
    with pytest.raises(DataError, match=r"toy: x_train contains NaN or infinity \(first at row 3, column 1"):
        Dataset(x, np.zeros(5, int), np.zeros((1, 2)), [0], name="toy")


def test_dataset_bad_task() -> None:
    with pytest.raises(ConfigError, match="task must be one of"):
        Dataset(np.zeros((1, 1)), [0], np.zeros((1, 1)), [0], task="ranking")


def test_dataset_rows_disagree() -> None:
    with pytest.raises(DataError, match="x_train has 2 rows but y_train has 3"):
        Dataset(np.zeros((2, 1)), [0, 1, 1], np.zeros((1, 1)), [0])


# ----------------------------------------------------------------------------- embedded sets


def test_registry_names() -> None:
    expected = {
        "digits",
        "mnist1d",
        "moons",
        "circles",
        "spirals",
        "xor",
        "regression",
        "teacher",
        "mnist",
        "fashion-mnist",
    }
    assert expected <= set(DATASETS)


def test_digits_split_is_stratified_and_seeded() -> None:
    ds = load("digits")
    assert ds.x_train.shape == (1437, 64) and ds.x_test.shape == (360, 64)
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0
    counts = np.bincount(ds.y_test, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37  # ~180 per class * 0.2
    again = load("digits")
    assert np.array_equal(ds.x_test, again.x_test)
    assert not np.array_equal(ds.y_test, load("digits", seed=1).y_test)


@pytest.mark.parametrize(
    ("name", "options", "n_features", "n_classes"),
    [
        ("moons", {}, 2, 2),
        ("circles", {"noise": 0.0}, 2, 2),
        ("spirals", {"n_arms": 5}, 2, 5),
        ("xor", {"noise": 0.05}, 2, 2),
        (
            "teacher",
            {"n_train": 500, "n_test": 100, "n_features": 20, "hidden": (8, 8), "n_classes": 4},
            20,
            4,
        ),
    ],
)
def test_synthetic_classification_sets(name: str, options: dict, n_features: int, n_classes: int) -> None:
    ds = load(name, **options)
    assert ds.task == "classification" and ds.n_classes == n_classes and ds.n_features == n_features
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert set(np.unique(ds.y_train)) <= set(range(n_classes))
    assert np.array_equal(ds.x_train, load(name, **options).x_train)  # seeded
    assert not np.array_equal(ds.x_train, load(name, **options, seed=7).x_train)


def test_xor_labels_follow_the_signs() -> None:
    ds = load("xor", n_train=50, n_test=0)
    assert np.array_equal(ds.y_train, (np.sign(ds.x_train[:, 0]) != np.sign(ds.x_train[:, 1])).astype(int))


def test_circles_inner_class_is_the_small_circle() -> None:
    ds = load("circles", n_train=100, n_test=0, noise=0.0, factor=0.3)
    radius = np.hypot(ds.x_train[:, 0], ds.x_train[:, 1])
    np.testing.assert_allclose(radius[ds.y_train == 0], 1.0, atol=1e-6)
    np.testing.assert_allclose(radius[ds.y_train == 1], 0.3, atol=1e-6)
    with pytest.raises(
        ConfigError, match=r"circles: factor \(inner radius / outer radius\) must be in \(0, 1\), got 1.5"
    ):
        load("circles", factor=1.5)


def test_regression_set() -> None:
    ds = load("regression", noise=0.0)
    assert ds.task == "regression" and ds.n_classes is None and ds.y_train.shape == (200, 1)
    np.testing.assert_allclose(ds.y_train, np.sin(ds.x_train), atol=1e-6)


def test_teacher_is_sparse_balanced_float32() -> None:
    ds = load("teacher", n_train=3000, n_test=10, n_features=100)
    assert ds.x_train.dtype == np.float32
    assert 0.75 < np.mean(ds.x_train == 0) < 0.85
    assert np.bincount(ds.y_train, minlength=10).min() > 50  # every class present


@pytest.fixture(scope="module")
def mnist1d_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mnist1d-cache")


def test_mnist1d_generated_and_cached(mnist1d_cache: Path) -> None:
    py_state, np_state = random.getstate(), np.random.get_state()
    ds = load("mnist1d", cache_dir=mnist1d_cache)
    assert random.getstate() == py_state  # the package reseeds the globals; we restore them
    assert np.array_equal(np.random.get_state()[1], np_state[1])
    assert ds.x_train.shape == (4000, 40) and ds.x_test.shape == (1000, 40) and ds.n_classes == 10
    cached = list((mnist1d_cache / "mnist1d").glob("mnist1d-*.npz"))
    assert len(cached) == 1
    again = load("mnist1d", cache_dir=mnist1d_cache)
    assert np.array_equal(again.x_train, ds.x_train) and np.array_equal(again.y_test, ds.y_test)


def test_mnist1d_without_cache_is_deterministic(mnist1d_cache: Path) -> None:
    fresh = datasets.mnist1d(num_samples=500, cache=False)
    assert fresh.x_train.shape == (400, 40)
    assert np.array_equal(fresh.x_train, datasets.mnist1d(num_samples=500, cache=False).x_train)


def test_load_unknown_name() -> None:
    with pytest.raises(ConfigError, match=r"'nope' is neither a dataset name \(digits, "):
        load("nope")


def test_load_unknown_option() -> None:
    with pytest.raises(
        ConfigError, match=r"load\('moons'\): unknown option\(s\) \['colour'\]; moons accepts"
    ):
        load("moons", colour="red")


def test_mnist_not_cached_says_how_to_download(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"mnist is not in the cache folder .*download\('mnist'\)"):
        load("mnist", cache_dir=tmp_path)


# ----------------------------------------------------------------------------- IDX files


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    """An IDX file of a uint8 array (the MNIST layout)."""
    magic = magic if magic is not None else 0x0800 | array.ndim
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_mnist_folder(
    folder: Path, n_train: int = 12, n_test: int = 5, gz: bool = True, seed: int = 0
) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test),
    }
    for stem, array in arrays.items():
        data = idx_bytes(array)
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(data, mtime=0))
        else:
            (folder / stem).write_bytes(data)
    return folder


def test_read_idx_roundtrip_raw_and_gz(tmp_path: Path) -> None:
    images = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    (tmp_path / "a-idx3-ubyte").write_bytes(idx_bytes(images))
    (tmp_path / "a-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images)))
    for name in ("a-idx3-ubyte", "a-idx3-ubyte.gz"):
        out = read_idx(tmp_path / name, datasets.IDX_IMAGES_MAGIC)
        assert out.shape == (2, 3, 4) and out.dtype == np.uint8 and np.array_equal(out, images)


def test_read_idx_big_endian_int32(tmp_path: Path) -> None:
    values = np.array([1, -2, 70000], dtype=">i4")
    (tmp_path / "v.idx").write_bytes(struct.pack(">I", 0x00000C01) + struct.pack(">I", 3) + values.tobytes())
    out = read_idx(tmp_path / "v.idx")
    assert out.tolist() == [1, -2, 70000] and out.dtype == np.dtype("int32")


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_folder(tmp_path: Path, gz: bool) -> None:
    folder = write_mnist_folder(tmp_path / "mnist", gz=gz)
    ds = load(str(folder))
    assert ds.x_train.shape == (12, 784) and ds.x_test.shape == (5, 784) and ds.n_classes == 10
    assert ds.x_train.dtype == np.float32 and 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0
    assert ds.name == "mnist"


def test_idx_wrong_magic(tmp_path: Path) -> None:
    folder = write_mnist_folder(tmp_path / "m", gz=False)
    # put a labels file where the images belong
    (folder / "train-images-idx3-ubyte").write_bytes((folder / "train-labels-idx1-ubyte").read_bytes())
    with pytest.raises(
        DataError,
        match=r"train-images-idx3-ubyte: bad IDX magic number at byte offset 0: "
        r"found 0x00000801, expected 0x00000803",
    ):
        load(str(folder))


def test_idx_not_an_idx_file(tmp_path: Path) -> None:
    (tmp_path / "x.idx").write_bytes(b"PK\x03\x04" + bytes(20))
    with pytest.raises(
        DataError, match=r"x.idx: bad IDX magic number at byte offset 0: found 0x504B0304, expected"
    ):
        read_idx(tmp_path / "x.idx")


def test_idx_truncated_data(tmp_path: Path) -> None:
    data = idx_bytes(np.zeros((3, 28, 28)))  # 16-byte header + 2352 bytes
    (tmp_path / "t-idx3-ubyte.gz").write_bytes(gzip.compress(data[:-100]))
    expected = (
        r"t-idx3-ubyte.gz \(after gunzip\): truncated data: dims \(3, 28, 28\) of \|u1 "
        r"need 2352 bytes of data from byte offset 16, found 2252 "
        r"\(the file ends at byte offset 2268, the data should end at 2368\)"
    )
    with pytest.raises(DataError, match=expected):
        read_idx(tmp_path / "t-idx3-ubyte.gz", datasets.IDX_IMAGES_MAGIC)


def test_idx_trailing_bytes(tmp_path: Path) -> None:
    (tmp_path / "l-idx1-ubyte").write_bytes(idx_bytes(np.zeros(4)) + b"\x00\x00")
    with pytest.raises(
        DataError, match=r"l-idx1-ubyte: trailing bytes after the data: dims \(4,\) .* found 6"
    ):
        read_idx(tmp_path / "l-idx1-ubyte")


def test_idx_truncated_header(tmp_path: Path) -> None:
    (tmp_path / "h").write_bytes(struct.pack(">I", 0x00000803) + b"\x00\x00")
    with pytest.raises(DataError, match=r"h: truncated IDX header: 3 dims need 16 bytes, the file has 6"):
        read_idx(tmp_path / "h")


def test_idx_counts_disagree(tmp_path: Path) -> None:
    folder = write_mnist_folder(tmp_path / "m", gz=True)
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(4))))
    with pytest.raises(
        DataError, match=r"t10k-images-idx3-ubyte.gz has 5 images but t10k-labels-idx1-ubyte.gz has 4 labels"
    ):
        load(str(folder))


def test_idx_bad_gzip(tmp_path: Path) -> None:
    (tmp_path / "b.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match=r"b.gz: not a valid gzip file"):
        read_idx(tmp_path / "b.gz")


def test_idx_folder_missing_file(tmp_path: Path) -> None:
    folder = write_mnist_folder(tmp_path / "m")
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="missing t10k-labels-idx1-ubyte"):
        datasets.load_idx_folder(folder)


# ----------------------------------------------------------------------------- CSV


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_csv_header_autodetect_and_target_by_name(tmp_path: Path) -> None:
    f = write(tmp_path / "d.csv", "label,a,b\n" + "".join(f"{i % 2},{i},{2 * i}\n" for i in range(20)))
    ds = load(str(f), target="label", test_fraction=0.25)
    assert ds.task == "classification" and ds.n_classes == 2
    assert ds.x_train.shape == (15, 2) and ds.x_test.shape == (5, 2)
    assert np.all(ds.x_train[:, 1] == 2 * ds.x_train[:, 0])


def test_csv_no_header_default_last_column_regression(tmp_path: Path) -> None:
    f = write(tmp_path / "r.csv", "".join(f"{i},{i * 0.5 + 0.25}\n" for i in range(10)))
    ds = load(str(f), test_fraction=0.2)
    assert ds.task == "regression" and ds.y_train.shape == (8, 1)
    np.testing.assert_allclose(ds.y_train[:, 0], ds.x_train[:, 0] * 0.5 + 0.25)


def test_csv_explicit_header_false_and_index(tmp_path: Path) -> None:
    f = write(tmp_path / "i.csv", "1,5,6\n0,7,8\n1,9,10\n0,1,2\n1,3,4\n")
    x, y, names = datasets.read_csv(f, target=0, header=False)
    assert names is None and y.tolist() == [1, 0, 1, 0, 1] and x[0].tolist() == [5, 6]


def test_csv_non_numeric_cell(tmp_path: Path) -> None:
    f = write(tmp_path / "bad.csv", "a,b,y\n1,2,0\n3,abc,1\n")
    with pytest.raises(DataError, match=r"bad.csv: line 3, column 2 \('b'\): cannot parse 'abc' as a number"):
        load(str(f))


def test_csv_empty_cell(tmp_path: Path) -> None:
    f = write(tmp_path / "e.csv", "1,2,0\n\n3,,1\n")
    with pytest.raises(DataError, match=r"e.csv: line 3, column 2: cannot parse an empty cell as a number"):
        load(str(f))


@pytest.mark.parametrize("value", ["nan", "inf", "-Infinity"])
def test_csv_nan_or_inf(tmp_path: Path, value: str) -> None:
    f = write(tmp_path / "n.csv", f"a,y\n1,0\n2,1\n{value},0\n")
    with pytest.raises(
        DataError, match=rf"n.csv: line 4, column 1 \('a'\): value '{value}' is NaN or infinite"
    ):
        load(str(f))


def test_csv_ragged_row(tmp_path: Path) -> None:
    f = write(tmp_path / "g.csv", "1,2,0\n3,4\n")
    with pytest.raises(DataError, match=r"g.csv: line 2 has 2 cells, expected 3"):
        load(str(f))


def test_csv_empty_file_and_header_only(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"empty.csv: the CSV file is empty"):
        load(str(write(tmp_path / "empty.csv", "\n")))
    with pytest.raises(DataError, match=r"head.csv: the CSV file has a header but no data rows"):
        load(str(write(tmp_path / "head.csv", "a,b\n")))


def test_csv_unknown_target(tmp_path: Path) -> None:
    f = write(tmp_path / "t.csv", "a,b\n1,0\n")
    with pytest.raises(ConfigError, match=r"t.csv: no column named 'z'; the header has \['a', 'b'\]"):
        load(str(f), target="z")


def test_csv_more_classes_than_n_classes(tmp_path: Path) -> None:
    f = write(tmp_path / "c.csv", "".join(f"{i},{i % 3}\n" for i in range(12)))
    with pytest.raises(
        DataError, match=r"c.csv: the target \(column 2\) has 3 classes \(0, 1, 2\), more than n_classes=2"
    ):
        load(str(f), n_classes=2)


def test_csv_negative_labels_are_classes(tmp_path: Path) -> None:
    f = write(tmp_path / "neg.csv", "".join(f"{i},{(i % 2) - 1}\n" for i in range(10)))
    ds = load(str(f))
    assert ds.classes == [-1, 0] and set(ds.y_train.tolist()) == {0, 1}


# ----------------------------------------------------------------------------- NPZ / NPY


def test_npz_four_keys(tmp_path: Path) -> None:
    f = tmp_path / "s.npz"
    np.savez(f, x_train=np.ones((4, 3)), y_train=[0, 1, 2, 1], x_test=np.ones((2, 3)), y_test=[1, 0])
    ds = load(str(f))
    assert ds.x_train.shape == (4, 3) and ds.n_classes == 3 and ds.name == "s.npz"


def test_npz_x_y_split(tmp_path: Path) -> None:
    f = tmp_path / "xy.npz"
    np.savez(f, x=np.arange(40.0).reshape(20, 2), y=np.arange(20) % 2)
    ds = load(str(f), test_fraction=0.5, seed=3)
    assert ds.x_train.shape == (10, 2) and np.bincount(ds.y_test).tolist() == [5, 5]


def test_npz_missing_keys(tmp_path: Path) -> None:
    f = tmp_path / "k.npz"
    np.savez(f, inputs=np.ones((2, 2)))
    with pytest.raises(
        DataError,
        match=r"k.npz: expected arrays x_train, y_train, x_test, y_test \(or x, y\), found \['inputs'\]",
    ):
        load(str(f))


def test_npz_nan_names_the_file(tmp_path: Path) -> None:
    f = tmp_path / "nan.npz"
    x = np.ones((6, 2))
    x[4, 0] = np.nan
    np.savez(f, x=x, y=[0, 1, 0, 1, 0, 1])
    with pytest.raises(DataError, match=r"nan.npz: x contains NaN or infinity \(first at row 4, column 0"):
        load(str(f))


def test_npz_empty(tmp_path: Path) -> None:
    f = tmp_path / "z.npz"
    np.savez(f, x=np.ones((0, 2)), y=np.ones(0, int))
    with pytest.raises(DataError, match=r"z.npz: the dataset is empty"):
        load(str(f))


def test_npy_is_memory_mapped(tmp_path: Path) -> None:
    table = np.hstack([np.arange(20.0).reshape(10, 2) + 0.5, (np.arange(10) % 2)[:, None]]).astype(np.float32)
    np.save(tmp_path / "t.npy", table)
    ds = load(str(tmp_path / "t.npy"), test_fraction=0.2)
    assert isinstance(ds.x_train, np.memmap) and "memmap" in repr(ds)
    assert ds.x_train.shape == (8, 2) and ds.y_test.tolist() == [0, 1] and ds.n_classes == 2
    first = load(str(tmp_path / "t.npy"), target=0, test_fraction=0.2)
    assert first.task == "regression" and first.x_train.shape == (8, 2)


def test_npy_target_in_the_middle(tmp_path: Path) -> None:
    np.save(tmp_path / "m.npy", np.zeros((4, 3)))
    with pytest.raises(
        ConfigError, match=r"m.npy: target must be the first \(0\) or last \(-1\) column, got 1"
    ):
        load(str(tmp_path / "m.npy"), target=1)


def test_npy_inf_names_the_file(tmp_path: Path) -> None:
    table = np.zeros((5000, 3), np.float32)
    table[4500, 1] = -np.inf
    np.save(tmp_path / "inf.npy", table)
    with pytest.raises(DataError, match=r"inf.npy: x contains NaN or infinity \(first at row 4500, column 1"):
        load(str(tmp_path / "inf.npy"))


def test_npy_not_2d(tmp_path: Path) -> None:
    np.save(tmp_path / "v.npy", np.zeros(5))
    with pytest.raises(DataError, match=r"v.npy: expected a 2-D table"):
        load(str(tmp_path / "v.npy"))


def test_npy_folder(tmp_path: Path) -> None:
    for key, arr in {
        "x_train": np.ones((6, 4), np.float32),
        "y_train": np.arange(6) % 3,
        "x_test": np.ones((2, 4), np.float32),
        "y_test": np.array([0, 2]),
    }.items():
        np.save(tmp_path / f"{key}.npy", arr)
    ds = load(str(tmp_path))
    assert isinstance(ds.x_train, np.memmap) and ds.n_classes == 3


def test_folder_of_nothing(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="folder holds neither the four MNIST IDX files"):
        load(str(tmp_path))


def test_unknown_file_type(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown file type '.parquet'"):
        load(str(write(tmp_path / "d.parquet", "x")))


# ----------------------------------------------------------------------------- hostile files (issue 14)


def idx_header(magic: int, dims: tuple[int, ...]) -> bytes:
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims)


def test_idx_dims_whose_product_wraps_are_not_zero(tmp_path: Path) -> None:
    """(65536,) * 4 is 2**64: an int64 product wraps to 0 and an empty file looked complete."""
    (tmp_path / "w-idx4-ubyte").write_bytes(idx_header(0x0804, (65536,) * 4))
    with pytest.raises(
        DataError, match=r"w-idx4-ubyte: truncated data: dims \(65536, 65536, 65536, 65536\) of \|u1 need "
        r"18446744073709551616 bytes of data from byte offset 20, found 0"
    ):  # fmt: skip
        read_idx(tmp_path / "w-idx4-ubyte")
    (tmp_path / "w-idx4-ubyte.gz").write_bytes(gzip.compress(idx_header(0x0804, (65536,) * 4)))
    with pytest.raises(
        LimitError, match=r"w-idx4-ubyte.gz \(after gunzip\): 18446744073709551636 bytes declared by"
    ):
        read_idx(tmp_path / "w-idx4-ubyte.gz")


def test_an_idx_folder_with_zero_images(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    for stem, dims in zip(datasets.IDX_FILES.values(), [(0, 28, 28), (0,), (0, 28, 28), (0,)], strict=True):
        (folder / stem).write_bytes(idx_header(0x0800 | len(dims), dims))
    with pytest.raises(DataError, match=r"m: the dataset is empty \(x_train has 0 rows\)"):
        load(str(folder))
    assert read_idx(folder / "train-images-idx3-ubyte").shape == (0, 28, 28)


@pytest.mark.parametrize(("flip", "kind"), [(10, "Error -3 while decompressing"), (0, "Not a gzipped file")])
def test_a_corrupt_gzip_stream_is_a_data_error_with_the_offset(tmp_path: Path, flip: int, kind: str) -> None:
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (5, 28, 28))
    arr[:, :10] = 0
    data = bytearray(gzip.compress(idx_bytes(arr), mtime=0))
    data[flip] ^= 0xFF
    (tmp_path / "c-idx3-ubyte.gz").write_bytes(bytes(data))
    with pytest.raises(
        DataError, match=rf"c-idx3-ubyte.gz: not a valid gzip file: .*{kind}.* compressed byte offset \d+"
    ):
        read_idx(tmp_path / "c-idx3-ubyte.gz")


def test_a_gzip_with_a_bad_crc_or_cut_short_is_refused(tmp_path: Path) -> None:
    data = bytearray(gzip.compress(idx_bytes(np.arange(300) % 256), mtime=0))
    data[-6] ^= 0x01  # inside the CRC-32 of the trailer
    (tmp_path / "crc-idx1-ubyte.gz").write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"crc-idx1-ubyte.gz: not a valid gzip file: CRC check failed"):
        read_idx(tmp_path / "crc-idx1-ubyte.gz")
    (tmp_path / "cut-idx1-ubyte.gz").write_bytes(bytes(data[:-20]))
    with pytest.raises(DataError, match=r"cut-idx1-ubyte.gz: not a valid gzip file: Compressed file ended"):
        read_idx(tmp_path / "cut-idx1-ubyte.gz")


def test_image_and_label_counts_are_compared_from_the_headers_before_any_data(tmp_path: Path) -> None:
    """The images file declares 300,000 images of zeros (a bomb); its data is never expanded."""
    folder = write_mnist_folder(tmp_path / "m", gz=True)
    bomb = gzip.compress(idx_header(0x0803, (300_000, 28, 28)) + bytes(1 << 20), mtime=0)
    (folder / "train-images-idx3-ubyte.gz").write_bytes(bomb)  # also cut short: never read that far
    with pytest.raises(
        DataError, match=r"train-images-idx3-ubyte.gz has 300000 images but train-labels-idx1-ubyte.gz has 12"
    ):
        load(str(folder))


def test_gzip_over_the_decompressed_limit(tmp_path: Path) -> None:
    from chainrule import limits

    (tmp_path / "l-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros((50, 28, 28))), mtime=0))
    with limits.override(max_decompressed_bytes=10_000):
        with pytest.raises(
            LimitError,
            match=r"39216 bytes declared by dims \(50, 28, 28\) is over the limit max_decompressed_bytes = "
            r"10000 .* --max-decompressed-bytes N",
        ):
            read_idx(tmp_path / "l-idx3-ubyte.gz")
    assert read_idx(tmp_path / "l-idx3-ubyte.gz").shape == (50, 28, 28)


def test_a_csv_field_over_the_limit_names_the_line_and_the_option(tmp_path: Path) -> None:
    import csv

    f = write(tmp_path / "big.csv", "a,b\n1,0\n" + "0" * 140_000 + ",1\n")
    before = csv.field_size_limit()
    with pytest.raises(
        LimitError,
        match=r"big.csv: line 3: a field is longer than the limit max_csv_field = 131072 characters\. "
        r".*--max-csv-field N",
    ):
        load(str(f))
    assert csv.field_size_limit() == before  # the csv module's process-wide limit is given back
    from chainrule import limits

    with limits.override(max_csv_field=200_000):
        x, _, _ = datasets.read_csv(f)
    assert x.shape == (2, 1)


def test_a_csv_that_is_not_utf8_names_the_line_and_byte_offset(tmp_path: Path) -> None:
    f = tmp_path / "latin1.csv"
    f.write_bytes("a,b\n1,0\ncaf\xe9,1\n".encode("latin-1"))
    with pytest.raises(
        DataError, match=r"latin1.csv: line 3, byte offset 11: not UTF-8 \(bytes e9\); save the file as UTF-8"
    ):
        load(str(f))


def test_a_label_of_three_million_is_refused_before_a_model_is_built(tmp_path: Path) -> None:
    """Integer labels of an array file are class numbers: label 3,000,000 implies 3,000,001 classes."""
    x = np.arange(84.0).reshape(42, 2)
    y = np.array([i % 2 for i in range(40)] + [3_000_000, 3_000_000])
    np.savez(tmp_path / "big-label.npz", x=x, y=y)
    with pytest.raises(
        LimitError,
        match=r"big-label.npz: 3000001 classes \(the label 3000000 at y_(train|test)\[\d+\] implies them\) "
        r"is over the limit max_classes = 100000 .* --max-classes N",
    ):
        load(str(tmp_path / "big-label.npz"))


def test_a_csv_label_of_three_million_is_one_class_of_three(tmp_path: Path) -> None:
    """A CSV's labels are encoded (sparse integers too): 0, 1 and 3,000,000 are three classes."""
    rows = "".join(f"{i % 7},{i % 5},{i % 2}\n" for i in range(40)) + "1,2,3000000\n3,4,3000000\n"
    data = load(str(write(tmp_path / "big-label.csv", rows)))
    assert data.n_classes == 3 and [str(c) for c in data.classes] == ["0", "1", "3000000"]


@pytest.mark.parametrize(
    ("array", "what"),
    [
        (np.array([["a", "b"], ["c", "d"]]), "<U1"),
        (np.zeros((3, 2), dtype="i4,f4"), r"\[\('f0', '<i4'\), \('f1', '<f4'\)\]"),
        (np.zeros((3, 2), dtype="M8[s]"), r"datetime64\[s\]"),
        (np.zeros((3, 2), dtype=np.complex128), "complex128"),
        (np.zeros((3, 2), dtype=np.longdouble), "float128"),
    ],
)
def test_npy_npz_off_the_dtype_allow_list(tmp_path: Path, array: np.ndarray, what: str) -> None:
    np.save(tmp_path / "t.npy", array)
    with pytest.raises(DataError, match=rf"t.npy: arrays of dtype {what} are not read; expected numbers"):
        load(str(tmp_path / "t.npy"))
    np.savez(tmp_path / "t.npz", x=array, y=np.zeros(len(array)))
    with pytest.raises(DataError, match=rf"t.npz: x.npy: arrays of dtype {what} are not read"):
        load(str(tmp_path / "t.npz"))


def test_npy_empty_truncated_or_claiming_more_than_it_holds(tmp_path: Path) -> None:
    (tmp_path / "e.npy").write_bytes(b"")
    with pytest.raises(DataError, match=r"e.npy: the file is empty \(0 bytes\); not a .npy file"):
        load(str(tmp_path / "e.npy"))
    (tmp_path / "h.npy").write_bytes(b"\x93NUMPY\x01")
    with pytest.raises(DataError, match=r"h.npy: not a valid .npy file: EOF"):
        load(str(tmp_path / "h.npy"))
    np.save(tmp_path / "t.npy", np.zeros((4, 3)))
    data = (tmp_path / "t.npy").read_bytes()
    (tmp_path / "t.npy").write_bytes(data[:-8])
    with pytest.raises(DataError, match=r"t.npy: truncated data: shape \(4, 3\) of float64 needs 96 bytes"):
        load(str(tmp_path / "t.npy"))
    header = data.replace(b"(4, 3)", b"(100000, 100000)")  # a 74.5 GiB claim in a 224-byte file
    (tmp_path / "big.npy").write_bytes(header)
    with pytest.raises(
        DataError, match=r"big.npy: truncated data: shape \(100000, 100000\) of float64 needs "
    ):
        datasets.read_npy(tmp_path / "big.npy", mmap=False)


def test_npz_empty_truncated_bad_crc_or_corrupt(tmp_path: Path) -> None:
    (tmp_path / "e.npz").write_bytes(b"")
    with pytest.raises(DataError, match=r"e.npz: the file is empty \(0 bytes\); not a .npz archive"):
        load(str(tmp_path / "e.npz"))
    np.savez(tmp_path / "ok.npz", x=np.ones((20, 2)), y=np.arange(20) % 2)
    data = (tmp_path / "ok.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut.npz: not a valid .npz \(zip\) archive: File is not a zip file"):
        load(str(tmp_path / "cut.npz"))
    flipped = bytearray(data)
    flipped[flipped.find(b"\x93NUMPY") + 150] ^= 1
    (tmp_path / "crc.npz").write_bytes(bytes(flipped))
    with pytest.raises(
        DataError, match=r"crc.npz: x.npy: damaged archive member: Bad CRC-32 for file 'x.npy'"
    ):
        load(str(tmp_path / "crc.npz"))
    np.savez_compressed(tmp_path / "z.npz", x=np.arange(4000.0).reshape(2000, 2), y=np.arange(2000) % 2)
    packed = bytearray((tmp_path / "z.npz").read_bytes())
    packed[1000] ^= 0xFF
    (tmp_path / "z.npz").write_bytes(bytes(packed))
    with pytest.raises(DataError, match=r"z.npz: x.npy: damaged archive member: "):
        load(str(tmp_path / "z.npz"))


def test_npz_member_over_the_limit_or_lying_about_its_size(tmp_path: Path) -> None:
    import io
    import zipfile

    from chainrule import limits

    np.savez_compressed(tmp_path / "z.npz", x=np.zeros((1000, 100)), y=np.arange(1000) % 2)
    with limits.override(max_decompressed_bytes=100_000):
        with pytest.raises(
            LimitError, match=r"z.npz: x.npy: 800128 bytes declared in the zip directory is over"
        ):
            load(str(tmp_path / "z.npz"))
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (10**5, 10**4)}
    )
    with zipfile.ZipFile(tmp_path / "lie.npz", "w") as zf:  # an 8 GB shape over 1 KB of data
        zf.writestr("x.npy", header.getvalue() + bytes(1024))
        zf.writestr("y.npy", header.getvalue())
    with pytest.raises(
        DataError, match=r"lie.npz: x.npy: shape \(100000, 10000\) of float64 needs 8000000000 bytes"
    ):
        load(str(tmp_path / "lie.npz"))


def test_npz_fortran_order_and_all_dtypes_round_trip(tmp_path: Path) -> None:
    from chainrule.datasets._bounded import read_npz

    arrays = {
        "f": np.asfortranarray(np.arange(12.0).reshape(3, 4)),
        "h": np.arange(6, dtype=np.float16).reshape(2, 3),
        "u": np.arange(5, dtype=np.uint8),
        "b": np.array([True, False]),
        "e": np.zeros((0, 3), np.float32),
    }
    for save in (np.savez, np.savez_compressed):
        save(tmp_path / "a.npz", **arrays)
        out = read_npz(tmp_path / "a.npz")
        for key, arr in arrays.items():
            assert out[key].dtype == arr.dtype and np.array_equal(out[key], arr), key


# ----------------------------------------------------------------------------- download (local server)


class FileServer:
    """Serve files on 127.0.0.1 under /good/ (with Range), /bad/ (HTTP 500), /flaky/ (cut off once)."""

    MAX_REQUESTS = 60  # a runaway retry loop fails the test instead of hanging it

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.requests: list[tuple[str, str | None]] = []
        self.cut: set[str] = set()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append((self.path, self.headers.get("Range")))
                kind, _, name = self.path.strip("/").partition("/")
                if len(server.requests) > server.MAX_REQUESTS or kind == "bad":
                    self.send_error(500, "broken mirror")
                    return
                if kind not in ("good", "flaky") or name not in server.files:
                    self.send_error(404, "no such file")
                    return
                body = server.files[name]
                if kind == "flaky" and name not in server.cut:
                    server.cut.add(name)  # first time: promise everything, send half, hang up
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    return
                match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                start = int(match.group(1)) if match else 0
                if start >= len(body) and match:
                    self.send_error(416, "range not satisfiable")
                    return
                self.send_response(206 if match else 200)
                if match:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                self.wfile.write(body[start:])

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def base(self, kind: str) -> str:
        return f"{self.url}/{kind}/"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[FileServer, dict[str, str]]]:
    src = write_mnist_folder(tmp_path / "src", n_train=30, n_test=10, gz=True)
    files = {f"{stem}.gz": (src / f"{stem}.gz").read_bytes() for stem in datasets.IDX_FILES.values()}
    digests = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    server = FileServer(files)
    server.thread.start()
    try:
        yield server, digests
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
        server.thread.join(timeout=5)


def test_download_verifies_and_loads(tmp_path: Path, served: tuple[FileServer, dict[str, str]]) -> None:
    server, digests = served
    folder = download(
        "mnist", cache_dir=tmp_path / "c", mirrors=[server.base("good")], sha256=digests, timeout=5
    )
    assert sorted(p.name for p in folder.iterdir()) == sorted(digests)  # no .part left
    ds = load("mnist", cache_dir=tmp_path / "c")
    assert ds.x_train.shape == (30, 784)
    n = len(server.requests)
    download("mnist", cache_dir=tmp_path / "c", mirrors=[server.base("good")], sha256=digests)
    assert len(server.requests) == n == 4  # verified files are not fetched again


def test_load_with_download_flag(tmp_path: Path, served: tuple[FileServer, dict[str, str]]) -> None:
    server, digests = served
    ds = load(
        "fashion-mnist",
        download=True,
        cache_dir=tmp_path / "c",
        mirrors=[server.base("good")],
        sha256=digests,
    )
    assert ds.name == "fashion-mnist" and ds.x_test.shape == (10, 784)


def test_download_wrong_digest_rejected(tmp_path: Path, served: tuple[FileServer, dict[str, str]]) -> None:
    server, digests = served
    wrong = dict(digests, **{"t10k-labels-idx1-ubyte.gz": "0" * 64})
    with pytest.raises(
        DataError,
        match=r"(?s)could not download t10k-labels-idx1-ubyte.gz .*"
        r"SHA-256 mismatch: got [0-9a-f]{64}, expected 0{64}",
    ):
        download("mnist", cache_dir=tmp_path / "c", mirrors=[server.base("good")], sha256=wrong, backoff=0)
    folder = tmp_path / "c" / "mnist"
    assert not (folder / "t10k-labels-idx1-ubyte.gz").exists()
    assert not (folder / "t10k-labels-idx1-ubyte.gz.part").exists()


def test_download_falls_through_a_failing_mirror(
    tmp_path: Path, served: tuple[FileServer, dict[str, str]]
) -> None:
    server, digests = served
    mirrors = [server.base("bad"), server.base("good")]
    download("mnist", cache_dir=tmp_path / "c", mirrors=mirrors, sha256=digests, retries=2, backoff=0)
    bad = [path for path, _ in server.requests if path.startswith("/bad/")]
    assert len(bad) == 2 * 4  # two attempts per file on the broken mirror, then the good one
    assert len(server.requests) == 3 * 4


def test_download_resumes_a_part_file(tmp_path: Path, served: tuple[FileServer, dict[str, str]]) -> None:
    server, digests = served
    name = "train-images-idx3-ubyte.gz"
    folder = tmp_path / "c" / "mnist"
    folder.mkdir(parents=True)
    half = len(server.files[name]) // 2
    (folder / f"{name}.part").write_bytes(server.files[name][:half])
    download("mnist", cache_dir=tmp_path / "c", mirrors=[server.base("good")], sha256={name: digests[name]})
    assert server.requests == [(f"/good/{name}", f"bytes={half}-")]
    assert (folder / name).read_bytes() == server.files[name]


def test_download_resumes_after_a_dropped_connection(
    tmp_path: Path, served: tuple[FileServer, dict[str, str]]
) -> None:
    server, digests = served
    name = "train-labels-idx1-ubyte.gz"
    download(
        "mnist",
        cache_dir=tmp_path / "c",
        mirrors=[server.base("flaky")],
        sha256={name: digests[name]},
        backoff=0,
    )
    half = len(server.files[name]) // 2
    assert server.requests == [(f"/flaky/{name}", None), (f"/flaky/{name}", f"bytes={half}-")]
    assert (tmp_path / "c" / "mnist" / name).read_bytes() == server.files[name]


def test_download_all_mirrors_fail(tmp_path: Path, served: tuple[FileServer, dict[str, str]]) -> None:
    server, digests = served
    mirrors = [server.base("bad"), server.base("missing")]
    with pytest.raises(DataError) as info:
        download("mnist", cache_dir=tmp_path / "c", mirrors=mirrors, sha256=digests, retries=2, backoff=0)
    message = str(info.value)
    assert message.startswith(
        f"could not download train-images-idx3-ubyte.gz into {tmp_path / 'c' / 'mnist'}"
    )
    assert f"{server.url}/bad/train-images-idx3-ubyte.gz: HTTP 500 broken mirror" in message
    assert f"{server.url}/missing/train-images-idx3-ubyte.gz: HTTP 404 no such file" in message
    assert "Check the network, or fetch the file by hand" in message
    assert len(server.requests) == 3  # 2 tries on the 500, 1 on the 404 (not retried)


def test_download_connection_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"http://127.0.0.1:9/x/train-images-idx3-ubyte.gz: URLError"):
        download("mnist", cache_dir=tmp_path, mirrors=["http://127.0.0.1:9/x/"], retries=1, timeout=2)


def test_download_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="unknown dataset 'cifar'"):
        download("cifar")
    with pytest.raises(ConfigError, match="retries must be >= 1"):
        download("mnist", retries=0)


def test_digest_table_is_complete() -> None:
    for name in ("mnist", "fashion-mnist"):
        assert set(datasets.SHA256[name]) == {f"{stem}.gz" for stem in datasets.IDX_FILES.values()}
        assert all(re.fullmatch(r"[0-9a-f]{64}", d) for d in datasets.SHA256[name].values())
        assert datasets.MIRRORS[name]


# ----------------------------------------------------------------------------- hostile servers (issue 14)


class HostileServer:
    """A 127.0.0.1 server whose answer to GET /<kind>/<name> is ``behaviours[kind](handler)``."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_GET(self) -> None:
                server.requests.append(self.path)
                kind = self.path.strip("/").split("/")[0]
                try:
                    getattr(server, kind)(self)
                except (BrokenPipeError, ConnectionResetError):  # the client hung up, as it should
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    @staticmethod
    def trickle(h: http.server.BaseHTTPRequestHandler) -> None:
        """Promise 1 MB, then send one byte every 0.1 s: never idle long enough for a timeout."""
        h.send_response(200)
        h.send_header("Content-Length", str(1 << 20))
        h.end_headers()
        for _ in range(200):
            h.wfile.write(b"x")
            h.wfile.flush()
            threading.Event().wait(0.1)

    @staticmethod
    def nolength(h: http.server.BaseHTTPRequestHandler) -> None:
        """No Content-Length, then far more bytes than the cap."""
        h.send_response(200)
        h.end_headers()
        for _ in range(64):
            h.wfile.write(bytes(1 << 16))

    @staticmethod
    def badlength(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", "abc")
        h.end_headers()
        h.wfile.write(b"hello")

    @staticmethod
    def hugelength(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(10**12))
        h.end_headers()
        h.wfile.write(bytes(1 << 16))


@pytest.fixture
def hostile() -> Iterator[HostileServer]:
    server = HostileServer()
    try:
        yield server
    finally:
        server.close()


def test_a_trickling_server_is_cut_off_at_the_deadline(tmp_path: Path, hostile: HostileServer) -> None:
    import time

    started = time.monotonic()
    with pytest.raises(
        LimitError,
        match=r"download: http://127.0.0.1:\d+/trickle/f.gz: the deadline of 1 s \(download_deadline\) "
        r"passed "
        r"with \d+ bytes of this file received: a stalled or trickling server.* Or pass download\(deadline=",
    ):
        download("x", cache_dir=tmp_path, mirrors=[hostile.url + "/trickle/"], sha256={"f.gz": "0" * 64},
                 deadline=1, timeout=5, backoff=0)  # fmt: skip
    assert time.monotonic() - started < 3  # cut off at the deadline, not at the server's 20 s


def test_a_body_without_content_length_stops_at_the_byte_cap(tmp_path: Path, hostile: HostileServer) -> None:
    with pytest.raises(DataError) as info:
        download("x", cache_dir=tmp_path, mirrors=[hostile.url + "/nolength/"], sha256={"f.gz": "0" * 64},
                 max_bytes=100_000, backoff=0)  # fmt: skip
    assert "/nolength/f.gz: the server sent more than the limit max_download_bytes = 100000." in str(
        info.value
    )
    assert "--max-download-bytes N" in str(info.value) and "download(max_bytes=N)" in str(info.value)
    assert len(hostile.requests) == 1 and not list((tmp_path / "x").iterdir())  # not retried, no .part left


def test_an_announced_size_over_the_cap_is_refused_before_reading(
    tmp_path: Path, hostile: HostileServer
) -> None:
    with pytest.raises(DataError, match=r"the server announces 1000000000000 bytes \(Content-Length\), over"):
        download("x", cache_dir=tmp_path, mirrors=[hostile.url + "/hugelength/"], sha256={"f.gz": "0" * 64})
    assert not list((tmp_path / "x").iterdir())


def test_a_content_length_that_is_not_a_number(tmp_path: Path, hostile: HostileServer) -> None:
    with pytest.raises(DataError, match=r"/badlength/f.gz: ConnectionError: bad Content-Length 'abc'"):
        download("x", cache_dir=tmp_path, mirrors=[hostile.url + "/badlength/"], sha256={"f.gz": "0" * 64},
                 retries=1)  # fmt: skip


def test_an_encrypted_npz_member_is_a_data_error(tmp_path: Path) -> None:
    """Found by the fuzzer (seed 1): zipfile asks for a password with a RuntimeError."""
    np.savez(tmp_path / "e.npz", x=np.ones((4, 2)), y=np.arange(4) % 2)
    data = bytearray((tmp_path / "e.npz").read_bytes())
    for signature, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # local and central headers
        at = data.find(signature)
        while at != -1:
            data[at + flag_at] |= 0x01  # general purpose bit 0: encrypted
            at = data.find(signature, at + 4)
    (tmp_path / "e.npz").write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"e.npz: x.npy: the archive member is encrypted"):
        load(str(tmp_path / "e.npz"))
