"""The command line tells the truth: defaults and recipes in ``--help`` and at the start of a run,
``--version``, what early stopping did, which loss the epoch lines show, malformed ``--layers``
refused, and ``chainrule download`` for the opt-in data sets."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import re
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from chainrule import datasets, serialize
from chainrule.cli import main
from chainrule.cli.train import RECIPES


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAINRULE_CACHE", str(tmp_path / "cache"))


def help_of(capsys: pytest.CaptureFixture[str], *command: str) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main([*command, "--help"])
    assert exc.value.code == 0
    return capsys.readouterr().out


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_train_help_states_every_default_the_recipes_and_the_data_sets(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = help_of(capsys, "train")
    options = re.split(r"\n  (?=-)", text.split("\noptions:\n", 1)[1].split("\n\n", 1)[0])
    described = [o for o in options if not o.lstrip().startswith("-h")]
    assert len(described) == 25  # every option but --help (--distributed and --mpi-timeout among them)
    for option in described:
        assert "(default: " in " ".join(option.split()), option
    flat = " ".join(text.split())
    for name in datasets.DATASETS:
        assert name in flat.split("(default: digits)")[0]
    for name, recipe in RECIPES.items():
        assert (
            f"{name}: layers {','.join(map(str, recipe['layers']))}, activation {recipe['activation']}"
            in flat
        )
    assert "any other: layers 128, activation relu, optimizer adam, lr 0.001, epochs 30" in flat


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert re.fullmatch(r"chainrule \S+ \(Python [\d.]+, NumPy [\d.]+\)\n", capsys.readouterr().out)


def test_a_run_prints_its_recipe_and_what_changed_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["train", "--data", "regression", "--epochs", "1", "--lr", "0.01", "--out", str(tmp_path / "r")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "data: regression: 200 training and 100 test examples, 1 feature\nabout regression: " in out
    assert (
        "recipe (the regression recipe; set by options: epochs, lr): layers 64,64, activation tanh, "
        "optimizer adam, lr 0.01, epochs 1, batch_size 32, dropout 0, weight_decay 0, schedule none"
    ) in out
    assert "task: regression\nrecipe" in out and "target scaling: (y - mean) / std" in out
    assert main(["train", "--data", "xor", "--epochs", "1", "--out", str(tmp_path / "x")]) == 0
    out = capsys.readouterr().out
    assert (
        "task: classification\nclasses: 2 (labels 0 .. 1)\n"
        "recipe (the default recipe; set by options: epochs)" in out
    )


def test_epoch_lines_say_which_loss_they_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--data", "xor", "--epochs", "2", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    legend = out.index(
        "per epoch: loss = mean loss of the epoch's training batches, while training (dropout on"
    )
    assert "the other columns are evaluated after the epoch (dropout off)" in out
    assert legend < out.index("epoch   1  loss ")


def test_early_stopping_says_when_it_stopped_and_which_weights_it_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["train", "--data", "xor", "--lr", "0.5", "--patience", "2", "--out", str(tmp_path)]
    assert main(args) == 0
    out = capsys.readouterr().out
    match = re.search(
        r"early stopping: val_loss did not improve for 2 epochs; stopped after epoch (\d+) of 30 and "
        r"restored the weights of epoch (\d+), the best \(val_loss ([\d.]+)\)",
        out,
    )
    assert match is not None, out
    stopped, best, value = int(match[1]), int(match[2]), float(match[3])
    assert stopped == best + 2
    import json

    history = json.loads((tmp_path / "metrics.json").read_text())["history"]
    assert len(history) == stopped and round(history[best - 1]["val_loss"], 4) == value
    assert min(h["val_loss"] for h in history) == history[best - 1]["val_loss"]


@pytest.mark.parametrize("layers", ["", "16,,8", "16,", " , "])
def test_malformed_layers_are_refused(layers: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["train", "--layers", layers])
    assert exc.value.code == 2
    line = one_line_error(capsys)
    assert (
        f"argument --layers: expected comma-separated integers like 128,64, got {layers!r}: an empty item"
        in line
    )


def test_layers_none_is_a_linear_model(tmp_path: Path) -> None:
    assert (
        main(
            ["train", "--data", "xor", "--layers", "none", "--epochs", "1", "--out", str(tmp_path), "--quiet"]
        )
        == 0
    )
    model = serialize.load(tmp_path / "model.safetensors")
    assert [layer.in_features for layer in model.dense_layers()] == [2]


# ----------------------------------------------------------------------------- download
def _idx_gz(array: np.ndarray) -> bytes:
    header = struct.pack(">I", 0x0800 | array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0)


@pytest.fixture
def mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A local HTTP mirror of a tiny MNIST, whose digests stand in for the published ones."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "mirror"
    folder.mkdir()
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (40, 28, 28)),
        "train-labels-idx1-ubyte.gz": np.arange(40) % 10,
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (10, 28, 28)),
        "t10k-labels-idx1-ubyte.gz": np.arange(10),
    }
    for name, array in arrays.items():
        (folder / name).write_bytes(_idx_gz(array))
    digests = {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in arrays}
    monkeypatch.setitem(datasets.SHA256, "mnist", digests)
    quiet = type("Quiet", (http.server.SimpleHTTPRequestHandler,), {"log_message": lambda *a: None})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(quiet, directory=str(folder))
    )
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_data_mnist_without_the_files_names_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", "--data", "mnist", "--out", str(tmp_path / "run")]) == 2
    line = one_line_error(capsys)
    assert "mnist is not downloaded yet (looked in " in line and "run `chainrule download mnist` once" in line
    assert "chainrule.datasets.download(" not in line


def test_download_command_then_train(mirror: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["download", "mnist", "--mirror", mirror, "--timeout", "5"]) == 0
    out = capsys.readouterr().out
    assert "mnist: the four files are downloaded and match their SHA-256 digests, in " in out
    assert "train on it: chainrule train --data mnist" in out
    assert main(["download", "mnist", "--mirror", mirror]) == 0
    assert "are already there" in capsys.readouterr().out
    assert main(["train", "--data", "mnist", "--epochs", "1", "--out", str(tmp_path / "run"), "--quiet"]) == 0


def test_download_failure_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("chainrule.datasets.fetch.time.sleep", lambda seconds: None)  # no backoff waits
    with socket_closed() as url:
        code = main(["download", "mnist", "--mirror", url, "--timeout", "2"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("chainrule download: error: could not download ")


class socket_closed:  # noqa: N801  (a context manager used like a function)
    """A loopback URL where nothing listens."""

    def __enter__(self) -> str:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        return f"http://127.0.0.1:{port}/"

    def __exit__(self, *exc: object) -> None:
        return None
