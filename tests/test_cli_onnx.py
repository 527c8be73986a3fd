"""Tests for ``chainrule export``, ``chainrule import``, ``explain --model`` and ``train --init-from``."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from chainrule import datasets, serialize
from chainrule.cli import main
from chainrule.layers import mlp
from chainrule.train import Trainer, predict


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="module")
def digits() -> datasets.Dataset:
    return datasets.load("digits")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, digits: datasets.Dataset) -> Path:
    """A digits model as ``chainrule train`` saves it (dropout, metadata), trained a few epochs."""
    model = mlp([64, 32, 10], "relu", "softmax", dropout=0.1, seed=0)
    Trainer(model, "cross_entropy", "adam", lr=3e-3, batch_size=32).fit(
        digits.x_train, digits.y_train, 5, verbose=0
    )
    path = tmp_path_factory.mktemp("trained") / "model.safetensors"
    meta = {"loss": "cross_entropy", "data": "digits", "n_classes": 10, "task": "classification"}
    serialize.save(path, model, meta)
    return path


@pytest.fixture(scope="module")
def torch_logits(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    """A PyTorch digits classifier ending in logits (no softmax), exported with torch.onnx.export."""
    torch.manual_seed(0)
    net = (
        torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.Tanh(), torch.nn.Linear(16, 10)).float().eval()
    )
    path = tmp_path_factory.mktemp("torch") / "net.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
        axes = {"x": {0: "batch"}, "logits": {0: "batch"}}
        x = torch.zeros(1, 64, dtype=torch.float32)
        names = {"input_names": ["x"], "output_names": ["logits"]}
        torch.onnx.export(net, (x,), str(path), dynamo=False, dynamic_axes=axes, **names)
    return net, path


def test_export_runs_in_onnxruntime_as_predict(trained: Path, digits: datasets.Dataset, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["export", str(trained), "--format", "onnx"]) == 0
    out = trained.with_suffix(".onnx")
    assert capsys.readouterr().out.startswith(
        f"wrote {out}: ONNX opset 20, 4 nodes, input ['batch', 64] -> output ['batch', 10], float32"
    )
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = digits.x_test.astype(np.float32)
    (probabilities,) = session.run(None, {"input": x})
    np.testing.assert_allclose(probabilities, predict(serialize.load(trained), x), rtol=0, atol=1e-6)
    props = {
        p.key: json.loads(p.value) for p in onnx.load(out).metadata_props if p.key != "chainrule.version"
    }
    assert props["chainrule.metadata"]["data"] == "digits"
    assert props["chainrule.architecture"]["layers"][1] == {"type": "Dropout", "p": 0.1}


def test_export_float64_and_names(trained: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "m64.onnx"
    argv = ["export", str(trained), "--output", str(out), "--dtype", "float64", "--input-name", "pixels"]
    assert main(argv) == 0
    assert "pixels ['batch', 64] -> output ['batch', 10], float64" in capsys.readouterr().out
    assert onnx.load(out).graph.input[0].type.tensor_type.elem_type == TensorProto.DOUBLE


def test_import_then_evaluate_and_predict_as_the_original(trained: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    onnx_path = tmp_path / "model.onnx"
    assert main(["export", str(trained), "--output", str(onnx_path)]) == 0
    assert main(["import", str(onnx_path)]) == 0
    imported = onnx_path.with_suffix(".safetensors")
    assert (
        "wrote " + str(imported) + ": 2 dense layers, sizes [64, 32, 10], 2410 parameters"
        in capsys.readouterr().out
    )
    assert serialize.load(imported).config() == serialize.load(trained).config()
    assert main(["evaluate", str(imported)]) == 0
    after = capsys.readouterr().out
    assert main(["evaluate", str(trained)]) == 0
    assert after == capsys.readouterr().out
    assert serialize.load_metadata(imported)["loss"] == "cross_entropy"


def test_import_pytorch_then_evaluate_predict_and_fine_tune(
    torch_logits: tuple[torch.nn.Module, Path], digits: datasets.Dataset, tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    net, path = torch_logits
    imported = tmp_path / "net.safetensors"
    assert main(["import", str(path), "--output", str(imported), "--loss", "softmax_cross_entropy"]) == 0
    x = digits.x_test[:5].astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    capsys.readouterr()
    assert main(["predict", str(imported), str(tmp_path / "x.npy"), "--output", str(tmp_path / "p.npy")]) == 0
    with torch.no_grad():
        np.testing.assert_allclose(
            np.load(tmp_path / "p.npy"), net(torch.from_numpy(x)).numpy(), rtol=0, atol=1e-6
        )
    assert main(["evaluate", str(imported)]) == 0
    before = json.loads(capsys.readouterr().out)
    assert main(["evaluate", str(path)]) == 0  # the .onnx file directly: logits -> softmax_cross_entropy
    assert json.loads(capsys.readouterr().out) == before
    assert main(["predict", str(path), str(tmp_path / "x.npy")]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1 + 5  # a header, then one row per example
    run = tmp_path / "run"
    argv = ["train", "--init-from", str(path), "--epochs", "3", "--lr", "3e-3", "--quiet", "--out", str(run)]
    assert main(argv) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["loss_name"] == "softmax_cross_entropy"  # the output is linear: logits
    assert metrics["test_accuracy"] > before["test_accuracy"] + 0.3
    tuned = serialize.load(run / "model.safetensors")
    assert [d.activation for d in tuned.dense_layers()] == ["tanh", "identity"]


def test_init_from_must_fit_the_data(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    serialize.save(tmp_path / "small.safetensors", mlp([4, 3]))
    assert (
        main(["train", "--init-from", str(tmp_path / "small.safetensors"), "--quiet", "--out", str(tmp_path)])
        == 2
    )
    assert one_line_error(capsys) == (
        f"chainrule train: error: --init-from {tmp_path / 'small.safetensors'}: the model maps 4 inputs to "
        f"3 outputs, but digits has 64 features and 10 classes."
    )


def test_explain_an_imported_model_on_one_example(
    torch_logits: tuple[torch.nn.Module, Path], digits: datasets.Dataset, tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    net, path = torch_logits
    np.save(tmp_path / "x.npy", digits.x_test[:4])
    np.save(tmp_path / "y.npy", digits.y_test[:4])
    capsys.readouterr()
    argv = ["explain", "--model", str(path), "--input", str(tmp_path / "x.npy"), "--row", "2"]
    assert main([*argv, "--target", str(tmp_path / "y.npy"), "--format", "json", "--weight", "2:1,1"]) == 0
    expl = json.loads(capsys.readouterr().out)
    x, label = digits.x_test[2:3].astype(np.float32), int(digits.y_test[2])
    want = torch.nn.functional.cross_entropy(net(torch.from_numpy(x)), torch.tensor([label])).item()
    assert abs(expl["loss"] - want) < 1e-6
    assert expl["check"]["autodiff"] < 1e-10 and expl["check"]["finite_differences"] < 1e-6
    assert main(["explain", "--model", str(path), "--input", ",".join(["0.5"] * 64), "--target", "3"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("net.onnx, one example") and "Loss softmax_cross_entropy" in text


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["spec.json"], r"give a spec file or --model, not both."),
        (["--input", "1,2"], r"give a spec file, or --model MODEL with --input X and --target Y"),
        (
            ["--input", "1,2", "--target", "0"],
            r"--input: the model takes n\[0\] = 64 numbers per example, got 2.",
        ),
        (
            ["--input", ",".join(["1"] * 64), "--target", "12"],
            r"--target: the model has n\[L\] = 10 outputs; give 10",
        ),
        (
            ["--input", "a,b", "--target", "1"],
            r"--input: expected numbers separated by commas, or a .npy/.csv file",
        ),
        (["--input", "missing.npy", "--target", "1"], r"--input: no such file 'missing.npy'."),
    ],
)
def test_explain_model_mistakes_are_one_line(
    torch_logits: tuple[torch.nn.Module, Path], capsys, extra: list[str], message: str
) -> None:  # type: ignore[no-untyped-def]
    assert main(["explain", "--model", str(torch_logits[1]), *extra]) == 2
    line = one_line_error(capsys)
    assert line.startswith("chainrule explain: error: ")
    assert __import__("re").search(message, line), line


def bad_files(folder: Path) -> dict[str, Path]:
    """Each kind of file that import must refuse in one line."""
    good = (
        __import__("chainrule.onnx", fromlist=["to_onnx"]).to_onnx(mlp([6, 8, 3], seed=0)).SerializeToString()
    )
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])

    def model(nodes: list[onnx.NodeProto], weights: list[onnx.TensorProto]) -> bytes:
        y = helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, ["batch", None])
        graph = helper.make_graph(nodes, "g", [x], [y], weights)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)]).SerializeToString()

    w = {n: numpy_helper.from_array(np.ones(s, np.float32), n) for n, s in (("W1", (8, 4)), ("W2", (3, 5)))}
    huge = onnx.TensorProto(name="W1", data_type=TensorProto.FLOAT, dims=[10**9, 4], raw_data=b"\0" * 16)
    gemm1 = helper.make_node("Gemm", ["x", "W1"], ["z"], name="g1", transB=1)
    files = {
        "truncated": good[: len(good) // 2],
        "not_onnx": b"a,b,c\n1,2,3\n",
        "unsupported": model([gemm1, helper.make_node("Erf", ["z"], ["y"], name="erf")], [w["W1"]]),
        "no_chain": model(
            [gemm1, helper.make_node("Gemm", ["z", "W2"], ["y"], name="g2", transB=1)], list(w.values())
        ),
        "huge": model([helper.make_node("Gemm", ["x", "W1"], ["y"], name="huge", transB=1)], [huge]),
    }
    for name, data in files.items():
        (folder / f"{name}.onnx").write_bytes(data)
    return {name: folder / f"{name}.onnx" for name in files}


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("truncated", r"not an ONNX model|truncated"),
        ("not_onnx", r"not an ONNX model"),
        ("unsupported", r"graph.node\[1\] \(Erf 'erf'\): operator Erf is not supported"),
        (
            "no_chain",
            r"graph.node\[1\] \(Gemm 'g2'\) \(layer 2\): weight of shape \(3, 5\) .* a\[1\] has 8 entries",
        ),
        ("huge", r"initializer 'W1' claims shape \(1000000000, 4\) = 4,000,000,000 values"),
    ],
)
def test_import_refuses_bad_files_in_one_line(tmp_path: Path, capsys, kind: str, message: str) -> None:  # type: ignore[no-untyped-def]
    path = bad_files(tmp_path)[kind]
    out = tmp_path / "out.safetensors"
    assert main(["import", str(path), "--output", str(out)]) == 2
    line = one_line_error(capsys)
    assert line.startswith(f"chainrule import: error: {path}: ")
    assert __import__("re").search(message, line), line
    assert not out.exists()  # never a partial model


def test_export_of_a_missing_model_and_without_the_extra(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["export", str(tmp_path / "absent.safetensors")]) == 2
    assert one_line_error(capsys).endswith("absent.safetensors: no such model file.")
    monkeypatch.setitem(sys.modules, "chainrule.onnx", None)  # as if onnx were not installed
    assert main(["import", str(tmp_path / "m.onnx")]) == 2
    assert "ONNX needs the onnx extra: pip install 'chainrule[onnx]'" in one_line_error(capsys)


def test_explain_model_input_files_that_do_not_fit(
    torch_logits: tuple[torch.nn.Module, Path], tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "words.csv").write_text("a,b\nc,d\n")
    np.save(tmp_path / "cube.npy", np.zeros((2, 2, 2)))
    np.save(tmp_path / "x.npy", np.zeros((3, 64)))
    cases = {
        "words.csv": r"--input: cannot read '.*words.csv' as numbers",
        "cube.npy": r"--input: '.*cube.npy' holds float64 of shape \(2, 2, 2\); expected a table of numbers",
        "x.npy": r"--input: --row 5 is out of range: '.*x.npy' has 3 rows",
    }
    for name, message in cases.items():
        argv = ["explain", "--model", str(torch_logits[1]), "--input", str(tmp_path / name), "--row", "5"]
        assert main([*argv, "--target", "1"]) == 2
        assert __import__("re").search(message, one_line_error(capsys))
