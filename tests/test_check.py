"""Tests of chainrule.check.answer: right answers pass, each known mistake is named first, bad files.

The wrong answers come from ``tests/learner.py``, a learner who works backprop
by hand with explicit loops and makes exactly one mistake, written without
the checker's table of mistakes.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from chainrule.check import MISTAKES, answer, run, table
from chainrule.check import steps as st
from chainrule.cli import main
from chainrule.errors import ConfigError
from chainrule.explain import explain, load_spec, render

sys.path.insert(0, str(Path(__file__).resolve().parent))
import learner

ROOT = Path(__file__).resolve().parents[1]
MAZUR = ROOT / "examples" / "mazur.json"


def random_spec(
    seed: int,
    sizes: tuple[int, ...] = (2, 3, 2),
    acts: tuple[str, ...] = ("sigmoid", "sigmoid"),
    loss: str = "half_sse",
    m: int = 1,
    update_bias: bool = True,
) -> dict[str, Any]:
    """Weights and inputs with two decimals, targets to suit the loss."""
    rng = np.random.default_rng(seed)
    layers = [
        {
            "weights": rng.uniform(-1, 1, (n, k)).round(2).tolist(),
            "bias": rng.uniform(-0.5, 0.5, n).round(2).tolist(),
            "activation": a,
        }
        for k, n, a in zip(sizes[:-1], sizes[1:], acts, strict=True)
    ]
    x = rng.uniform(-1, 1, (m, sizes[0])).round(2)
    if loss == "cross_entropy":
        y = np.eye(sizes[-1])[rng.integers(0, sizes[-1], m)]
    else:
        y = rng.uniform(0, 1, (m, sizes[-1])).round(2)
    one = (lambda v: v.tolist()) if m > 1 else (lambda v: v[0].tolist())
    return {
        "layers": layers,
        "input": one(x),
        "target": one(y),
        "loss": loss,
        "learning_rate": 0.5,
        "update_bias": update_bias,
    }


# Each mistake, on a random network where it can be made and seen.
SIGMOID = {"acts": ("sigmoid", "sigmoid")}
CASES: dict[str, dict[str, Any]] = {
    "phi_prime_left_out": SIGMOID,
    "phi_prime_of_a": {"acts": ("tanh", "sigmoid")},
    "a_form_on_z": SIGMOID,
    "W_not_transposed": {"sizes": (3, 3, 3), **SIGMOID},
    "factor_2": {**SIGMOID, "loss": "sse"},
    "mean_missing": {**SIGMOID, "m": 3},
    "mean_doubled": {**SIGMOID, "m": 3},
    "update_sign": SIGMOID,
    "updated_before_backprop": SIGMOID,
    "softmax_diagonal": {"sizes": (2, 3, 3), "acts": ("sigmoid", "softmax"), "loss": "cross_entropy"},
    "bias_update_flipped": {**SIGMOID, "update_bias": False},
    "wrong_layer_activations": {"sizes": (3, 3, 3), "acts": ("tanh", "sigmoid")},
    "gradient_transposed": SIGMOID,
}
MORE: dict[str, dict[str, Any]] = {  # the same mistakes on other networks
    "factor_2": {**SIGMOID, "loss": "half_sse", "m": 3},
    "phi_prime_left_out": {"sizes": (2, 3, 3), "acts": ("tanh", "softmax"), "loss": "cross_entropy", "m": 3},
    "softmax_diagonal": {"sizes": (2, 3, 3), "acts": ("tanh", "softmax"), "loss": "half_sse"},
    "bias_update_flipped": SIGMOID,
    "mean_missing": {"sizes": (2, 3, 3), "acts": ("sigmoid", "softmax"), "loss": "cross_entropy", "m": 4},
    "gradient_transposed": {"sizes": (3, 3, 3), **SIGMOID},
    "phi_prime_of_a": {"sizes": (2, 3, 3, 2), "acts": ("sigmoid", "tanh", "sigmoid"), "m": 2},
}


def relu_kink_spec(seed: int) -> dict[str, Any]:
    """x = 0 and b_1[1] = 0, so z_1[1] = 0: relu's kink."""
    spec = random_spec(seed, acts=("relu", "sigmoid"))
    spec["input"] = [0.0, 0.0]
    spec["layers"][0]["bias"][0] = 0.0
    return spec


def wrong_answer(name: str, seed: int, options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    spec = relu_kink_spec(seed) if name == "relu_kink" else random_spec(seed, **options)
    return spec, learner.work(spec, name)


def test_every_mistake_has_a_case() -> None:
    assert {m.name for m in MISTAKES} == set(CASES) | {"relu_kink"}
    assert [row[0] for row in table()] == [m.name for m in MISTAKES]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("name", [*CASES, "relu_kink"])
def test_each_mistake_is_named_first(name: str, seed: int) -> None:
    spec, wrong = wrong_answer(name, seed, CASES.get(name, {}))
    assert answer(spec, learner.work(spec)).ok  # the same learner without the mistake is right
    report = answer(spec, wrong)
    assert not report.ok
    first = report.first
    assert first is not None and first.mistake is not None, report.render()
    assert first.mistake.name == name, report.render()
    later = [f for f in report.findings if f.status == "wrong"][1:]
    assert not later, report.render()  # everything after it is right, a consequence or a repeat


@pytest.mark.parametrize("name", list(MORE))
def test_mistakes_on_other_networks(name: str) -> None:
    for seed in range(3):
        spec, wrong = wrong_answer(name, seed, MORE[name])
        report = answer(spec, wrong)
        assert report.first is not None and report.first.mistake is not None, report.render()
        assert report.first.mistake.name == name, report.render()


AFTER, GRADS = ("weights_after", "bias_after"), ("delta", "grad_weights")


@pytest.mark.parametrize(
    ("name", "keys"),
    [(n, k) for n in ("phi_prime_left_out", "mean_missing", "W_not_transposed") for k in (AFTER, GRADS)]
    + [("update_sign", AFTER), ("mean_doubled", GRADS), ("updated_before_backprop", AFTER)],
)
def test_mistakes_named_from_a_few_numbers(name: str, keys: tuple[str, ...]) -> None:
    """An answer with only some quantities: the mistake is recomputed through the missing ones."""
    spec, wrong = wrong_answer(name, 1, CASES[name])
    part = {"layers": [{k: v for k, v in layer.items() if k in keys} for layer in wrong["layers"]]}
    report = answer(spec, part)
    assert report.first is not None and report.first.mistake is not None, report.render()
    assert report.first.mistake.name == name


def test_first_mistake_names_the_number_and_its_consequences() -> None:
    spec, wrong = wrong_answer("phi_prime_left_out", 0, SIGMOID)
    report = answer(spec, wrong)
    first = report.first
    assert first is not None and first.key == ("delta", 2)
    assert first.entry == "delta_1[2]"
    assert first.yours == pytest.approx(wrong["layers"][1]["delta"][0])
    assert first.mistake_value == pytest.approx(first.yours, rel=1e-3)
    status = {f.name: f.status for f in report.findings}
    assert status["delta[1]"] == "repeated"  # the same mistake, one layer down
    assert status["dC/dW[2]"] == status["W[2] after the step"] == "consequence"
    assert status["z[1]"] == status["C"] == "right"
    text = report.render("text")
    assert "First mistake, in delta[2]" in text and "phi'(z) left out" in text and "note 004" in text
    assert "follows from your delta_1[2]" in text


def test_a_second_independent_mistake_is_named_too() -> None:
    spec = random_spec(5)
    good = learner.work(spec)
    mixed = copy.deepcopy(good)
    mixed["layers"][1]["delta"] = learner.work(spec, "phi_prime_left_out")["layers"][1]["delta"]
    for i, layer in enumerate(learner.work(spec, "update_sign")["layers"]):
        mixed["layers"][i]["weights_after"] = layer["weights_after"]
    report = answer(spec, mixed)
    wrong = [f for f in report.findings if f.status == "wrong"]
    assert [f.mistake.name for f in wrong if f.mistake] == ["phi_prime_left_out", "update_sign"]
    assert "Further mistakes:" in report.render()


def sig3(v: Any) -> Any:
    return [sig3(e) for e in v] if isinstance(v, list) else None if v is None else float(f"{v:.3g}")


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"m": 3},
        {"acts": ("tanh", "softmax"), "sizes": (2, 3, 3), "loss": "cross_entropy", "m": 2},
        {"acts": ("relu", "identity"), "loss": "sse"},
    ],
)
def test_correct_answer_rounded_to_3_digits_passes(seed: int, options: dict[str, Any]) -> None:
    spec = random_spec(seed, **options)
    solution = json.loads(str(render(explain(spec), "json")))
    rounded = {"loss": sig3(solution["loss"]), "dC_da_L": sig3(solution["dC_da_L"])}
    keep = ("z", "a", "phi_prime", "softmax_jacobian", "W_next_T_delta_next", "delta", "grad_weights")
    keep += ("grad_bias", "weights_after", "bias_after")
    rounded["layers"] = [{k: sig3(layer[k]) for k in keep if k in layer} for layer in solution["layers"]]
    report = answer(spec, rounded)
    assert report.ok, report.render()
    assert answer(spec, solution, digits=12).ok


def test_two_digits_fail_at_three_and_pass_at_two() -> None:
    spec = random_spec(3)
    solution = json.loads(str(render(explain(spec), "json")))
    two = {"layers": [{"a": [float(f"{v:.2g}") for v in layer["a"]]} for layer in solution["layers"]]}
    assert answer(spec, two, digits=2).ok
    assert any(not answer(random_spec(s), {"layers": [{"a": [0.1234, 0.5]}, {}]}).ok for s in range(3))


def test_mazur_published_numbers_pass() -> None:
    report = answer(MAZUR, ROOT / "examples" / "mazur_answer.json")
    assert report.ok, report.render()
    assert report.counts()["right"] == 14
    assert answer(MAZUR, ROOT / "examples" / "mazur_answer.json", digits=6).ok


def test_rounding_carried_through_is_not_a_mistake() -> None:
    """A value computed right from the learner's own rounded inputs is right."""
    spec = json.loads(MAZUR.read_text())
    z = 1.1059  # z_1[2] rounded to 5 digits, a_1[2] from it to 7 digits
    a = 1 / (1 + np.exp(-z))
    report = answer(spec, {"layers": [{}, {"z": [z, None], "a": [round(float(a), 6), None]}]}, digits=6)
    assert report.ok, report.render()


def test_nulls_and_single_numbers() -> None:
    spec = json.loads((ROOT / "examples" / "note004.json").read_text())
    report = answer(spec, {"layers": [{"z": [0.25, None]}, {"a": 0.6548215, "delta": -0.0780208}]})
    assert report.ok and report.counts()["right"] == 3


def test_shape_mistake_is_reported_with_shapes() -> None:
    spec, wrong = wrong_answer("gradient_transposed", 0, SIGMOID)
    first = answer(spec, wrong).first
    assert first is not None and first.shape == (2, 3) and first.expected_shape == (3, 2)
    assert "your shape is (2, 3), expected (3, 2)" in answer(spec, wrong).render()


def test_unknown_mistake_gives_the_equation() -> None:
    spec = random_spec(0)
    good = learner.work(spec)
    good["layers"][0]["z"][0] += 1.0
    first = answer(spec, good).first
    assert first is not None and first.mistake is None and first.entry == "z_1[1]"
    assert "Not one of the known mistakes" in answer(spec, good).render()
    assert "z[l] = W[l] a[l-1] + b[l]" in answer(spec, good).render()


def test_entry_names_in_a_batch() -> None:
    spec, wrong = wrong_answer("mean_missing", 0, CASES["mean_missing"])
    first = answer(spec, wrong).first
    assert first is not None and first.entry == "C"
    del wrong["loss"]
    first = answer(spec, wrong).first
    assert first is not None and first.entry == "delta_1[2], example 1"


def test_steps_reproduce_explain() -> None:
    """The replaceable rules, all correct, give explain's numbers (activations, losses, batches)."""
    acts = ["identity", "sigmoid", "tanh", "relu", "leaky_relu", "softplus", "elu", "gelu"]
    for i, (act, loss) in enumerate([(a, "half_sse") for a in acts] + [("softmax", "cross_entropy")]):
        for m in (1, 3):
            spec = random_spec(
                i, sizes=(2, 3, 3), acts=(act if act != "softmax" else "tanh", act), loss=loss, m=m
            )
            expl = explain(spec)
            want = st.from_explanation(expl.layers, expl.loss, expl.dCda)
            got = st.compute(load_spec(spec), st.CORRECT)
            assert set(got) == set(want) == set(st.order(expl.spec))
            for key in want:
                np.testing.assert_allclose(got[key], want[key], rtol=1e-12, atol=1e-15, err_msg=str(key))


# ---------------------------------------------------------------- bad files
@pytest.mark.parametrize(
    ("answer_value", "message"),
    [
        ([1, 2], "expected a JSON object .* got list"),
        ({"answer": 1}, "unknown key 'answer'"),
        ({"layers": [{}]}, "'layers' must be a list of 2 objects"),
        ({"layers": [5, {}]}, r"layers\[0\] \(layer 1\): expected an object"),
        ({"layers": [{"zz": [1, 2]}, {}]}, "unknown key 'zz'"),
        ({"layers": [{"z": ["0.3", 1]}, {}]}, "expected numbers"),
        ({"layers": [{"z": [True, 1]}, {}]}, "expected numbers"),
        ({"layers": [{"grad_weights": [[1, 2], [3]]}, {}]}, "rows have different lengths"),
        ({"layers": [{"weights": [[1, 2], [3, 4]]}, {}]}, "not the spec's W"),
        ({"sizes": [2, 3, 2], "layers": [{}, {}]}, "sizes"),
        ({"examples": 4, "layers": [{}, {}]}, "4 examples"),
        ({"layers": [{"softmax_jacobian": [[1, 0], [0, 1]]}, {}]}, "goes under 'phi_prime'"),
        ({"layers": [{}, {"W_next_T_delta_next": [1, 2]}]}, "the output layer has no W_next_T_delta_next"),
        ({"loss": [1, 2], "layers": [{}, {}]}, "loss must be one number"),
        ({"loss": None, "layers": [{"z": [None, None]}, {}]}, "gives no numbers"),
    ],
)
def test_bad_answers(answer_value: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        answer(MAZUR, answer_value)


def test_bad_answer_files(tmp_path: Path) -> None:
    broken = tmp_path / "a.json"
    broken.write_text('{"loss": 0.3,\n "layers": [}')
    with pytest.raises(ConfigError, match=r"a.json: not valid JSON: .* at line 2, column 13"):
        answer(MAZUR, broken)
    with pytest.raises(ConfigError, match="cannot read it"):
        answer(MAZUR, tmp_path / "missing.json")
    with pytest.raises(ConfigError, match="digits must be an integer from 1 to 15"):
        answer(MAZUR, {"loss": 0.3, "layers": [{}, {}]}, digits=0)
    spec = random_spec(0)
    spec["layers"][0].pop("bias")
    with pytest.raises(ConfigError, match="layer 1 has no bias, so no grad_bias"):
        answer(spec, {"layers": [{"grad_bias": [1, 2, 3]}, {}]})


# ---------------------------------------------------------------- the command
def test_cli_exit_status_and_formats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = random_spec(2)
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    (tmp_path / "right.json").write_text(json.dumps(learner.work(spec)))
    (tmp_path / "wrong.json").write_text(json.dumps(learner.work(spec, "update_sign")))
    (tmp_path / "bad.json").write_text("[]")
    paths = [str(tmp_path / n) for n in ("spec.json", "right.json")]
    assert main(["check", *paths]) == 0
    assert "right" in capsys.readouterr().out
    assert main(["check", str(tmp_path / "spec.json"), str(tmp_path / "wrong.json"), "--format", "json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is False and out["first_mistake"]["mistake"]["name"] == "update_sign"
    assert main(["check", str(tmp_path / "spec.json"), str(tmp_path / "bad.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.json: expected a JSON object" in err[0]
    md = tmp_path / "report.md"
    assert (
        main(["check", *paths, str(tmp_path / "wrong.json"), "--format", "markdown", "--output", str(md)])
        == 1
    )
    text = md.read_text()
    assert text.count("### Check of") == 2 and "| quantity | status |" in text
    assert main(["check", str(tmp_path / "spec.json")]) == 2
    assert "give SPEC and ANSWER.json" in capsys.readouterr().err


def test_cli_checks_exercise_folders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["exercise", "--seed", "4", "--count", "3", "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    folders = sorted(str(p) for p in tmp_path.iterdir())
    assert main(["check", *folders]) == 2  # the templates are not filled in yet
    assert capsys.readouterr().err.count("gives no numbers") == 3
    for folder in folders:
        solution = Path(folder, "solution.json").read_text()
        Path(folder, "answer.json").write_text(solution)
    assert main(["check", *folders]) == 0
    capsys.readouterr()
    wrong = json.loads(Path(folders[1], "solution.json").read_text())
    wrong["layers"][0]["weights_after"][0][0] += 0.5
    Path(folders[1], "answer.json").write_text(json.dumps(wrong))
    assert run(folders, fmt="json") == 1
    reports = json.loads(capsys.readouterr().out)
    assert [r["ok"] for r in reports] == [True, False, True]
    assert run(folders, fmt="pdf") == 2


def test_docs_list_every_mistake_and_show_a_real_report(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "check.md").read_text()
    for name, title, equation, wrong in table():
        assert f"| `{name}` | {title} | `{equation}` | {wrong} |" in text
    main(["exercise", "--seed", "7", "--out", str(tmp_path)])
    folder = tmp_path / "seed-7"
    spec = json.loads((folder / "spec.json").read_text())
    (folder / "answer.json").write_text(json.dumps(learner.work(spec, "phi_prime_left_out")))
    title, _, body = answer(folder / "spec.json", folder / "answer.json").render().split("\n", 2)
    assert title.replace(f"{tmp_path}/", "exercises/") in text and body in text


def test_report_formats_and_reprs() -> None:
    spec, wrong = wrong_answer("update_sign", 0, SIGMOID)
    report = answer(spec, wrong)
    assert repr(report).startswith("Report(ok=False, first='w_") and "Finding(" in repr(report.first)
    assert repr(MISTAKES[0]) == "Mistake('phi_prime_left_out': phi'(z) left out of delta)"
    data = json.loads(report.render("json"))
    assert data["first_mistake"]["mistake"]["name"] == "update_sign" and data["counts"]["wrong"] == 1
    assert "| `W[1] after the step` | wrong |" in report.render("markdown")
    with pytest.raises(ConfigError, match="unknown format 'pdf'"):
        report.render("pdf")
