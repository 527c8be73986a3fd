"""Tests for chainrule.layers: Dense, Activation, Dropout, Sequential, mlp, from_config."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as tnf

from chainrule.errors import ConfigError, ShapeError
from chainrule.layers import LAYERS, Activation, Dense, Dropout, Sequential, from_config, mlp
from chainrule.tensor import Tensor

TORCH_ACT = {
    "identity": lambda z: z,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": torch.relu,
    "leaky_relu": lambda z: tnf.leaky_relu(z, 0.01),
    "softmax": lambda z: torch.softmax(z, dim=-1),
    "softplus": tnf.softplus,
    "gelu": lambda z: tnf.gelu(z, approximate="tanh"),
    "elu": tnf.elu,
}


def test_dense_shapes_and_formula(rng: np.random.Generator) -> None:
    layer = Dense(4, 3, seed=0, dtype=np.float64)
    assert layer.W.shape == (3, 4) and layer.b.shape == (3,)
    layer.b.data[:] = [1.0, 2.0, 3.0]
    x = rng.normal(size=(5, 4))
    np.testing.assert_allclose(layer(x).data, x @ layer.W.data.T + layer.b.data, rtol=1e-14)


def test_dense_explicit_weights_follow_the_notes_indexing() -> None:
    # weights[j][k] = w_jk: into neuron j from neuron k.
    # z_1 = 1*1 + 2*10 + 0.5 = 21.5, z_2 = 3*1 + 4*10 - 1 = 42
    layer = Dense(2, 2, bias=[0.5, -1.0], weights=[[1.0, 2.0], [3.0, 4.0]], dtype=np.float64)
    np.testing.assert_array_equal(layer(np.array([[1.0, 10.0]])).data, [[21.5, 42.0]])


def test_dense_without_bias() -> None:
    layer = Dense(2, 1, bias=False, weights=[[2.0, -1.0]])
    assert layer.b is None and [n for n, _ in layer.named_parameters()] == ["W"]
    assert repr(layer) == "Dense(in_features=2, out_features=1, bias=False)"
    np.testing.assert_array_equal(layer(np.array([[3.0, 1.0]], dtype=np.float32)).data, [[5.0]])


def test_dense_dtype_and_seed() -> None:
    a, b = Dense(5, 4, seed=7), Dense(5, 4, seed=7)
    assert a.W.dtype == np.float32
    np.testing.assert_array_equal(a.W.data, b.W.data)
    assert not np.array_equal(a.W.data, Dense(5, 4, seed=8).W.data)
    assert Dense(5, 4, dtype=np.float64).W.dtype == np.float64


@pytest.mark.parametrize("name", list(TORCH_ACT))
def test_dense_activation_matches_torch(name: str, rng: np.random.Generator, rel_err) -> None:
    layer = Dense(4, 3, activation=name, seed=1, dtype=np.float64)
    layer.b.data[:] = rng.normal(size=3)
    x = rng.normal(size=(6, 4))
    out = layer(x)
    out.sum().backward() if name != "softmax" else (out * Tensor(x[:, :3])).sum().backward()
    tw = torch.tensor(layer.W.data, requires_grad=True)
    tb = torch.tensor(layer.b.data, requires_grad=True)
    tout = TORCH_ACT[name](torch.tensor(x) @ tw.T + tb)
    (tout.sum() if name != "softmax" else (tout * torch.tensor(x[:, :3])).sum()).backward()
    assert rel_err(out.data, tout.detach().numpy()) < 1e-13
    assert rel_err(layer.W.grad, tw.grad.numpy()) < 1e-12
    assert rel_err(layer.b.grad, tb.grad.numpy()) < 1e-12


def test_dense_repr() -> None:
    assert repr(Dense(3, 2, activation="relu")) == "Dense(in_features=3, out_features=2, activation='relu')"


def test_dense_errors() -> None:
    with pytest.raises(
        ConfigError, match=r"Dense: sizes must be positive, got in_features=0, out_features=2"
    ):
        Dense(0, 2)
    with pytest.raises(
        ShapeError,
        match=re.escape(
            "Dense(in_features=3, out_features=2): "
            "expected weights of shape (2, 3) (n[l], n[l-1]), got (3, 2)."
        ),
    ):
        Dense(3, 2, weights=np.zeros((3, 2)))
    with pytest.raises(ShapeError, match=r"expected bias of shape \(2,\), got \(3,\)"):
        Dense(3, 2, bias=[1.0, 2.0, 3.0])
    with pytest.raises(ConfigError, match=r"unknown activation 'swish'"):
        Dense(3, 2, activation="swish")
    with pytest.raises(ConfigError, match=r"unknown initializer 'orthogonal'"):
        Dense(3, 2, init="orthogonal")


def test_wrong_input_shape_names_the_layer() -> None:
    net = Sequential(Dense(4, 3, seed=0), Dense(3, 2, seed=0))
    with pytest.raises(
        ShapeError,
        match="^"
        + re.escape(
            "layers[0] Dense(in_features=4, out_features=3): expected input of shape (m, 4), got (2, 5)."
        )
        + "$",
    ):
        net(np.zeros((2, 5), dtype=np.float32))
    with pytest.raises(
        ShapeError,
        match=r"^Dense\(in_features=4, out_features=3\): expected input of shape \(m, 4\), got \(2, 2, 4\)",
    ):
        Dense(4, 3)(np.zeros((2, 2, 4), dtype=np.float32))


def test_activation_layer() -> None:
    layer = Activation("relu")
    assert repr(layer) == "Activation('relu')" and layer.parameters() == []
    np.testing.assert_array_equal(layer(np.array([-1.0, 2.0])).data, [0.0, 2.0])


# ---------------------------------------------------------------- dropout
def test_dropout_eval_is_identity() -> None:
    layer = Dropout(0.5, seed=0).eval()
    x = Tensor(np.ones((10, 10)))
    assert layer(x) is x


def test_dropout_train_zeros_about_p_and_scales() -> None:
    layer = Dropout(0.3, seed=0)
    out = layer(np.ones((200, 500))).data
    np.testing.assert_allclose(np.unique(out), [0.0, 1 / 0.7], rtol=1e-15)
    assert abs((out == 0).mean() - 0.3) < 0.01  # 1e5 draws: std 0.0015
    assert abs(out.mean() - 1.0) < 0.02  # inverted dropout keeps the expectation


def test_dropout_gradient_is_the_mask() -> None:
    layer = Dropout(0.5, seed=1)
    x = Tensor(np.ones((4, 6)), requires_grad=True)
    out = layer(x)
    out.sum().backward()
    np.testing.assert_array_equal(x.grad, out.data)


def test_dropout_seeded_and_rng_state() -> None:
    a, b = Dropout(0.5, seed=3), Dropout(0.5, seed=3)
    x = np.ones((3, 8))
    np.testing.assert_array_equal(a(x).data, b(x).data)
    state = a.rng_state()
    first = a(x).data
    a.set_rng_state(state)
    np.testing.assert_array_equal(a(x).data, first)


def test_dropout_errors_and_repr() -> None:
    assert repr(Dropout(0.25)) == "Dropout(p=0.25)"
    with pytest.raises(ConfigError, match=r"Dropout: p must be in \[0, 1\), got 1.0"):
        Dropout(1.0)


# ------------------------------------------------------------- sequential
def test_sequential_chain_params_and_modes() -> None:
    net = Sequential([Dense(2, 3, activation="tanh", seed=0), Dropout(0.5), Dense(3, 1, seed=1)])
    assert len(net) == 3 and net[1].position == "layers[1]"
    assert [n for n, _ in net.named_parameters()] == ["layers.0.W", "layers.0.b", "layers.2.W", "layers.2.b"]
    net.eval()
    assert not any(layer.training for layer in net)
    net.train()
    assert all(layer.training for layer in net)
    assert "(0): Dense(in_features=2, out_features=3, activation='tanh')" in repr(net)
    assert net.dense_layers() == [net[0], net[2]]


def test_sequential_logits_skip_the_last_activation(rng: np.random.Generator) -> None:
    net = Sequential(Dense(3, 4, activation="softmax", seed=0, dtype=np.float64))
    x = rng.normal(size=(2, 3))
    z = net(x, logits=True).data
    np.testing.assert_allclose(net(x).data, np.exp(z) / np.exp(z).sum(1, keepdims=True), rtol=1e-14)
    net2 = Sequential(Dense(3, 4, seed=0, dtype=np.float64), Activation("softmax"))
    assert net2.output_activation == "softmax"
    np.testing.assert_array_equal(net2(x, logits=True).data, z)


def test_sequential_zero_grad() -> None:
    net = mlp([2, 2], seed=0)
    net(np.ones((1, 2), dtype=np.float32)).sum().backward()
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_sequential_errors() -> None:
    with pytest.raises(ConfigError, match=r"Sequential: needs at least one layer"):
        Sequential()
    with pytest.raises(ConfigError, match=r"Sequential: layers\[1\] is a int, not a Module"):
        Sequential(Dense(1, 1), 3)  # type: ignore[arg-type]


# -------------------------------------------------------------------- mlp
def test_mlp_builds_the_layers() -> None:
    net = mlp([4, 8, 6, 3], "tanh", "softmax", dropout=0.2, seed=0)
    kinds = [type(layer).__name__ for layer in net]
    assert kinds == ["Dense", "Dropout", "Dense", "Dropout", "Dense"]
    assert [d.activation for d in net.dense_layers()] == ["tanh", "tanh", "softmax"]
    assert net.output_activation == "softmax"
    assert net.dense_layers()[0].init == "glorot_uniform"
    assert mlp([4, 3], "relu").dense_layers()[0].init == "glorot_uniform"  # identity output
    assert mlp([4, 5, 3], "relu").dense_layers()[0].init == "he_uniform"


def test_mlp_same_seed_same_weights() -> None:
    a, b, c = mlp([5, 7, 2], seed=3), mlp([5, 7, 2], seed=3), mlp([5, 7, 2], seed=4)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert p.data.tobytes() == q.data.tobytes()
    assert a.parameters()[0].data.tobytes() != c.parameters()[0].data.tobytes()


def test_mlp_errors() -> None:
    with pytest.raises(ConfigError, match=r"mlp: sizes needs at least input and output sizes, got \[3\]"):
        mlp([3])


# ------------------------------------------------------------- from_config
def test_from_config_round_trip() -> None:
    net = mlp([3, 4, 2], "elu", "sigmoid", bias=False, dropout=0.1, dtype=np.float64)
    rebuilt = from_config(net.config())
    assert rebuilt.config() == net.config()
    assert repr(rebuilt) == repr(net)
    assert from_config(Activation("tanh").config()).activation == "tanh"
    assert set(LAYERS) >= {"Dense", "Activation", "Dropout", "Sequential"}


def test_from_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"from_config: unknown layer type 'Conv2d'; expected one of \["):
        from_config({"type": "Conv2d"})
    with pytest.raises(
        ConfigError, match=r"from_config: Dense config is missing or has a bad field: 'in_features'"
    ):
        from_config({"type": "Dense"})


# ------------------------------------------------------------ the boundary issue's hazards
def test_a_re_registered_activation_is_used_by_dense() -> None:
    from chainrule import functional

    original = functional.ACTIVATIONS["relu"]
    calls: list[int] = []

    @functional.activation("relu")
    def counting_relu(z: Tensor) -> Tensor:
        calls.append(1)
        return original(z) * 2.0

    try:
        layer = Dense(3, 2, activation="relu", seed=0, dtype=np.float64)
        x = np.random.default_rng(0).standard_normal((4, 3))
        out = layer(Tensor(x))
        assert calls == [1]  # the registered function ran, not the built-in fused op
        z = x @ layer.W.data.T + layer.b.data
        np.testing.assert_allclose(out.numpy(), 2.0 * np.maximum(z, 0))
        assert out.op != "dense"
    finally:
        functional.activation("relu", dense="relu")(original)
    assert Dense(3, 2, activation="relu", seed=0)(Tensor(np.ones((1, 3), np.float32))).op == "dense"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_training_never_writes_into_the_callers_arrays(dtype: Any) -> None:
    from chainrule.train import Trainer

    rng = np.random.default_rng(0)
    weights = rng.standard_normal((3, 4)).astype(dtype)
    bias = rng.standard_normal(3).astype(dtype)
    w0, b0 = weights.copy(), bias.copy()
    layer = Dense(4, 3, bias=bias, weights=weights, dtype=dtype)
    assert not np.shares_memory(layer.W.data, weights) and not np.shares_memory(layer.b.data, bias)
    x = rng.standard_normal((32, 4)).astype(dtype)
    Trainer(Sequential(layer), "softmax_cross_entropy", "sgd", 0.5).fit(
        x, rng.integers(0, 3, 32), 2, verbose=0
    )
    assert not np.array_equal(layer.b.data, b0)  # the layer trained
    np.testing.assert_array_equal(bias, b0)  # the caller's arrays did not move
    np.testing.assert_array_equal(weights, w0)


# ------------------------------------------------------------------ limits and seeds (issue 14)
def test_a_huge_layer_is_refused_before_allocation() -> None:
    """``--layers 1000000000`` was killed by the kernel with no message."""
    from chainrule import limits
    from chainrule.errors import LimitError

    width = r"mlp 64-1000000000-10: 1000000000 units in one layer is over the limit max_layer_width = 1000000"
    with pytest.raises(LimitError, match=width + r" .* --max-layer-width N on the command line"):
        mlp([64, 1_000_000_000, 10])
    total = (
        r"mlp 64-20000-20000-10: 401520010 parameters \(weights and biases\) is over the limit max_parameters"
    )
    with pytest.raises(LimitError, match=total + " = 100000000"):
        mlp([64, 20_000, 20_000, 10])
    with pytest.raises(LimitError, match=r"Dense 30000-30000: 900030000 parameters"):
        Dense(30_000, 30_000)
    with limits.override(max_parameters=10):
        with pytest.raises(LimitError, match=r"mlp 4-3: 15 parameters .* over the limit max_parameters = 10"):
            mlp([4, 3])
        assert mlp([4, 2], bias=False)[0].W.shape == (2, 4)


@pytest.mark.parametrize("seed", [-1, 1.5, "0", True])
def test_a_bad_seed_is_a_config_error(seed: object) -> None:
    with pytest.raises(ConfigError, match=r"seed must be an integer >= 0, a numpy Generator or None, got"):
        mlp([2, 2], seed=seed)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"seed must be an integer >= 0"):
        Dense(2, 2, seed=seed)  # type: ignore[arg-type]
