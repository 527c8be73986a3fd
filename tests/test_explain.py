"""Tests of chainrule.explain: hand-style numbers against PyTorch, published examples, errors, formats."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from chainrule.errors import ConfigError, LimitError, ShapeError
from chainrule.explain import explain, load_spec, render, run
from chainrule.layers import Dense, Sequential

ROOT = Path(__file__).resolve().parents[1]
MAZUR = ROOT / "examples" / "mazur.json"
NOTE004 = ROOT / "examples" / "note004.json"

ACTIVATIONS = ["identity", "sigmoid", "tanh", "relu", "leaky_relu", "softplus", "elu", "gelu", "softmax"]
LOSSES = [
    "sse",
    "half_sse",
    "mse",
    "cross_entropy",
    "binary_cross_entropy",
    "softmax_cross_entropy",
    "sigmoid_binary_cross_entropy",
]

TORCH_PHI = {
    "identity": lambda z: z,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": torch.relu,
    "leaky_relu": lambda z: F.leaky_relu(z, 0.01),
    "softplus": F.softplus,
    "elu": F.elu,
    "gelu": lambda z: F.gelu(z, approximate="tanh"),
    "softmax": lambda z: torch.softmax(z, dim=-1),
}


def torch_loss(name: str, a: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Each library convention written out in PyTorch (batch mean over examples)."""
    if name == "sse":
        return ((a - y) ** 2).sum(-1).mean()
    if name == "half_sse":
        return (0.5 * (a - y) ** 2).sum(-1).mean()
    if name == "mse":
        return F.mse_loss(a, y)
    if name == "cross_entropy":
        return -(y * torch.log(a)).sum(-1).mean()
    if name == "binary_cross_entropy":
        return F.binary_cross_entropy(a, y, reduction="none").sum(-1).mean()
    if name == "softmax_cross_entropy":
        return -(y * torch.log_softmax(a, dim=-1)).sum(-1).mean()
    if name == "sigmoid_binary_cross_entropy":
        return F.binary_cross_entropy_with_logits(a, y, reduction="none").sum(-1).mean()
    raise ValueError(name)


def random_spec(rng: np.random.Generator, act: str, loss: str, batch: bool) -> dict[str, Any]:
    """A 3-4-3 network with `act` everywhere (the output activation adapted to probability losses)."""
    out = act
    if loss in ("cross_entropy", "binary_cross_entropy") and act not in ("sigmoid", "softmax"):
        out = "softmax" if loss == "cross_entropy" else "sigmoid"
    sizes, acts = [3, 4, 3], [act, out]
    layers = [
        {
            "weights": (0.8 * rng.standard_normal((n, k))).tolist(),
            "bias": (0.3 * rng.standard_normal(n)).tolist(),
            "activation": a,
        }
        for k, n, a in zip(sizes[:-1], sizes[1:], acts, strict=True)
    ]
    m = 4 if batch else 1
    x = rng.standard_normal((m, 3))
    if loss in {"cross_entropy", "softmax_cross_entropy"}:
        y = rng.dirichlet(np.ones(3), size=m)
    elif "binary" in loss:
        y = rng.uniform(0.05, 0.95, (m, 3))
    else:
        y = rng.standard_normal((m, 3))
    return {
        "layers": layers,
        "input": (x if batch else x[0]).tolist(),
        "target": (y if batch else y[0]).tolist(),
        "loss": loss,
        "learning_rate": 0.3,
    }


def torch_reference(spec: dict[str, Any]) -> dict[str, Any]:
    """Forward, deltas (dC/dz via retain_grad), gradients and the updated weights, by torch autograd."""
    x = torch.tensor(spec["input"]).reshape(-1, len(spec["layers"][0]["weights"][0]))
    y = torch.tensor(spec["target"]).reshape(x.shape[0], -1)
    params, zs, as_ = [], [], []
    a = x
    for layer in spec["layers"]:
        W = torch.tensor(layer["weights"], requires_grad=True)
        b = torch.tensor(layer["bias"], requires_grad=True)
        z = a @ W.T + b
        z.retain_grad()
        a = TORCH_PHI[layer["activation"]](z)
        params.append((W, b))
        zs.append(z)
        as_.append(a)
    C = torch_loss(spec["loss"], a, y)
    C.backward()
    lr = spec["learning_rate"]
    return {
        "loss": C.item(),
        "z": [z.detach().numpy() for z in zs],
        "a": [a.detach().numpy() for a in as_],
        "delta": [z.grad.numpy() for z in zs],
        "grad_W": [W.grad.numpy() for W, _ in params],
        "grad_b": [b.grad.numpy() for _, b in params],
        "W_after": [(W - lr * W.grad).detach().numpy() for W, _ in params],
    }


@pytest.mark.parametrize("batch", [False, True], ids=["one", "batch"])
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("act", ACTIVATIONS)
def test_matches_pytorch(act: str, loss: str, batch: bool, rel_err: Any) -> None:
    seed = 1000 * ACTIVATIONS.index(act) + 10 * LOSSES.index(loss) + batch
    spec = random_spec(np.random.default_rng(seed), act, loss, batch)
    ref = torch_reference(spec)
    expl = explain(spec)
    assert rel_err(expl.loss, ref["loss"]) < 1e-10
    for i, layer in enumerate(expl.layers):
        assert rel_err(layer.z, ref["z"][i]) < 1e-10
        assert rel_err(layer.a, ref["a"][i]) < 1e-10
        assert rel_err(layer.delta, ref["delta"][i]) < 1e-10, f"delta[{i + 1}]"
        assert rel_err(layer.grad_W, ref["grad_W"][i]) < 1e-10, f"dC/dW[{i + 1}]"
        assert rel_err(layer.grad_b, ref["grad_b"][i]) < 1e-10, f"dC/db[{i + 1}]"
        assert rel_err(layer.W_after, ref["W_after"][i]) < 1e-10
    assert expl.check["autodiff"] < 1e-12
    assert expl.check["finite_differences"] < 1e-6


def test_fused_pairs_say_so() -> None:
    rng = np.random.default_rng(7)
    for act, loss in [("softmax", "cross_entropy"), ("sigmoid", "binary_cross_entropy")]:
        expl = explain(random_spec(rng, act, loss, batch=True))
        assert expl.fused is not None
        text = render(expl, "text")
        assert isinstance(text, str)
        assert "fused: delta[2] = 1/m (a[2] - y)" in text
        y, a = expl.spec.y, expl.layers[-1].a
        np.testing.assert_allclose(expl.layers[-1].delta, (a - y) / 4, rtol=1e-12, atol=1e-15)


def test_softmax_jacobian_is_shown() -> None:
    spec = random_spec(np.random.default_rng(3), "softmax", "half_sse", batch=False)
    expl = explain(spec)
    a = expl.layers[-1].a[0]
    J = expl.layers[-1].jacobian
    assert J is not None
    np.testing.assert_allclose(J[0], np.diag(a) - np.outer(a, a), rtol=1e-14)
    assert "da_j/dz_i = a_j (delta_ij - a_i)" in str(render(expl, "text"))


# ---------------------------------------------------------- published numbers
def test_mazur_published_numbers() -> None:
    """Matt Mazur, "A Step by Step Backpropagation Example" (2015): w1..w8 = w_jk[l], biases fixed."""
    expl = explain(MAZUR, steps=1)
    h, o = expl.layers
    assert expl.loss == pytest.approx(0.298371109, abs=6e-10)  # E_total
    np.testing.assert_allclose(h.a[0], [0.593269992, 0.596884378], atol=6e-10)  # out_h1, out_h2
    np.testing.assert_allclose(o.a[0], [0.75136507, 0.772928465], atol=6e-9)  # out_o1, out_o2
    assert o.grad_W[0, 0] == pytest.approx(0.082167041, abs=6e-10)  # dE/dw5
    assert h.grad_W[0, 0] == pytest.approx(0.000438568, abs=6e-10)  # dE/dw1
    # w5..w8 and w1..w4 after one step with eta = 0.5, as published (8-9 digits)
    np.testing.assert_allclose(o.W_after, [[0.35891648, 0.408666186], [0.511301270, 0.561370121]], atol=6e-9)
    np.testing.assert_allclose(h.W_after, [[0.149780716, 0.19956143], [0.24975114, 0.29950229]], atol=6e-9)
    np.testing.assert_array_equal(h.b_after, [0.35, 0.35])  # Mazur does not update biases
    assert expl.losses is not None and len(expl.losses) == 2


def test_mazur_independent_hand_arithmetic() -> None:
    """The same numbers from math.exp alone, line by line as in the post."""
    s = lambda v: 1 / (1 + math.exp(-v))
    out_h1, out_h2 = s(0.15 * 0.05 + 0.2 * 0.1 + 0.35), s(0.25 * 0.05 + 0.3 * 0.1 + 0.35)
    out_o1, out_o2 = s(0.4 * out_h1 + 0.45 * out_h2 + 0.6), s(0.5 * out_h1 + 0.55 * out_h2 + 0.6)
    E = 0.5 * (0.01 - out_o1) ** 2 + 0.5 * (0.99 - out_o2) ** 2
    d_o1 = (out_o1 - 0.01) * out_o1 * (1 - out_o1)
    d_o2 = (out_o2 - 0.99) * out_o2 * (1 - out_o2)
    d_h1 = (0.4 * d_o1 + 0.5 * d_o2) * out_h1 * (1 - out_h1)
    expl = explain(MAZUR, weight=["2:1,1", "1:1,1"])
    assert expl.loss == pytest.approx(E, rel=1e-14)
    assert expl.chains[0]["grad"] == pytest.approx(d_o1 * out_h1, rel=1e-13)
    assert expl.chains[1]["grad"] == pytest.approx(d_h1 * 0.05, rel=1e-13)
    terms = np.array(expl.chains[1]["examples"][0]["terms"])
    np.testing.assert_allclose(terms, [[0.4, d_o1], [0.5, d_o2]], rtol=1e-13)


def test_note004_exercise_by_hand() -> None:
    """Note 004's exercise with the weights of examples/note004.json (x = [1, 0.5], t = 1.0).

    z_1[1] = 0.1*1 + 0.3*0.5 = 0.25, z_2[1] = 0.2*1 + 0.4*0.5 = 0.4
    a[1] = [sigmoid(0.25), sigmoid(0.4)] = [0.5621765, 0.5986877]
    z[2] = 0.5*0.5621765 + 0.6*0.5986877 = 0.6403008, a[2] = 0.6548215
    C = 1/2 (0.6548215 - 1)^2 = 0.0595741
    delta[2] = (a - t) a (1 - a) = -0.3451785 * 0.2260303 = -0.0780208
    delta_1[1] = 0.5 * -0.0780208 * 0.5621765 * (1 - 0.5621765) = -0.0096018
    w_11[2] <- 0.5 - 0.5 * (-0.0780208 * 0.5621765) = 0.5219307
    """
    expl = explain(NOTE004)
    h, o = expl.layers
    assert expl.loss == pytest.approx(0.0595741, abs=1e-7)
    np.testing.assert_allclose(h.a[0], [0.5621765, 0.5986877], atol=1e-7)
    assert o.delta[0, 0] == pytest.approx(-0.0780208, abs=1e-7)
    assert h.delta[0, 0] == pytest.approx(-0.0096018, abs=1e-7)
    assert o.W_after[0, 0] == pytest.approx(0.5219307, abs=1e-7)
    assert o.b_after is not None and o.b_after[0] == pytest.approx(0.0390104, abs=1e-7)


def test_model_and_batch_from_python() -> None:
    rng = np.random.default_rng(5)
    model = Sequential(
        Dense(3, 4, activation="tanh", seed=1, dtype=np.float64), Dense(4, 2, activation="softmax", seed=2)
    )
    x, y = rng.standard_normal((5, 3)), rng.integers(0, 2, 5)
    expl = explain(model, x, np.eye(2)[y], loss="cross_entropy", steps=3, weight=(1, 2, 3))
    assert expl.fused == "softmax_cross_entropy" and expl.m == 5
    assert expl.losses is not None and len(expl.losses) == 4 and expl.losses[-1] < expl.losses[0]
    assert expl.chains[0]["grad"] == pytest.approx(float(expl.layers[0].grad_W[1, 2]), rel=1e-12)
    assert expl.check["autodiff"] < 1e-6  # the second layer's weights are float32 values


def test_sizes_seed_and_no_bias() -> None:
    spec = {
        "layers": [{"sizes": [2, 3], "seed": 4, "activation": "relu"}, {"sizes": 1, "seed": 5}],
        "input": [[0.5, -1.0], [1.0, 2.0]],
        "target": [0.3, -0.2],
        "loss": "mse",
    }
    expl = explain(spec)
    assert expl.layers[0].W.shape == (3, 2) and expl.layers[1].b is None
    assert "grad_bias" not in expl.to_dict()["layers"][1]
    assert expl.check["finite_differences"] < 1e-7


# ---------------------------------------------------------------- errors
MAZUR_DICT = json.loads(MAZUR.read_text())


def _with(**changes: Any) -> dict[str, Any]:
    spec = json.loads(json.dumps(MAZUR_DICT))
    spec.update(changes)
    return spec


def test_error_weights_do_not_chain() -> None:
    spec = _with()
    spec["layers"][1]["weights"] = [[0.4, 0.45, 0.1], [0.5, 0.55, 0.1]]
    msg = (
        r"^layers\[1\] \(layer 2\): weights of shape \(2, 3\) do not chain: "
        r"a\[1\] has 2 entries, so expected \(n\[2\], 2\)\.$"
    )
    with pytest.raises(ShapeError, match=msg):
        load_spec(spec)


def test_error_first_layer_against_input() -> None:
    with pytest.raises(
        ShapeError, match=r"layers\[0\] \(layer 1\): weights of shape \(2, 2\) do not chain: a\[0\] = x has 3"
    ):
        load_spec(_with(input=[0.05, 0.1, 0.2]))


def test_error_unknown_activation() -> None:
    spec = _with()
    spec["layers"][0]["activation"] = "sigmod"
    with pytest.raises(
        ConfigError, match=r"^layers\[0\] \(layer 1\): unknown activation 'sigmod'; expected one of"
    ):
        load_spec(spec)


def test_error_target_length() -> None:
    msg = r"target: expected n\[2\] = 2 entries \(the output of layer 2\), got shape \(3,\)"
    with pytest.raises(ShapeError, match=msg):
        load_spec(_with(target=[0.01, 0.99, 0.5]))
    with pytest.raises(
        ShapeError, match=r"target: expected shape \(m, n\[2\]\) = \(2, 2\) for the 2 examples"
    ):
        load_spec(_with(input=[[0.05, 0.1], [0.1, 0.2]], target=[[0.01, 0.99]]))


def test_error_bias_and_loss_and_weight() -> None:
    spec = _with()
    spec["layers"][0]["bias"] = [0.35]
    with pytest.raises(
        ShapeError,
        match=r"layers\[0\] \(layer 1\): bias of shape \(1,\) does not match weights of shape \(2, 2\)",
    ):
        load_spec(spec)
    with pytest.raises(ConfigError, match=r"spec: unknown loss 'hinge'"):
        load_spec(_with(loss="hinge"))
    with pytest.raises(ConfigError, match=r"--weight 3:1,1: layer 3 does not exist; the layers are 1 to 2\."):
        explain(MAZUR, weight="3:1,1")
    with pytest.raises(ConfigError, match=r"--weight '2-1': expected LAYER:ROW,COLUMN"):
        explain(MAZUR, weight="2-1")


def test_run_prints_one_line_and_returns_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    spec = _with()
    spec["layers"][1]["weights"] = [[0.4, 0.45, 0.1], [0.5, 0.55, 0.1]]
    bad.write_text(json.dumps(spec))
    assert run(bad) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(
        "chainrule explain: layers[1] (layer 2): weights of shape (2, 3)"
    )
    assert run(tmp_path / "missing.json") == 2
    assert "cannot read it" in capsys.readouterr().err


# ---------------------------------------------------------------- formats
def test_json_format(tmp_path: Path) -> None:
    out = tmp_path / "e.json"
    assert run(MAZUR, fmt="json", output=out, steps=4, weight="2:1,2") == 0
    data = json.loads(out.read_text())
    assert data["loss"] == pytest.approx(0.298371109, abs=6e-10)
    for layer in data["layers"]:
        assert {"z", "a", "delta", "grad_weights", "grad_bias", "weights_after", "bias_after"} <= set(layer)
    assert len(data["losses"]) == 5
    assert data["check"]["autodiff"] < 1e-15 and data["check"]["finite_differences"] < 1e-9
    assert data["weight_chains"][0]["after"] == pytest.approx(0.408666186, abs=6e-10)  # Mazur's w6+


def test_text_and_markdown(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(MAZUR, weight="1:1,1") == 0
    text = capsys.readouterr().out
    for line in [
        "a[1] = sigmoid(z[1]) = [0.593269992, 0.596884378]",
        "C = 0.298371109",
        "delta[1] = (W[2]^T delta[2]) * phi'(z[1])",
        "= 0.0363503064 * 0.241300709 * 0.05 = 0.000438567734",
        "w_11[1] <- w_11[1] - alpha dC/dw_11[1] = 0.15 - 0.5 * 0.000438567734 = 0.149780716",
    ]:
        assert line in text
    md = render(explain(MAZUR), "markdown")
    assert isinstance(md, str)
    assert r"\frac{\partial C}{\partial {W^{[2]}}}" in md and r"\begin{bmatrix}" in md
    assert md.count("$$") % 2 == 0


def test_png_format() -> None:
    png = render(explain(MAZUR), "png")
    assert isinstance(png, bytes) and png.startswith(b"\x89PNG\r\n\x1a\n")
    big = {"layers": [{"sizes": [20, 2], "seed": 0}], "input": [0.0] * 20, "target": [0.0, 0.0]}
    with pytest.raises(ConfigError, match=r"png: the network is too large to draw \(layer 0 has 20 neurons"):
        render(explain(big), "png")
    with pytest.raises(ConfigError, match=r"unknown format 'svg'"):
        render(explain(MAZUR), "svg")


# ------------------------------------------------------------------ hostile specs (issue 14)
ONE = {
    "layers": [{"weights": [[0.5]], "bias": [0.0], "activation": "sigmoid"}],
    "input": [1.0],
    "target": [1.0],
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"layers": [{"weights": [[0.5]], "activation": ["relu"]}]}, r"unknown activation \['relu'\]"),
        ({"loss": {}}, r"spec: unknown loss \{\}"),
        ({"title": ["x"]}, r"spec: title must be a string, got \['x'\]"),
        ({"input": ["1.0"]}, r"input: the input must be numbers .* found '1.0' \(str\)"),
        ({"input": [True]}, r"input: the input must be numbers .* found True \(bool\)"),
        ({"layers": [{"weights": [[{"a": 1}]]}]}, r"weights must be numbers .* found \{'a': 1\} \(dict\)"),
        (
            {"layers": [{"sizes": 1, "seed": -1}]},
            r"layers\[0\] \(layer 1\): 'seed' must be an integer >= 0, got -1",
        ),
        ({"layers": [{"sizes": 1, "seed": 1.5}]}, r"'seed' must be an integer >= 0, got 1.5"),
        ({"layers": [{"sizes": 1, "seed": True}]}, r"'seed' must be an integer >= 0, got True"),
        ({"layers": [{"sizes": [True, 1]}]}, r"'sizes' must be \[n\[0\], n\[1\]\] \(positive integers\)"),
    ],
)
def test_a_value_of_the_wrong_json_type_is_a_config_error(change: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_spec({**ONE, **change})


def test_a_spec_nested_100000_deep_or_past_the_limit(tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text('{"layers": [], "input": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(
        ConfigError, match=r"deep.json: JSON nested too deeply to parse \(far over the limit "
    ):
        load_spec(deep)
    nested = tmp_path / "nested.json"
    deep_input: Any = [1.0]
    for _ in range(63):
        deep_input = [deep_input]  # 64 lists inside the spec object: 65 levels
    nested.write_text(json.dumps({**ONE, "input": deep_input}))
    with pytest.raises(
        LimitError, match=r"nested.json: 65 levels of JSON nesting is over the limit max_nesting_depth"
    ):
        load_spec(nested)


def test_a_spec_that_is_not_utf8(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(b'{"title": "caf\xe9",\n "layers": []}')
    with pytest.raises(
        ConfigError, match=r"bad.json: not UTF-8 at line 1, byte offset 14 \(bytes e9\); save the file"
    ):
        load_spec(bad)
    bom = tmp_path / "bom.json"
    bom.write_bytes(b"\xef\xbb\xbf" + json.dumps(ONE).encode())
    assert load_spec(bom).sizes == [1, 1]


def test_a_network_too_large_to_explain_is_refused_before_it_is_drawn() -> None:
    """A 2-1000-1000-2 network ran finite differences over every weight for minutes."""
    spec = {
        "layers": [{"sizes": [2, 1000], "seed": 0}, {"sizes": 1000, "seed": 1}, {"sizes": 2, "seed": 2}],
        "input": [0.1, 0.2],
        "target": [0.0, 1.0],
    }
    with pytest.raises(
        LimitError,
        match=r"spec: the network up to layers\[1\] \(layer 2\): 1002000 parameters is over the limit "
        r"max_explain_parameters = 5000 .* --max-explain-parameters N",
    ):
        load_spec(spec)
    from chainrule import limits

    small = {**spec, "layers": [{"sizes": [2, 3], "seed": 0}, {"sizes": 2, "seed": 1}]}
    with limits.override(max_explain_parameters=10):
        with pytest.raises(LimitError, match=r"layers\[0\] \(layer 1\): 9 parameters|layers\[1\]"):
            load_spec(small)
    assert load_spec(small).sizes == [2, 3, 2]


def test_steps_over_the_limit_and_raising_it() -> None:
    """``--steps 1000000000`` would run for about 25 hours while the loss list grows."""
    from chainrule import limits

    with limits.override(max_explain_steps=5):  # first: without the limit this is quick, not a hang
        with pytest.raises(LimitError, match=r"explain --steps: 6 steps"):
            explain(ONE, steps=6)
        assert len(explain(ONE, steps=5).losses or []) == 6
    with pytest.raises(
        LimitError,
        match=r"explain --steps: 1000000000 steps \(each a forward and a backward pass\) is over the limit "
        r"max_explain_steps = 100000 .* --max-explain-steps N",
    ):
        explain(ONE, steps=1_000_000_000)
