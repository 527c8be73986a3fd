"""How ``explain`` prints: long loss curves summarised (``--all`` for every value), a check that
meets a ReLU kink says so and names the unit, and ``-0`` prints as ``0``."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from chainrule.cli import main
from chainrule.explain import explain, render
from chainrule.explain.narrate import curve_rows, num


def kinked(target: float = 10.0, activation: str = "relu", second_input: float = 1.0) -> dict[str, Any]:
    """``z[1] = [1.5, 0]``: unit 2 of layer 1 sits exactly on the kink (with ``second_input = 1``)."""
    return {
        "layers": [
            {"weights": [[1.0, 0.5], [1.0, -1.0]], "bias": [0.0, 0.0], "activation": activation},
            {"weights": [[1.0, 2.0]], "bias": [0.0], "activation": "identity"},
        ],
        "input": [1.0, second_input],
        "target": [target],
        "loss": "half_sse",
        "learning_rate": 0.01,
    }


def test_minus_zero_prints_as_zero() -> None:
    from chainrule.explain.picture import _g

    assert num(-0.0) == "0" and num(0.0) == "0" and num(-1e-300) == "-1e-300"
    assert _g(-0.0) == "0" and _g(-0.5) == "-0.5"  # the PNG's labels
    text = str(render(explain(kinked()), "text"))
    assert "delta[1] = (W[2]^T delta[2]) * phi'(z[1]) = [-8.5, 0]" in text
    assert not re.search(r"(?<![\w.])-0(?![.\d])", text), "a -0 is printed"
    assert not re.search(r"(?<![\w.])-0(?![.\d])", str(render(explain(kinked()), "markdown")))


def test_a_check_at_a_relu_kink_names_the_unit() -> None:
    expl = explain(kinked())
    assert expl.check["finite_differences"] > 1  # the central difference averages 0 and 1
    assert expl.kinks == [{"layer": 1, "unit": 2, "example": 1, "z": 0.0, "activation": "relu"}]
    text = " ".join(str(render(expl, "text")).split())
    assert (
        "The finite differences meet a kink: z = 0 at z_2[1]; relu is not differentiable at z = 0: its "
        "one-sided derivatives (0 and 1) disagree"
    ) in text
    assert "That uses relu'(0) = 0, the engine's convention, and agrees with the autodiff engine." in text
    assert json.loads(str(render(expl, "json")))["check"]["kinks"] == expl.kinks


def test_leaky_relu_near_a_kink_and_in_a_batch() -> None:
    near = kinked(activation="leaky_relu", second_input=1.0 + 1e-9)  # z_2[1] = -1e-9
    text = " ".join(str(render(explain(near), "text")).split())
    assert re.search(
        r"kink: z_2\[1\] = -1\.0+\d*e-09, within a finite-difference step of 0; leaky_relu", text
    )
    assert "its one-sided derivatives (0.01 and 1) disagree" in text
    batch = kinked()
    batch["input"], batch["target"] = [[0.0, 3.0], [1.0, 1.0]], [[1.0], [10.0]]
    text = " ".join(str(render(explain(batch), "text")).split())
    assert "z = 0 at z_2[1] of example 2" in text


def test_smooth_networks_have_no_kink_note() -> None:
    spec = kinked(activation="tanh")
    expl = explain(spec)
    assert expl.kinks == [] and "kink" not in str(render(expl, "text"))
    away = explain(kinked(second_input=0.5))  # z[1] = [1.25, 0.5]: far from the kink
    assert away.kinks == [] and away.check["finite_differences"] < 1e-6


def test_curve_rows() -> None:
    assert curve_rows(21) == list(range(21))
    assert curve_rows(22) == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 21]
    rows = curve_rows(1_000_001)
    assert rows[0] == 0 and rows[-1] == 1_000_000 and len(rows) <= 22
    assert curve_rows(1001, show_all=True) == list(range(1001))


def test_long_steps_are_summarised_and_all_prints_every_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "k.json"
    spec.write_text(json.dumps(kinked()))
    assert main(["explain", str(spec), "--steps", "1000"]) == 0
    out = capsys.readouterr().out
    values = re.findall(r"^  C_(\d+) = ", out, flags=re.M)
    assert values[0] == "0" and values[-1] == "1000" and len(values) == 21
    assert "(a summary: 21 of the 1001 values, every 50-th and the last; --all prints every value" in out
    assert main(["explain", str(spec), "--steps", "1000", "--all"]) == 0
    assert len(re.findall(r"^  C_\d+ = ", capsys.readouterr().out, flags=re.M)) == 1001
    assert main(["explain", str(spec), "--steps", "1000", "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["losses"]) == 1001
    assert main(["explain", str(spec), "--steps", "5"]) == 0
    short = capsys.readouterr().out
    assert len(re.findall(r"^  C_\d+ = ", short, flags=re.M)) == 6 and "a summary" not in short
