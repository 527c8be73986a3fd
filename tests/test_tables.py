"""Tests for chainrule.tables and the CSV semantics built on it: targets, tasks, labels, DataFrames.

Each CSV case of issue 21 is a file the test writes, loaded as a user would (``datasets.load``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from chainrule import datasets, serialize
from chainrule.errors import ConfigError, DataError
from chainrule.layers import mlp
from chainrule.tables import MAX_AUTO_CLASSES, decide_target, likely_target, model_inputs
from chainrule.train import Trainer, evaluate, predict

RNG = np.random.default_rng(0)


def table(path: Path, header: str | None, columns: list[list[object]]) -> Path:
    """Write a CSV file: an optional header line, then one line per row of ``columns`` (given by column)."""
    lines = [header] if header is not None else []
    lines += [",".join(str(v) for v in row) for row in zip(*columns, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


def features(m: int, n: int = 3) -> list[list[object]]:
    x = RNG.normal(size=(m, n)).round(4)
    return [list(x[:, j]) for j in range(n)]


# ----------------------------------------------------------------------------- decide_target
def test_text_labels_are_encoded_in_sorted_order() -> None:
    t = decide_target(np.array(["virginica", "setosa", "versicolor", "setosa"]))
    assert t.task == "classification" and t.inferred and t.reason == "the target holds text"
    assert t.classes == ["setosa", "versicolor", "virginica"] and t.values.tolist() == [2, 0, 1, 0]


@pytest.mark.parametrize(
    ("labels", "classes"),
    [([1, 2, 3, 1, 2], [1, 2, 3]), ([10, 30, 20, 10], [10, 20, 30]), ([-1, 1, 1, -1], [-1, 1])],
)
def test_one_based_sparse_and_signed_integers_are_classes(labels: list[int], classes: list[int]) -> None:
    t = decide_target(np.array(labels, dtype=np.float64))
    assert t.task == "classification" and t.classes == classes
    assert [t.classes[c] for c in t.values] == labels
    assert "whole numbers with" in t.reason


def test_many_distinct_whole_numbers_are_refused_with_the_fix() -> None:
    with pytest.raises(ConfigError, match=r"whole numbers with 21 distinct values \(0 .. 500\).*pass --task"):
        decide_target(np.arange(MAX_AUTO_CLASSES + 1) * 25.0)


def test_a_stray_fraction_among_labels_is_refused_naming_its_row() -> None:
    labels = np.array([0, 1, 2] * 40 + [1.5], dtype=np.float64)
    with pytest.raises(
        ConfigError, match=r"row 120: the target 'target' is 1\.5, but the other rows hold whole"
    ):
        decide_target(labels)


def test_fractions_are_regression_with_the_reason() -> None:
    t = decide_target(np.linspace(0, 1, 50))
    assert t.task == "regression" and t.values.dtype == np.float64
    assert t.reason.startswith("the target has fractional values (0.0204")


def test_one_value_in_every_row_is_refused() -> None:
    for task in ("auto", "classification", "regression"):
        with pytest.raises(
            DataError, match=r"has the same value, 0, in all 5 rows: there is nothing to learn"
        ):
            decide_target(np.zeros(5), task)


def test_given_task_and_known_classes() -> None:
    assert decide_target(np.arange(100.0), "regression").task == "regression"
    t = decide_target(np.array([0.5, 1.5, 0.5]), "classification")
    assert t.classes == [0.5, 1.5] and not t.inferred
    t = decide_target(np.array(["3", "1.0", "3"]), classes=[1, 3])
    assert t.values.tolist() == [1, 0, 1]
    with pytest.raises(
        DataError, match=r"row 1: the target 'target' is 'dog', which is not one of the model's 2"
    ):
        decide_target(np.array(["cat", "dog"]), classes=["cat", "cow"])
    with pytest.raises(
        DataError, match=r"row 0: the target 'target' is 'a', not a number; a regression target"
    ):
        decide_target(np.array(["a", "b"]), "regression")
    with pytest.raises(ConfigError, match=r"task must be 'auto' or one of"):
        decide_target([1, 2], "clustering")


def test_missing_nan_and_huge_targets() -> None:
    with pytest.raises(DataError, match=r"row 1: the target 'target' is empty"):
        decide_target(np.array(["a", " "]))
    with pytest.raises(DataError, match=r"row 2: the target 'target' is nan \(NaN or infinite\)"):
        decide_target(np.array([1.0, 2.0, np.nan]))
    with pytest.raises(DataError, match=r"row 1: the target 'target' is 1e\+300, beyond float32's range"):
        decide_target(np.array([1.5, 1e300, 2.5]), "regression")


def test_likely_target_names_a_label_column_only_to_warn() -> None:
    assert likely_target(["a", "Label", "b"]) == "Label"
    assert likely_target(["a", "b"]) is None and likely_target(None) is None


# ----------------------------------------------------------------------------- CSV files, as users have them
def test_integer_regression_targets_are_not_a_351_class_model(tmp_path: Path) -> None:
    """Multiples of 25 (prices): refused under auto with the fix, regression when asked."""
    m = 400
    x = features(m)
    price = [int(v) for v in (np.round((np.array(x[0]) * 3 + 10) * 4) * 25)]
    f = table(tmp_path / "prices.csv", "a,b,c,price", [*x, price])
    with pytest.raises(
        ConfigError, match=r"prices.csv: the target 'price' holds whole numbers with \d+ distinct"
    ):
        datasets.load(str(f))
    ds = datasets.load(str(f), task="regression")
    assert ds.task == "regression" and ds.n_classes is None and ds.y_train.shape == (320, 1)


def test_unique_integer_targets_ask_for_the_task(tmp_path: Path) -> None:
    f = table(tmp_path / "ids.csv", "a,b,c,y", [*features(84), list(range(84))])
    with pytest.raises(
        ConfigError, match=r"84 distinct values \(0 .. 83\): class labels or a quantity\? Say which: pass"
    ):
        datasets.load(str(f))


def test_a_label_in_the_first_column_is_picked_by_name_and_the_rest_are_inputs(tmp_path: Path) -> None:
    label = [i % 2 for i in range(40)]
    f = table(tmp_path / "first.csv", "label,a,b,c", [label, *features(40)])
    ds = datasets.load(str(f), target="label")
    assert ds.task == "classification" and ds.classes == [0, 1]
    assert ds.feature_names == ["a", "b", "c"] and ds.target_name == "label"
    by_default = datasets.load(str(f))  # the last column, stated (and checked in test_cli_tables)
    assert by_default.target_name == "c" and "label" in (by_default.feature_names or [])


def test_one_label_written_1_5_is_refused_not_regression(tmp_path: Path) -> None:
    labels: list[object] = [i % 3 for i in range(150)]
    labels[56] = "1.5"
    f = table(tmp_path / "typo.csv", "a,b,c,y", [*features(150), labels])
    with pytest.raises(
        ConfigError, match=r"typo.csv: line 58, column 4 \('y'\): the target 'y' is '1.5', but"
    ):
        datasets.load(str(f))


def test_labels_1_to_3_make_three_classes(tmp_path: Path) -> None:
    f = table(tmp_path / "onebased.csv", None, [*features(60), [1 + i % 3 for i in range(60)]])
    ds = datasets.load(str(f))
    assert ds.n_classes == 3 and ds.classes == [1, 2, 3] and ds.task_reason is not None
    assert sorted(set(ds.y_train.tolist())) == [0, 1, 2]


def test_string_labels_are_encoded_and_a_headerless_file_keeps_its_first_row(tmp_path: Path) -> None:
    species = ["setosa", "versicolor", "virginica"] * 20
    f = table(tmp_path / "iris.csv", None, [*features(60), species])
    ds = datasets.load(str(f), test_fraction=0.25)
    assert ds.classes == ["setosa", "versicolor", "virginica"] and ds.n_classes == 3
    assert len(ds.x_train) + len(ds.x_test) == 60  # the first row is data: its label is a word, not a name
    assert ds.feature_names is None and ds.target_name == "column 4"


def test_a_single_minus_one_label_names_its_line(tmp_path: Path) -> None:
    labels: list[object] = [i % 2 for i in range(50)]
    labels[20] = -1
    f = table(tmp_path / "neg.csv", "a,b,c,y", [*features(50), labels])
    with pytest.raises(
        DataError, match=r"neg.csv: line 22, column 4 \('y'\): the label '-1' occurs in this row only"
    ):
        datasets.load(str(f))


def test_all_labels_one_class_is_refused(tmp_path: Path) -> None:
    f = table(tmp_path / "zeros.csv", "a,b,c,y", [*features(40), [0] * 40])
    with pytest.raises(DataError, match=r"zeros.csv: the target 'y' has the same value, '0', in all 40 rows"):
        datasets.load(str(f))


def test_a_label_of_1e21_is_reported_as_written(tmp_path: Path) -> None:
    labels: list[object] = [i % 2 for i in range(40)]
    labels[7] = "1e21"
    f = table(tmp_path / "huge.csv", "a,b,c,y", [*features(40), labels])
    with pytest.raises(
        DataError, match=r"line 9, column 4 \('y'\): the label '1e21' occurs in this row only"
    ) as exc:
        datasets.load(str(f))
    assert "-9223372036854775808" not in str(exc.value)
    both = [1e21 if i % 2 else 0 for i in range(40)]  # as a real class it is kept exactly
    ds = datasets.load(str(table(tmp_path / "two.csv", "a,b,c,y", [*features(40), both])))
    assert ds.classes == [0, 1e21]


def test_huge_whole_number_labels_in_arrays_are_not_wrapped_to_int64() -> None:
    with pytest.raises(DataError, match=r"y_train\[1\] = 1e\+21 is not a class number") as exc:
        datasets.Dataset(np.zeros((2, 1)), np.array([0.0, 1e21]), np.zeros((1, 1)), np.array([0.0]))
    assert "-9223372036854775808" not in str(exc.value)


def test_inputs_beyond_float32_are_refused_naming_the_cell(tmp_path: Path) -> None:
    x = features(20)
    x[1][4] = "1e300"
    f = table(tmp_path / "big.csv", "a,b,c,y", [*x, [i % 2 for i in range(20)]])
    with pytest.raises(
        DataError, match=r"big.csv: line 6, column 2 \('b'\): value '1e300' is beyond float32's range"
    ):
        datasets.load(str(f))


def test_target_by_index_and_duplicate_names(tmp_path: Path) -> None:
    f = table(tmp_path / "d.csv", "y,a,y", [[0, 1] * 10, list(range(20)), [0.5] * 20])
    with pytest.raises(ConfigError, match=r"d.csv: two columns are named 'y'; pick one by index"):
        datasets.load(str(f), target="y")
    assert datasets.load(str(f), target=0).classes == [0, 1]


def test_evaluating_a_file_with_the_model_classes(tmp_path: Path) -> None:
    species = ["b", "a", "c"] * 10
    f = table(tmp_path / "e.csv", "p,q,s", [*features(30, 2), species])
    ds = datasets.load(str(f), classes=["a", "b", "c", "d"])
    assert ds.classes == ["a", "b", "c", "d"] and ds.n_classes == 4
    g = table(tmp_path / "g.csv", "p,q,s", [*features(4, 2), ["a", "b", "zebra", "a"]])
    with pytest.raises(
        DataError, match=r"g.csv: line 4, column 3 \('s'\): the target 's' is 'zebra', which is not"
    ):
        datasets.load(str(g), classes=["a", "b"], test_fraction=0.0)


# ----------------------------------------------------------------------------- pandas and polars
def _frame_data(m: int = 120) -> tuple[np.ndarray, np.ndarray]:
    x = RNG.normal(size=(m, 3)).astype(np.float32)
    y = np.where(x[:, 0] + x[:, 1] > 0, "yes", "no")
    return x, y


@pytest.mark.parametrize("library", ["pandas", "polars"])
def test_fit_evaluate_predict_take_dataframes_and_keep_names(library: str, tmp_path: Path) -> None:
    lib = pytest.importorskip(library)
    x, y = _frame_data()
    frame = lib.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2]})
    labels = lib.Series("answer", list(y)) if library == "polars" else lib.Series(list(y), name="answer")
    model = mlp([3, 16, 2], output="softmax", seed=0)
    Trainer(model, "cross_entropy", "adam", 0.05).fit(frame, labels, epochs=30, verbose=0)
    assert model.feature_names == ["a", "b", "c"] and model.classes == ["no", "yes"]
    assert evaluate(model, frame, labels, "cross_entropy")["accuracy"] > 0.9
    shuffled = frame.select(["c", "a", "b"]) if library == "polars" else frame[["c", "a", "b"]]
    np.testing.assert_allclose(predict(model, shuffled), predict(model, x), rtol=1e-6)  # matched by name
    serialize.save(tmp_path / "m.safetensors", model)
    again = serialize.load(tmp_path / "m.safetensors")
    assert again.feature_names == ["a", "b", "c"] and again.classes == ["no", "yes"]


def test_dataframe_mismatches_and_bad_columns_are_named() -> None:
    pd = pytest.importorskip("pandas")
    model = mlp([2, 2], output="softmax", seed=0)
    x = pd.DataFrame({"a": [0.0, 1.0], "b": [1.0, 0.0]})
    model_inputs(model, x, pd.Series([0, 1]), "fit")
    with pytest.raises(
        DataError, match=r"predict: the table's columns do not match .*missing b; not seen in training z"
    ):
        predict(model, pd.DataFrame({"a": [0.0], "z": [1.0]}))
    with pytest.raises(DataError, match=r"fit: column 'b' holds object values, not numbers"):
        model_inputs(mlp([2, 2], seed=0), pd.DataFrame({"a": [0.0], "b": ["x"]}), None, "fit")
    with pytest.raises(DataError, match=r"fit: column 'b' has a missing, NaN or infinite value at row 1"):
        model_inputs(mlp([2, 2], seed=0), pd.DataFrame({"a": [0.0, 1.0], "b": [1.0, None]}), None, "fit")
    with pytest.raises(
        DataError, match=r"evaluate: the targets are labels \(a, b\) but the model has no class names"
    ):
        evaluate(
            mlp([2, 2], output="softmax", seed=0),
            x.to_numpy(np.float32),
            np.array(["a", "b"]),
            "cross_entropy",
        )


def test_boolean_labels_are_classes() -> None:
    model = mlp([2, 2], output="softmax", seed=0)
    x = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]], dtype=np.float32)
    _, y = model_inputs(model, x, np.array([True, False, True]), "fit")
    assert model.classes == [False, True] and y.tolist() == [1, 0, 1]
