"""Tests for chainrule.cli: train on digits, evaluate, predict, ops, and one-line errors."""

from __future__ import annotations

import json
import os
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
    assert "obj.npy: arrays of dtype object are not read; expected numbers" in one_line_error(capsys)
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
    assert "text.npy: arrays of dtype <U1 are not read; expected numbers" in one_line_error(capsys)


def test_a_loss_on_logits_gets_an_identity_output(tmp_path: Path) -> None:
    code = main(
        ["train", "--loss", "softmax_cross_entropy", "--epochs", "2", "--quiet", "--out", str(tmp_path)]
    )
    assert code == 0
    from chainrule import serialize

    model = serialize.load(tmp_path / "model.safetensors")
    assert model.config()["layers"][-1]["activation"] == "identity"


# ---------------------------------------------------------------- hostile input and run outputs (issue 14)
def tiny_csv(path: Path, rows: int = 60, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    y = np.arange(rows) % 3
    x = rng.normal(size=(rows, 4)) + 2.0 * np.eye(3, 4)[y]
    np.savetxt(path, np.column_stack([x, y]), delimiter=",", fmt="%.5f")
    return path


def train_tiny(data: Path, out: Path, *extra: str) -> int:
    args = ["train", "--data", str(data), "--layers", "8", "--epochs", "3", "--quiet", "--out", str(out)]
    return main([*args, *extra])


def test_the_last_resort_reports_an_internal_error_with_its_own_status(monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    from chainrule import cli

    def broken(args: object) -> int:
        return {"a": 1}["b"]  # a bug, not a user's mistake

    monkeypatch.setattr(
        cli, "COMMANDS", [(n, h, a, broken if n == "ops" else f) for n, h, a, f in cli.COMMANDS]
    )
    assert main(["ops"]) == cli.EXIT_INTERNAL == 70
    line = one_line_error(capsys)
    assert line.startswith("chainrule ops: internal error: KeyError: 'b'. This is a bug in chainrule")
    assert "please report it" in line and "chainrule --debug ops" in line
    with pytest.raises(KeyError):
        main(["--debug", "ops"])


def test_debug_keeps_the_traceback_of_a_user_error(tmp_path: Path) -> None:
    from chainrule.errors import SerializationError

    with pytest.raises(SerializationError, match="no such model file"):
        main(["--debug", "evaluate", str(tmp_path / "missing.safetensors")])


def test_every_error_message_is_one_line(run_dir: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """A multi-line message (a download's list of mirrors) is joined into one line."""
    from chainrule.cli import _one_line

    assert _one_line(ValueError("a\n  b\nc")) == "a; b; c"
    assert (
        _one_line(FileNotFoundError(2, "No such file or directory", "x.csv"))
        == "x.csv: No such file or directory"
    )
    assert _one_line(MemoryError()).startswith("out of memory: ")


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("labels.csv", b"a,b\n1,0\n\xff\xfe,1\n", "labels.csv: line 3, byte offset 8: not UTF-8"),
        ("field.csv", b"a,b\n" + b"0" * 140_000 + b",1\n", "a field is longer than the limit max_csv_field"),
        ("empty.npy", b"", "empty.npy: the file is empty (0 bytes)"),
        ("empty.npz", b"", "empty.npz: the file is empty (0 bytes)"),
        ("cut.npz", b"PK\x03\x04" + bytes(30), "cut.npz: not a valid .npz (zip) archive"),
    ],
)
def test_hostile_data_files_give_one_line_and_status_2(
    tmp_path: Path, capsys, name: str, content: bytes, expected: str
) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / name).write_bytes(content)
    assert main(["train", "--data", str(tmp_path / name), "--quiet", "--out", str(tmp_path / "o")]) == 2
    assert expected in one_line_error(capsys)


def test_hostile_specs_and_arguments_give_one_line_and_status_2(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    spec = tmp_path / "s.json"
    for text, expected in [
        ('{"layers": [{"weights": [[0.5]], "activation": ["relu"]}], "input": [1], "target": [1]}',
         "unknown activation ['relu']"),
        ('{"layers": [{"weights": [[0.5]]}], "input": [1], "target": [1], "loss": {}}', "unknown loss {}"),
        ('{"layers": [{"sizes": 1, "seed": -1}], "input": [1], "target": [1]}', "'seed' must be an integer"),
        ('{"input": ' + "[" * 100_000 + "]" * 100_000 + "}", "JSON nested too deeply to parse"),
    ]:  # fmt: skip
        spec.write_text(text)
        assert main(["explain", str(spec)]) == 2
        assert expected in one_line_error(capsys)
    spec.write_bytes(b'{"title": "\xff"}')
    assert main(["explain", str(spec)]) == 2
    assert "not UTF-8 at line 1, byte offset 11" in one_line_error(capsys)
    spec.write_text('{"layers": [{"weights": [[0.5]]}], "input": [1], "target": [1]}')
    assert main(["explain", str(spec), "--steps", "20", "--max-explain-steps", "10"]) == 2
    assert "--max-explain-steps N" in one_line_error(capsys)
    assert main(["explain", str(spec), "--steps", "20", "--max-explain-steps", "20"]) == 0
    assert main(["explain", str(spec), "--steps", "1000000000"]) == 2
    assert "1000000000 steps (each a forward and a backward pass) is over the limit" in one_line_error(capsys)
    assert main(["train", "--seed", "-1", "--quiet", "--out", str(tmp_path / "o")]) == 2
    assert "seed must be an integer >= 0" in one_line_error(capsys)


def test_limits_are_raised_by_their_options_and_checked_before_allocation(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from chainrule import limits

    data = tiny_csv(tmp_path / "d.csv")
    assert main(["train", "--layers", "1000000000", "--quiet", "--out", str(tmp_path / "o")]) == 2
    assert "1000000000 units in one layer is over the limit max_layer_width" in one_line_error(capsys)
    assert train_tiny(data, tmp_path / "o", "--max-parameters", "20") == 2
    line = one_line_error(capsys)
    assert "mlp 4-8-3: 67 parameters (weights and biases) is over the limit max_parameters = 20" in line
    assert "--max-parameters N on the command line" in line
    assert train_tiny(data, tmp_path / "o", "--max-parameters", "67") == 0
    assert limits.get("max_parameters") == 100_000_000  # the option lasts one command
    with pytest.raises(SystemExit):
        main(["train", "--max-parameters", "-5"])
    assert "must be a positive whole number" in one_line_error(capsys)


def test_a_label_of_three_million_is_refused_before_the_model(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    x = np.arange(84.0).reshape(42, 2)
    np.savez(tmp_path / "l.npz", x=x, y=np.array([i % 2 for i in range(40)] + [3_000_000] * 2))
    from chainrule import datasets
    from chainrule.errors import LimitError

    with pytest.raises(LimitError):  # first, so that without the limit this fails fast, not after 10 GB
        datasets.load(str(tmp_path / "l.npz"))
    assert main(["train", "--data", str(tmp_path / "l.npz"), "--quiet", "--out", str(tmp_path / "o")]) == 2
    assert "3000001 classes (the label 3000000 at" in one_line_error(capsys)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflow is the point
def test_evaluate_writes_valid_json_even_when_a_score_is_not_finite(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from chainrule import serialize
    from chainrule.layers import mlp

    model = mlp([64, 10], output="softmax", seed=0)
    model[0].W.data[...] = 3e38  # finite weights whose outputs overflow to inf
    serialize.save(tmp_path / "m.safetensors", model, {"loss": "mse", "data": "digits"})
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "m.safetensors")]) == 2
    captured = capsys.readouterr()

    def refuse(constant: str) -> None:
        raise AssertionError(f"not JSON: {constant}")

    scores = json.loads(captured.out, parse_constant=refuse)
    assert scores["test_loss"] is None
    assert "test_loss is nan on digits (printed as null): the model's outputs overflow" in captured.err


def test_an_unwritable_out_fails_before_training(tmp_path: Path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from chainrule.train import Trainer

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("training started before --out was checked")

    monkeypatch.setattr(Trainer, "fit", never)
    (tmp_path / "file").write_text("x")
    assert main(["train", "--quiet", "--out", str(tmp_path / "file" / "run")]) == 2
    line = one_line_error(capsys)
    assert line.startswith(f"chainrule train: error: {tmp_path / 'file' / 'run'}: ") or "file" in line, line


def test_a_run_writes_one_unit_with_one_run_id_and_usual_permissions(tmp_path: Path) -> None:
    from chainrule import serialize

    data = tiny_csv(tmp_path / "d.csv")
    out = tmp_path / "run"
    (out).mkdir()
    (out / ".metrics.json.999999999.dead.tmp").write_text("left by a killed run")
    assert train_tiny(data, out) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["history.png", "metrics.json", "model.safetensors"]  # no marker, no stale temp
    metrics = json.loads((out / "metrics.json").read_text())
    assert serialize.load_metadata(out / "model.safetensors")["run_id"] == metrics["run_id"]
    umask = os.umask(0o022)
    os.umask(umask)
    assert {(out / n).stat().st_mode & 0o777 for n in names} == {0o666 & ~umask}


def test_a_full_disk_during_the_commit_leaves_valid_old_files_and_a_marker(tmp_path: Path) -> None:
    """RLIMIT_FSIZE makes every write past 4 KiB fail (EFBIG), as a full disk would fail it."""
    data = tiny_csv(tmp_path / "d.csv")
    out = tmp_path / "run"
    assert train_tiny(data, out) == 0
    before = {n: (out / n).read_bytes() for n in ("metrics.json", "history.png")}
    script = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))\n"
        "from chainrule.cli import main\n"
        f"sys.exit(main(['train', '--data', {str(data)!r}, '--layers', '4', '--epochs', '40', '--quiet',"
        f" '--out', {str(out)!r}]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=_env(), check=False
    )
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "File too large" in proc.stderr
    assert (out / "INCOMPLETE").is_file()  # the set is marked: the model is new, the rest old
    assert json.loads((out / "metrics.json").read_text()) == json.loads(before["metrics.json"])
    assert (out / "history.png").read_bytes() == before["history.png"]
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    assert train_tiny(data, out) == 0 and not (out / "INCOMPLETE").exists()  # the next run repairs it


def _env() -> dict[str, str]:
    src = str(Path(__file__).parents[1] / "src")
    return {**os.environ, "PYTHONPATH": src, "OPENBLAS_NUM_THREADS": "1"}


KILLER = """
import sys, numpy as np
from chainrule.cli.output import RunDir
from chainrule.layers import mlp
from chainrule.train import History
out = sys.argv[1]
history = History([{"loss": 1.0 / (e + 1), "accuracy": 0.5} for e in range(50)])
print("ready", flush=True)
i = 0
while True:
    i += 1
    RunDir(out).commit(mlp([64, 32, 10], seed=i), {"loss": "mse"}, {"i": i}, history)
"""


def test_kill_9_during_commits_leaves_a_complete_set_or_a_marker(tmp_path: Path) -> None:
    import signal
    import time

    from chainrule import serialize
    from chainrule.cli.output import RunDir

    out = tmp_path / "run"
    rng = np.random.default_rng(0)
    markers = 0
    for _ in range(6):
        proc = subprocess.Popen([sys.executable, "-c", KILLER, str(out)], stdout=subprocess.PIPE, env=_env())
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        time.sleep(float(rng.uniform(0.2, 1.0)))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        if not (out / "model.safetensors").exists():
            continue
        model_run = serialize.load_metadata(out / "model.safetensors")["run_id"]  # never a torn file
        metrics = json.loads((out / "metrics.json").read_text()) if (out / "metrics.json").exists() else {}
        png = (out / "history.png").read_bytes() if (out / "history.png").exists() else b""
        assert not png or png.endswith(b"IEND\xaeB`\x82")
        if (out / "INCOMPLETE").exists():
            markers += 1
        else:
            assert metrics["run_id"] == model_run and png  # unmarked: one run's complete set
        RunDir(out).prepare()  # the next run cleans what the killed one left
        assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_a_diverging_run_is_an_error_and_saves_nothing_unless_allowed(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """lr = 1e6 with Adam: the loss reaches ~1e12 and stays finite; it used to be saved with exit 0."""
    data = tiny_csv(tmp_path / "d.csv")
    args = ["--lr", "1e6", "--optimizer", "adam", "--epochs", "20"]
    assert train_tiny(data, tmp_path / "run", *args) == 2
    line = one_line_error(capsys)
    assert "training diverged: the loss grew from" in line and "at epoch 1, step 2" in line
    assert "--allow-divergence" in line
    assert not (tmp_path / "run" / "model.safetensors").exists()
    with pytest.warns(RuntimeWarning, match=r"training diverged: .* \(allowed: training goes on\)"):
        assert train_tiny(data, tmp_path / "run", *args, "--allow-divergence") == 0
    assert (tmp_path / "run" / "model.safetensors").exists()


def test_predict_refuses_an_npy_header_claiming_a_huge_array_before_reading_it(  # type: ignore[no-untyped-def]
    run_dir: Path, tmp_path: Path, capsys
) -> None:
    """A 128-byte .npy whose header claims (100000, 100000) float64: 74.5 GiB were asked for."""
    import io

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (100_000, 100_000)}
    )
    (tmp_path / "claim.npy").write_bytes(header.getvalue())  # the header alone: no data
    capsys.readouterr()
    assert main(["predict", str(run_dir / "model.safetensors"), str(tmp_path / "claim.npy")]) == 2
    assert "claim.npy" in one_line_error(capsys)
