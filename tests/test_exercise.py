"""Tests of chainrule.exercise: fresh specs per seed that explain and check cleanly, files, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from chainrule.check import answer
from chainrule.cli import main
from chainrule.errors import ConfigError
from chainrule.exercise import dumps, generate, template, write
from chainrule.explain import explain, render


def numbers(value: Any) -> list[float]:
    return [n for v in value for n in numbers(v)] if isinstance(value, list) else [float(value)]


def solved(spec: dict[str, Any]) -> dict[str, Any]:
    return json.loads(str(render(explain(spec), "json")))


def test_seeds_0_to_99_explain_and_check_against_their_solutions() -> None:
    seen = set()
    for seed in range(100):
        spec = generate(seed)
        expl = explain(spec)
        assert expl.check["autodiff"] < 1e-12 and expl.check["finite_differences"] < 1e-6
        report = answer(spec, json.loads(str(render(expl, "json"))))
        assert report.ok, (seed, report.render())
        assert report.counts()["right"] == 19  # every quantity of a 2-2-2 network in explain's output
        given = [n for layer in spec["layers"] for key in ("weights", "bias") for n in numbers(layer[key])]
        given += numbers(spec["input"]) + numbers(spec["target"])
        assert all(round(n, 1) == n for n in given)  # one decimal: numbers for hand work
        seen.add(json.dumps(spec["layers"]))
    assert len(seen) == 100  # every learner a different exercise


@pytest.mark.parametrize(
    "options",
    [
        {"layers": [3, 4, 2], "activation": "relu", "loss": "cross_entropy", "batch": 3},
        {"layers": [2, 3, 3, 1], "activation": "tanh", "loss": "sse"},
        {"layers": [2, 2, 1], "activation": "sigmoid", "loss": "binary_cross_entropy", "batch": 2},
        {"layers": [2, 3, 3], "activation": "leaky_relu", "loss": "softmax_cross_entropy"},
        {"layers": [2, 2], "activation": "identity", "loss": "mse", "batch": 4, "learning_rate": 0.1},
    ],
)
def test_other_exercises_check_cleanly(options: dict[str, Any]) -> None:
    for seed in range(12):
        spec = generate(seed, **options)
        assert answer(spec, solved(spec)).ok
        if options["activation"] in ("relu", "leaky_relu"):
            z = [layer.z for layer in explain(spec).layers if layer.activation == options["activation"]]
            assert all(np.all(np.abs(v) >= 0.05) for v in z)  # clear of the kink


def test_output_activation_follows_the_loss() -> None:
    assert generate(0, loss="cross_entropy")["layers"][-1]["activation"] == "softmax"
    assert generate(0, activation="relu")["layers"][-1]["activation"] == "identity"
    assert generate(0, loss="softmax_cross_entropy")["layers"][-1]["activation"] == "identity"
    assert generate(0, output="tanh")["layers"][-1]["activation"] == "tanh"
    assert generate(3) == generate(3) and generate(3) != generate(4)
    assert generate(1, batch=3)["title"].endswith("(2-2-2, sigmoid, half_sse, m = 3 examples)")


def test_template_has_the_shapes_of_the_solution() -> None:
    spec = generate(2, layers=[3, 2, 2], batch=2)
    blank, full = template(spec), solved(spec)
    assert blank["sizes"] == [3, 2, 2] and blank["loss"] is None
    for mine, theirs in zip(blank["layers"], full["layers"], strict=True):
        assert set(mine) == {"z", "a", "delta", "grad_weights", "grad_bias", "weights_after", "bias_after"}
        for key, value in mine.items():
            assert np.shape(value) == np.shape(theirs[key])
            assert all(v is None for v in np.ravel(np.array(value, dtype=object)))
    with pytest.raises(ConfigError, match="gives no numbers"):
        answer(spec, blank)


def test_write_and_the_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folders = write(tmp_path / "ex", 10, count=2, layers=[2, 3, 1])
    assert [f.name for f in folders] == ["seed-10", "seed-11"]
    for folder in folders:
        assert sorted(p.name for p in folder.iterdir()) == [
            "answer.json",
            "solution.json",
            "solution.md",
            "spec.json",
        ]
        spec = json.loads((folder / "spec.json").read_text())
        assert answer(spec, folder / "solution.json").ok
        assert "1. Forward pass" in (folder / "solution.md").read_text()
        assert '      "weights": [\n        [' in (folder / "spec.json").read_text()  # one row per line
    args = ["exercise", "--seed", "3", "--layers", "2,3,2", "--batch", "2", "--out", str(tmp_path / "cli")]
    assert main([*args, "--activation", "tanh", "--loss", "sse"]) == 0
    assert "seed-3/: spec.json, answer.json (to fill in)" in capsys.readouterr().out
    spec = json.loads((tmp_path / "cli" / "seed-3" / "spec.json").read_text())
    assert spec["loss"] == "sse" and len(spec["input"]) == 2 and spec["layers"][0]["activation"] == "tanh"
    assert main(["exercise", "--seed", "3", "--activation", "swish", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "activation must be one of" in err[0]


def test_dumps_keeps_rows_on_one_line() -> None:
    assert (
        dumps({"a": [[1, 2], [3, None]], "b": "x"})
        == '{\n  "a": [\n    [1, 2],\n    [3, null]\n  ],\n  "b": "x"\n}'
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"layers": [2]}, "layers must be 2 to 6 sizes"),
        ({"layers": [2, 9]}, "from 1 to 6"),
        ({"layers": [2, 2, 2, 2, 2, 2, 2]}, "at most 5 weight layers"),
        ({"activation": "softmax"}, "activation must be one of"),
        ({"loss": "hinge"}, "unknown loss 'hinge'"),
        ({"batch": 0}, "batch must be 1 to 8 examples"),
        ({"loss": "cross_entropy", "layers": [2, 2, 1]}, "needs at least 2 outputs"),
        ({"output": "swish"}, "output activation must be one of"),
        ({"seed": -1}, "seed must be an integer >= 0"),
    ],
)
def test_bad_options(options: dict[str, Any], message: str) -> None:
    seed = options.pop("seed", 0)
    with pytest.raises(ConfigError, match=message):
        generate(seed, **options)


def test_bad_count(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="count must be an integer >= 1"):
        write(tmp_path, 0, count=0)


@pytest.mark.parametrize("command", ["exercise", "check"])
def test_help_states_every_default(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out.split("\noptions:\n", 1)[1]
    options = [" ".join(o.split()) for o in text.split("\n  -")[1:]]
    for option in options:
        if not option.startswith(("h, --help", "-seed")):
            assert "(default: " in option, option
