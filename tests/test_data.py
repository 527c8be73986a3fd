"""Tests of chainrule.data: scalers, one_hot, seeded stratified splits, batch iteration and its memory."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chainrule.data import (
    MinMaxScaler,
    StandardScaler,
    iterate_batches,
    one_hot,
    standardize,
    train_val_split,
    train_val_test_split,
)
from chainrule.errors import ConfigError, DataError, ShapeError

# ----------------------------------------------------------------------------- scalers


def test_standard_scaler_by_hand() -> None:
    # column 0: mean 2, std sqrt(((1-2)^2 + (3-2)^2) / 2) = 1; column 1 is constant -> scale 1
    x_train = np.array([[1.0, 7.0], [3.0, 7.0]])
    scaler = StandardScaler().fit(x_train)
    assert scaler.mean_.tolist() == [2.0, 7.0] and scaler.scale_.tolist() == [1.0, 1.0]
    out = scaler.transform(np.array([[5.0, 8.0]]))
    assert out.dtype == np.float32 and out.tolist() == [[3.0, 1.0]]
    assert repr(scaler) == "StandardScaler(eps=1e-12, n_features=2)"
    assert repr(StandardScaler()) == "StandardScaler(eps=1e-12, unfitted)"


def test_standard_scaler_uses_training_statistics_only() -> None:
    rng = np.random.default_rng(0)
    x_train, x_test = rng.normal(3, 2, (500, 4)), rng.normal(-10, 5, (50, 4))
    tr, te = standardize(x_train, x_test)
    np.testing.assert_allclose(tr.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(tr.std(axis=0), 1, atol=1e-5)
    np.testing.assert_allclose(te, (x_test - x_train.mean(0)) / x_train.std(0), rtol=1e-5)


def test_standard_scaler_chunked_fit_matches_numpy(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x = (rng.normal(1e4, 3.0, (10_000, 3))).astype(
        np.float32
    )  # large mean: a naive sum of squares loses digits
    np.save(tmp_path / "x.npy", x)
    scaler = StandardScaler().fit(np.load(tmp_path / "x.npy", mmap_mode="r"))
    np.testing.assert_allclose(scaler.mean_, x.astype(np.float64).mean(0), rtol=1e-12)
    np.testing.assert_allclose(scaler.scale_, x.astype(np.float64).std(0), rtol=1e-9)


def test_minmax_scaler_by_hand() -> None:
    scaler = MinMaxScaler(feature_range=(-1.0, 1.0)).fit(np.array([[0.0, 5.0], [4.0, 5.0]]))
    out = scaler.transform(np.array([[1.0, 5.0], [8.0, 6.0]]))
    # (1 - 0) / 4 = 0.25 -> -1 + 0.25 * 2 = -0.5;  8 -> 3.0 (outside the training range stays outside)
    assert out.tolist() == [[-0.5, -1.0], [3.0, 1.0]]
    assert repr(scaler) == "MinMaxScaler(feature_range=(-1.0, 1.0), n_features=2)"


def test_scaler_errors() -> None:
    with pytest.raises(
        ConfigError, match=r"StandardScaler.transform: not fitted yet; call fit\(x_train\) first"
    ):
        StandardScaler().transform(np.zeros((1, 2)))
    with pytest.raises(ConfigError, match=r"MinMaxScaler.transform: not fitted yet"):
        MinMaxScaler().transform(np.zeros((1, 2)))
    with pytest.raises(
        ShapeError,
        match=r"StandardScaler\(eps=1e-12, n_features=2\).transform: "
        r"expected x of shape \(m, 2\), got \(1, 3\)",
    ):
        StandardScaler().fit(np.zeros((3, 2))).transform(np.zeros((1, 3)))
    with pytest.raises(
        ShapeError, match=r"MinMaxScaler.fit: expected x of shape \(m, n_features\), got \(3,\)"
    ):
        MinMaxScaler().fit(np.zeros(3))
    with pytest.raises(DataError, match=r"StandardScaler.fit: x_train is empty"):
        StandardScaler().fit(np.zeros((0, 2)))
    with pytest.raises(ConfigError, match=r"feature_range must have low < high, got \(1, 0\)"):
        MinMaxScaler(feature_range=(1, 0))


# ----------------------------------------------------------------------------- one_hot


def test_one_hot() -> None:
    out = one_hot(np.array([1, 0, 2]), 3)
    assert out.dtype == np.float32 and out.tolist() == [[0, 1, 0], [1, 0, 0], [0, 0, 1]]


def test_one_hot_range_errors() -> None:
    with pytest.raises(
        DataError, match=r"one_hot: labels\[2\] = 3 is out of range for n_classes=3 \(expected 0 .. 2\)"
    ):
        one_hot(np.array([0, 1, 3]), 3)
    with pytest.raises(DataError, match=r"one_hot: labels\[0\] = -1 is out of range"):
        one_hot(np.array([-1]), 3)
    with pytest.raises(
        DataError, match=r"one_hot: expected 1-D integer labels, got shape \(2,\) dtype float64"
    ):
        one_hot(np.array([0.0, 1.0]), 3)
    with pytest.raises(ConfigError, match="n_classes must be >= 1"):
        one_hot(np.array([0]), 0)


# ----------------------------------------------------------------------------- splits


def test_train_val_split_is_seeded_stratified_and_disjoint() -> None:
    y = np.array([0] * 60 + [1] * 30 + [2] * 10)
    x = np.arange(100.0)[:, None]
    x_tr, y_tr, x_va, y_va = train_val_split(x, y, val_fraction=0.2, rng=0)
    assert np.bincount(y_va).tolist() == [12, 6, 2] and len(y_tr) == 80
    assert sorted(np.concatenate([x_tr, x_va])[:, 0].tolist()) == list(range(100))  # a partition
    assert np.array_equal(y[x_tr[:, 0].astype(int)], y_tr)  # rows stay paired
    again = train_val_split(x, y, val_fraction=0.2, rng=np.random.default_rng(0))
    assert np.array_equal(again[2], x_va)
    assert not np.array_equal(train_val_split(x, y, val_fraction=0.2, rng=1)[2], x_va)


def test_train_val_test_split_counts() -> None:
    y = np.arange(50) % 5
    parts = train_val_test_split(np.zeros((50, 3)), y, val_fraction=0.2, test_fraction=0.2, rng=4)
    assert [len(p) for p in parts[1::2]] == [30, 10, 10]
    assert np.bincount(parts[3]).tolist() == [2] * 5 and np.bincount(parts[5]).tolist() == [2] * 5


def test_split_of_regression_targets_is_unstratified() -> None:
    x, y = np.arange(10.0)[:, None], np.linspace(0, 1, 10)[:, None]
    _, y_tr, x_va, y_va = train_val_split(x, y, val_fraction=0.3, rng=0)
    assert x_va.shape == (3, 1) and y_tr.shape == (7, 1)
    np.testing.assert_allclose(y_va[:, 0], x_va[:, 0] / 9)


@settings(max_examples=30, deadline=None)
@given(
    m=st.integers(5, 200),
    n_classes=st.integers(1, 6),
    val=st.floats(0.05, 0.5),
    seed=st.integers(0, 2**16),
)
def test_stratified_split_total_matches_fraction(m: int, n_classes: int, val: float, seed: int) -> None:
    y = np.random.default_rng(seed).integers(0, n_classes, m)
    if round(val * m) == 0 or round(val * m) == m:
        return
    _, y_tr, _, y_va = train_val_split(np.zeros((m, 1)), y, val_fraction=val, rng=seed)
    assert len(y_va) == round(val * m) and len(y_tr) + len(y_va) == m
    assert np.array_equal(np.sort(np.concatenate([y_tr, y_va])), np.sort(y))


def test_split_errors() -> None:
    with pytest.raises(ConfigError, match=r"train_val_split: fractions must each be in \(0, 1\)"):
        train_val_split(np.zeros((4, 1)), np.zeros(4, int), val_fraction=1.0)
    with pytest.raises(
        ConfigError, match=r"train_val_test_split: fractions .* sum below 1, got \(0.5, 0.5\)"
    ):
        train_val_test_split(np.zeros((4, 1)), np.zeros(4, int), val_fraction=0.5, test_fraction=0.5)
    with pytest.raises(ShapeError, match="train_val_split: x has 4 rows but y has 3"):
        train_val_split(np.zeros((4, 1)), np.zeros(3, int))
    with pytest.raises(DataError, match="train_val_split: cannot split an empty dataset"):
        train_val_split(np.zeros((0, 1)), np.zeros(0, int))
    with pytest.raises(DataError, match=r"train_val_split: the val part would be empty with 3 rows"):
        train_val_split(np.zeros((3, 1)), np.zeros(3, int), val_fraction=0.1)


# ----------------------------------------------------------------------------- batches


def test_batches_cover_every_row_once_and_stay_paired() -> None:
    x = np.arange(23 * 2).reshape(23, 2)
    y = np.arange(23)
    batches = list(iterate_batches(x, y, batch_size=5, shuffle=True, rng=0))
    assert [len(yb) for _, yb in batches] == [5, 5, 5, 5, 3]
    assert sorted(np.concatenate([yb for _, yb in batches]).tolist()) == list(range(23))
    for xb, yb in batches:
        assert xb.dtype == np.float32 and yb.dtype == np.int64
        assert np.array_equal(xb[:, 0], 2 * yb)


def test_batches_shuffle_and_drop_last() -> None:
    x = np.arange(10)[:, None]
    plain = [xb[:, 0].tolist() for xb, _ in iterate_batches(x, batch_size=4, shuffle=False)]
    assert plain == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    dropped = list(iterate_batches(x, batch_size=4, shuffle=False, drop_last=True))
    assert len(dropped) == 2
    rng = np.random.default_rng(0)
    first = [xb.tolist() for xb, _ in iterate_batches(x, batch_size=4, rng=rng)]
    second = [xb.tolist() for xb, _ in iterate_batches(x, batch_size=4, rng=rng)]
    assert first != second  # a fresh permutation every epoch


def test_batches_float_targets_become_float32() -> None:
    (_, yb), *_ = iterate_batches(np.zeros((3, 1)), np.ones((3, 2)), batch_size=3)
    assert yb.dtype == np.float32 and yb.shape == (3, 2)


def test_batches_errors() -> None:
    with pytest.raises(ConfigError, match=r"batch_size must be a positive integer, got 0"):
        next(iterate_batches(np.zeros((3, 1)), batch_size=0))
    with pytest.raises(ShapeError, match="iterate_batches: x has 3 rows but y has 2"):
        next(iterate_batches(np.zeros((3, 1)), np.zeros(2), batch_size=2))


def test_batches_of_a_memory_map_keep_peak_memory_bounded(tmp_path: Path) -> None:
    """~200 MB on disk, batches of 256: Python-side allocations stay near one batch, not the file."""
    m, n = 51_200, 1024  # 51,200 rows of 4 KiB = 200 MiB of float32
    path = tmp_path / "big.npy"
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(m, n))
    for start in range(0, m, 4096):  # write in chunks so the test itself never holds the file
        out[start : start + 4096] = np.arange(start, min(start + 4096, m), dtype=np.float32)[:, None]
    out.flush()
    del out
    x = np.load(path, mmap_mode="r")
    y = np.arange(m)
    batch_bytes = 256 * n * 4  # 1 MiB
    for shuffle in (False, True):
        tracemalloc.start()
        seen = 0
        for xb, yb in iterate_batches(x, y, batch_size=256, shuffle=shuffle, rng=0):
            assert xb[0, 0] == yb[0] and xb.dtype == np.float32
            seen += len(yb)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert seen == m
        # a batch or two (the caller may still hold the previous one) and the permutation (8 bytes a row),
        # against 200 MiB for reading the file whole
        assert batch_bytes <= peak < 6 * 2**20
