"""The command line on a user's own tables: train, predict and evaluate on CSV files the tests write.

``chainrule train`` states the target, the task (and why) and the classes; ``predict`` reads
inputs as ``train`` does and writes a header, probabilities per class name, and the
labels as the file wrote them; regression is trained on standardized targets and
reported (MAE, RMSE, R2) and predicted in the target's units.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from chainrule import serialize
from chainrule.cli import main
from chainrule.layers import Dense, Sequential

RNG = np.random.default_rng(1)


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def write_iris_like(path: Path, m: int = 150, header: bool = True) -> Path:
    """Three well separated classes named by words, in the last column."""
    names = ["setosa", "versicolor", "virginica"]
    rows = ["a,b,c,species"] if header else []
    for i in range(m):
        k = i % 3
        a, b, c = RNG.normal(loc=2.0 * k, scale=0.3, size=3)
        rows.append(f"{a:.3f},{b:.3f},{c:.3f},{names[k]}")
    path.write_text("\n".join(rows) + "\n")
    return path


def write_prices(path: Path, m: int = 300) -> Path:
    """Integer prices (multiples of 25) that depend linearly on two inputs."""
    x = RNG.normal(size=(m, 2))
    price = np.round((x[:, 0] * 3 - x[:, 1] + 20) * 4) * 25
    rows = ["size,age,price"] + [f"{a:.4f},{b:.4f},{int(p)}" for (a, b), p in zip(x, price, strict=True)]
    path.write_text("\n".join(rows) + "\n")
    return path


def train(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    capsys.readouterr()
    assert main(["train", "--epochs", "40", "--lr", "0.01", "--validation-split", "0", *args]) == 0
    return capsys.readouterr().out


@pytest.fixture(scope="module")
def iris_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("iris")
    data = write_iris_like(folder / "iris.csv")
    options = ["--epochs", "40", "--lr", "0.01", "--loss", "softmax_cross_entropy", "--quiet"]
    assert main(["train", "--data", str(data), *options, "--out", str(folder / "run")]) == 0
    return data, folder / "run" / "model.safetensors"


def test_train_states_target_task_and_classes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_iris_like(tmp_path / "iris.csv")
    out = train(capsys, "--data", str(data), "--out", str(tmp_path / "run"))
    assert "target: 'species' (the last column; --target NAME|INDEX picks another)" in out
    assert "task: classification, inferred: the target holds text (--task decides otherwise)" in out
    assert "classes: 3 (setosa, versicolor, virginica), numbered 0 .. 2 in this order" in out
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.9
    model = serialize.load(tmp_path / "run" / "model.safetensors")
    assert model.classes == ["setosa", "versicolor", "virginica"] and model.feature_names == ["a", "b", "c"]


def test_target_in_the_first_column_by_name_or_index(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = ["label,a,b"] + [f"{i % 2},{(i % 2) * 2 + RNG.normal():.3f},{RNG.normal():.3f}" for i in range(80)]
    data = tmp_path / "first.csv"
    data.write_text("\n".join(rows) + "\n")
    out = train(capsys, "--data", str(data), "--out", str(tmp_path / "r0"), "--task", "regression")
    assert "target: 'b' (the last column" in out
    assert "note: a column is named 'label'; if it is the target, pass --target label" in out
    for target in ("label", "1"):
        out = train(capsys, "--data", str(data), "--out", str(tmp_path / f"r{target}"), "--target", target)
        assert f"target: 'label' (--target {target})" in out
        assert "task: classification, inferred: whole numbers with 2 distinct values (0, 1)" in out
        assert serialize.load(tmp_path / f"r{target}" / "model.safetensors").feature_names == ["a", "b"]
    assert main(["train", "--data", str(data), "--target", "0", "--out", str(tmp_path / "x")]) == 2
    assert "--target 0: columns are numbered from 1, as in error messages" in one_line_error(capsys)
    assert main(["train", "--target", "label", "--out", str(tmp_path / "x")]) == 2
    assert "--target and --task apply to table files" in one_line_error(capsys)


def test_ambiguous_integer_target_is_refused_with_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_prices(tmp_path / "prices.csv")
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "run")]) == 2
    line = one_line_error(capsys)
    assert "prices.csv: the target 'price' holds whole numbers with" in line
    assert "pass --task classification or --task regression" in line


def test_regression_is_first_class(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write_prices(tmp_path / "prices.csv")
    run = tmp_path / "run"
    out = train(capsys, "--data", str(data), "--task", "regression", "--out", str(run), "--epochs", "60")
    assert "task: regression (--task regression)" in out
    assert "target scaling: (y - mean) / std with the training split's mean" in out
    last = out.strip().splitlines()[-1]
    assert last.startswith("test_mae ") and " test_rmse " in last and " test_r2 " in last
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test_r2"] > 0.9 and 0 < metrics["test_mae"] < 150  # prices have std of about 320
    meta = serialize.load_metadata(run / "model.safetensors")
    assert meta["task"] == "regression" and len(meta["target_scaling"]["mean"]) == 1
    # predict scales back: the training rows themselves (target column skipped by name)
    capsys.readouterr()
    assert main(["predict", str(run / "model.safetensors"), str(data)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "price"
    predicted = np.array([float(v) for v in lines[1:]])
    truth = np.loadtxt(data, delimiter=",", skiprows=1)[:, 2]
    assert np.abs(predicted - truth).mean() < 150 and abs(predicted.mean() - truth.mean()) < 100
    # evaluate reports the same test metrics as the run
    assert main(["evaluate", str(run / "model.safetensors")]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["test_mae"] == pytest.approx(metrics["test_mae"], rel=1e-6)
    assert scores["test_r2"] == pytest.approx(metrics["test_r2"], rel=1e-6)


def test_predict_reads_like_train_and_writes_a_header(
    iris_run: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, model = iris_run
    lines = data.read_text().splitlines()
    # the columns by name, in another order, with the target column still there
    shuffled = tmp_path / "in.csv"
    shuffled.write_text("species,c,a,b\n" + "\n".join(
        ",".join([r.split(",")[3], r.split(",")[2], r.split(",")[0], r.split(",")[1]]) for r in lines[1:4]
    ) + "\n")  # fmt: skip
    capsys.readouterr()
    assert main(["predict", str(model), str(shuffled)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0] == "class,setosa,versicolor,virginica"
    assert [row.split(",")[0] for row in out[1:]] == ["setosa", "versicolor", "virginica"]
    probs = np.array([[float(v) for v in row.split(",")[1:]] for row in out[1:]])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)  # probabilities, though trained on logits
    assert main(["predict", str(model), str(shuffled), "--logits"]) == 0
    logits = capsys.readouterr().out.strip().splitlines()
    assert logits[0] == "class,logit_setosa,logit_versicolor,logit_virginica"
    z = np.array([[float(v) for v in row.split(",")[1:]] for row in logits[1:]])
    np.testing.assert_allclose(np.exp(z) / np.exp(z).sum(1, keepdims=True), probs, rtol=1e-5)


def test_predict_output_formats_by_extension(
    iris_run: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, model = iris_run
    assert main(["predict", str(model), str(data), "--output", str(tmp_path / "p.tsv")]) == 0
    tsv = (tmp_path / "p.tsv").read_text().splitlines()
    assert tsv[0] == "class\tsetosa\tversicolor\tvirginica" and len(tsv) == 151
    assert main(["predict", str(model), str(data), "--output", str(tmp_path / "p.npy")]) == 0
    assert np.load(tmp_path / "p.npy").shape == (150, 3)
    assert main(["predict", str(model), str(data), "--output", str(tmp_path / "p.txt")]) == 2
    assert "--output " in (line := one_line_error(capsys)) and "unknown format '.txt'; use .csv" in line
    assert not (tmp_path / "p.txt").exists()


def test_predict_errors_number_rows_and_columns_as_train_does(
    iris_run: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, model = iris_run
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,c\n1,2,3\n\n4,x,6\n")
    assert main(["predict", str(model), str(bad)]) == 2
    assert "bad.csv: line 4, column 2 ('b'): cannot parse 'x' as a number." in one_line_error(capsys)
    big = tmp_path / "big.csv"
    big.write_text("a,b,c\n1,2,3\n4,1e300,6\n")
    assert main(["predict", str(model), str(big)]) == 2
    assert "big.csv: line 3, column 2 ('b'): value '1e300' is beyond float32's range" in one_line_error(
        capsys
    )
    np.save(tmp_path / "big.npy", np.array([[1.0, 2.0, 3.0], [1.0, 1e300, 2.0]]))
    assert main(["predict", str(model), str(tmp_path / "big.npy")]) == 2
    assert "big.npy: row 1, column 1 (counting from 0) is 1e+300, beyond float32's range" in one_line_error(
        capsys
    )
    other = tmp_path / "other.csv"
    other.write_text("a,b,d\n1,2,3\n")
    assert main(["predict", str(model), str(other)]) == 2
    assert "other.csv: has no column d" not in (line := one_line_error(capsys))
    assert "other.csv: has no column c, but the model takes the columns a, b, c" in line


def test_non_finite_predictions_are_an_error_naming_the_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = Sequential(Dense(2, 2, activation="softmax", seed=0))
    model.layers[0].W.data[...] = np.float32(3e38)  # finite weights whose products overflow
    serialize.save(tmp_path / "m.safetensors", model)
    x = tmp_path / "x.csv"
    x.write_text("0,0\n0,0\n1,1\n")
    assert main(["predict", str(tmp_path / "m.safetensors"), str(x)]) == 2
    line = one_line_error(capsys)
    assert "predict: the model's output for line 3 of x.csv is NaN or infinite (1 of 3 rows)" in line


def test_a_classification_loss_on_a_regression_target_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_prices(tmp_path / "prices.csv")
    args = ["train", "--data", str(data), "--task", "regression", "--loss", "cross_entropy"]
    assert main([*args, "--out", str(tmp_path / "run")]) == 2
    line = one_line_error(capsys)
    assert (
        "--loss cross_entropy needs class labels, but the task is regression; pass --task classification"
        in line
    )


def test_evaluate_encodes_labels_by_the_model_classes(
    iris_run: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, model = iris_run
    metrics = json.loads((model.parent / "metrics.json").read_text())
    capsys.readouterr()
    assert main(["evaluate", str(model)]) == 0  # the training file's own test split, same class numbers
    assert json.loads(capsys.readouterr().out)["test_accuracy"] == metrics["test_accuracy"]
    other = tmp_path / "other.csv"
    other.write_text("a,b,c,species\n" + "0,0,0,setosa\n" * 4 + "4,4,4,virginica\n" * 4 + "2,2,2,tulip\n")
    assert main(["evaluate", str(model), "--data", str(other)]) == 2
    line = one_line_error(capsys)
    assert (
        "other.csv: line 10, column 4 ('species'): the target 'species' is 'tulip', which is not one" in line
    )
