"""Tests for chainrule.cli: train on digits, evaluate, predict, ops, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from chainrule import backend
from chainrule.cli import main
from chainrule.errors import BackendError


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("run")
    assert main(["train", "--out", str(out), "--quiet"]) == 0
    return out


def one_line_error(capsys) -> str:  # type: ignore[no-untyped-def]
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_train_defaults_reach_97_percent_on_digits(run_dir: Path) -> None:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.97
    assert metrics["test_loss"] > 0
    assert len(metrics["history"]) == metrics["epochs_run"] == 80
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(metrics["history"][0])
    assert (run_dir / "model.safetensors").is_file()
    assert (run_dir / "history.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_evaluate_saved_model(run_dir: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    capsys.readouterr()
    assert main(["evaluate", str(run_dir / "model.safetensors")]) == 0
    scores = json.loads(capsys.readouterr().out)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert scores["test_accuracy"] == metrics["test_accuracy"]


def test_predict_from_npy_and_csv(run_dir: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from sklearn.datasets import load_digits

    x = load_digits().data[:3] / 16.0
    np.save(tmp_path / "x.npy", x)
    np.savetxt(tmp_path / "x.csv", x, delimiter=",")
    capsys.readouterr()
    assert main(["predict", str(run_dir / "model.safetensors"), str(tmp_path / "x.npy")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "class," + ",".join(str(k) for k in range(10)) and len(lines) == 4
    out = tmp_path / "p.npy"
    assert (
        main(["predict", str(run_dir / "model.safetensors"), str(tmp_path / "x.csv"), "--output", str(out)])
        == 0
    )
    probs = np.load(out)
    assert probs.shape == (3, 10)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    assert [str(c) for c in probs.argmax(1)] == [line.split(",")[0] for line in lines[1:]]


def test_ops_prints_the_table(capsys) -> None:  # type: ignore[no-untyped-def]
    from chainrule import ops

    assert main(["ops"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == len(ops.PRIMITIVES)
    assert any(line.startswith("linear") for line in out)


def test_python_dash_m(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "chainrule", "ops"],
        capture_output=True,
        text=True,
        check=False,
        env={**__import__("os").environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")},
    )
    assert proc.returncode == 0 and "linear" in proc.stdout


# ---------------------------------------------------------------- errors
def test_unknown_dataset(capsys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert main(["train", "--data", "no_such_data", "--out", str(tmp_path), "--quiet"]) == 2
    assert one_line_error(capsys).startswith("chainrule train: error: ")


def test_bad_layers_argument(capsys) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as exc:
        main(["train", "--layers", "128,abc"])
    assert exc.value.code == 2
    assert "expected comma-separated integers like 128,64, got '128,abc'" in one_line_error(capsys)
    with pytest.raises(SystemExit):
        main(["train", "--layers", "0"])
    assert "layer sizes must be positive, got '0'" in one_line_error(capsys)


def test_model_file_that_is_not_ours(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "m.safetensors"
    bad.write_bytes(b"not a model at all")
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((1, 64)))
    assert main(["predict", str(bad), str(x)]) == 2
    assert "not a readable safetensors file" in one_line_error(capsys)
    assert main(["evaluate", str(tmp_path / "missing.safetensors")]) == 2
    assert "no such model file" in one_line_error(capsys)


def test_predict_input_of_wrong_width(run_dir: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((2, 5)))
    assert main(["predict", str(run_dir / "model.safetensors"), str(x)]) == 2
    line = one_line_error(capsys)
    assert "layers[0] Dense(in_features=64, out_features=256, activation='relu'): " in line
    assert "expected input of shape (m, 64), got (2, 5)." in line


def test_predict_bad_inputs(run_dir: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    model = str(run_dir / "model.safetensors")
    csv = tmp_path / "x.csv"
    csv.write_text(",".join(["0"] * 64) + "\n" + ",".join(["1", "2", "abc"] + ["0"] * 61) + "\n")
    assert main(["predict", model, str(csv)]) == 2
    assert "x.csv: line 2, column 3: cannot parse 'abc' as a number" in one_line_error(capsys)
    txt = tmp_path / "x.txt"
    txt.write_text("1,2\n")
    assert main(["predict", model, str(txt)]) == 2
    assert "expected a .csv, .tsv or .npy file, got '.txt'" in one_line_error(capsys)
    assert main(["predict", model, str(tmp_path / "none.npy")]) == 2
    assert "none.npy: no such file" in one_line_error(capsys)
    obj = tmp_path / "obj.npy"
    np.save(obj, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert main(["predict", model, str(obj)]) == 2
    assert "obj.npy: cannot read as .npy" in one_line_error(capsys)
    nan = tmp_path / "nan.npy"
    np.save(nan, np.array([[np.nan] * 64]))
    assert main(["predict", model, str(nan)]) == 2
    assert "nan.npy: row 0, column 0 (counting from 0) is nan, NaN or infinite" in one_line_error(capsys)


def test_gpu_without_cupy(capsys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    try:
        backend.set_device("gpu")
        pytest.skip("CuPy and a GPU are available")  # pragma: no cover - only on a GPU machine
    except BackendError:
        pass
    assert main(["train", "--device", "gpu", "--out", str(tmp_path), "--quiet"]) == 2
    line = one_line_error(capsys)
    assert line.startswith("chainrule train: error: device 'gpu' requested, but ")
    assert "use device 'cpu' (--device cpu)" in line and "backend=" not in line


def test_more_one_line_errors(run_dir: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as exc:
        main(["train", "--epochs", "0", "--out", str(tmp_path)])
    assert exc.value.code == 2
    assert "argument --epochs: expected a positive integer, got 0" in one_line_error(capsys)
    assert main(["train", "--patience", "3", "--validation-split", "0", "--out", str(tmp_path)]) == 2
    assert "--patience needs a validation split" in one_line_error(capsys)
    model = str(run_dir / "model.safetensors")
    np.save(tmp_path / "empty.npy", np.zeros((0, 64)))
    assert main(["predict", model, str(tmp_path / "empty.npy")]) == 2
    assert "with m >= 1, got shape (0, 64)" in one_line_error(capsys)
    np.save(tmp_path / "text.npy", np.array(["a", "b"]))
    assert main(["predict", model, str(tmp_path / "text.npy")]) == 2
    assert "expected numbers, got an array of dtype <U1" in one_line_error(capsys)


def test_a_loss_on_logits_gets_an_identity_output(tmp_path: Path) -> None:
    code = main(
        ["train", "--loss", "softmax_cross_entropy", "--epochs", "2", "--quiet", "--out", str(tmp_path)]
    )
    assert code == 0
    from chainrule import serialize

    model = serialize.load(tmp_path / "model.safetensors")
    assert model.config()["layers"][-1]["activation"] == "identity"
