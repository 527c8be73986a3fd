"""Tests for chainrule.onnx: export checked by onnxruntime, import from PyTorch, skl2onnx and chainrule.

onnxruntime is the runtime users deploy with; it runs every exported model
here. PyTorch 2.13's two exporters (the default, torch.export-based one, and
the legacy TorchScript one) and skl2onnx write the graphs that are imported.
"""

from __future__ import annotations

import os
import sys
import tracemalloc
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import chainrule.onnx as cro
from chainrule import functional
from chainrule.errors import ChainruleError, ConfigError, SerializationError, ShapeError
from chainrule.explain import explain
from chainrule.layers import Activation, Dense, Dropout, Sequential, mlp
from chainrule.losses import get_loss
from chainrule.onnx.activations import check_table, float64_function
from chainrule.onnx.reader import read
from chainrule.tensor import Tensor
from chainrule.train import Trainer, evaluate, predict

ALL = ["identity", "sigmoid", "tanh", "relu", "leaky_relu", "softplus", "elu", "gelu", "softmax"]
TOLERANCE = {np.float32: 1e-6, np.float64: 1e-12}


def session(model: onnx.ModelProto | str | Path) -> ort.InferenceSession:
    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    return ort.InferenceSession(source, providers=["CPUExecutionProvider"])


def max_error(got: np.ndarray, want: np.ndarray) -> float:
    """``max |got - want|``, relative to ``max(1, max |want|)``."""
    assert got.shape == want.shape, (got.shape, want.shape)
    return float(np.max(np.abs(got.astype(np.float64) - want)) / max(1.0, float(np.max(np.abs(want)))))


# --- export: chainrule -> ONNX -> onnxruntime --------------------------------------------------


def test_every_chainrule_activation_has_an_onnx_form() -> None:
    assert check_table() == []
    assert set(cro.ACTIVATIONS) == set(functional.ACTIVATIONS)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("activation", ALL)
def test_round_trip_through_onnxruntime(tmp_path: Path, activation: str, dtype: Any) -> None:
    """Hidden layers and output with ``activation``, dropout between: onnxruntime agrees at 1, 7, 1024."""
    model = mlp([5, 16, 12, 3], activation, activation, dropout=0.2, seed=1, dtype=dtype)
    path = tmp_path / "model.onnx"
    cro.export(model, path)
    run = session(path)
    rng = np.random.default_rng(0)
    for m in (1, 7, 1024):
        x = rng.normal(size=(m, 5)).astype(dtype)
        (got,) = run.run(None, {"input": x})
        assert got.dtype == dtype and got.shape == (m, 3)
        assert max_error(got, predict(model, x)) <= TOLERANCE[dtype]
    back = cro.load(path)
    assert back.config() == model.config()  # Dropout comes back from the stored architecture
    for p, q in zip(back.parameters(), model.parameters(), strict=True):
        np.testing.assert_array_equal(p.data, q.data)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_layers_without_bias_and_standalone_activations(dtype: Any) -> None:
    model = Sequential(
        Dense(4, 6, bias=False, activation="elu", seed=0, dtype=dtype),
        Dropout(0.5),
        Dense(6, 5, seed=1, dtype=dtype),
        Activation("gelu"),
        Dense(5, 2, bias=False, seed=2, dtype=dtype),
        Activation("softmax"),
    )
    proto = cro.to_onnx(model)
    assert [n.op_type for n in proto.graph.node] == ["Gemm", "Elu", "Gemm", "Gelu", "Gemm", "Softmax"]
    x = np.random.default_rng(1).normal(size=(7, 4)).astype(dtype)
    assert max_error(session(proto).run(None, {"input": x})[0], predict(model, x)) <= TOLERANCE[dtype]
    assert cro.from_onnx(proto).config() == model.config()


def test_extreme_inputs_stay_finite_and_agree() -> None:
    """Logits of +-1e4: every activation stays finite in onnxruntime, as in chainrule."""
    x = np.array([[-1e4], [-100.0], [-20.0], [0.0], [20.0], [100.0], [1e4]])
    for dtype in (np.float32, np.float64):
        for activation in ALL[:-1]:
            model = Sequential(Dense(1, 1, weights=[[1.0]], activation=activation, dtype=dtype))
            got = session(cro.to_onnx(model)).run(None, {"input": x.astype(dtype)})[0]
            assert np.isfinite(got).all(), activation
            assert max_error(got, predict(model, x.astype(dtype))) <= TOLERANCE[dtype], activation


def test_graph_names_axes_opset_and_metadata() -> None:
    model = mlp([3, 4, 2], "tanh", "softmax", seed=0)
    proto = cro.to_onnx(model, input_name="pixels", output_name="probabilities", metadata={"loss": "ce"})
    graph = proto.graph
    assert [i.name for i in graph.input] == ["pixels"] and [o.name for o in graph.output] == ["probabilities"]
    for value, n in ((graph.input[0], 3), (graph.output[0], 2)):
        dims = value.type.tensor_type.shape.dim
        assert (dims[0].dim_param, dims[1].dim_value) == ("batch", n)
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", cro.OPSET)] and cro.OPSET == 20
    assert proto.ir_version == 9  # the oldest IR that carries opset 20, for older runtimes
    assert sorted(i.name for i in graph.initializer) == ["W[1]", "W[2]", "b[1]", "b[2]"]
    assert [n.output[0] for n in graph.node] == ["z[1]", "a[1]", "z[2]", "probabilities"]
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["chainrule.architecture"] == __import__("json").dumps(model.config())
    assert props["chainrule.metadata"] == '{"loss": "ce"}'
    assert proto.producer_name == "chainrule"
    onnx.checker.check_model(proto, full_check=True)


def test_float64_export_uses_chainrules_own_functions() -> None:
    """onnxruntime lacks float64 LeakyRelu/Softplus/Elu and its float64 Gelu is ~3e-8: functions instead."""
    model = Sequential(*[Dense(2, 2, activation=a, seed=0, dtype=np.float64) for a in ALL[1:-1]])
    proto = cro.to_onnx(model)
    assert {f.name for f in proto.functions} == {"LeakyRelu", "Softplus", "Elu", "Gelu"}
    assert {(n.domain, n.op_type) for n in proto.graph.node if n.domain} == {
        ("chainrule", name) for name in ("LeakyRelu", "Softplus", "Elu", "Gelu")
    }
    assert [n.op_type for n in cro.to_onnx(model, dtype="float32").graph.node if n.domain] == []


def test_float64_model_exported_as_float32() -> None:
    model = mlp([3, 5, 2], "relu", seed=0, dtype=np.float64)
    proto = cro.to_onnx(model, dtype=np.float32)
    x = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    assert max_error(session(proto).run(None, {"input": x})[0], predict(model, x)) <= 1e-6


def test_export_refuses_what_onnx_cannot_hold() -> None:
    with pytest.raises(ConfigError, match=r"dtype must be float32 or float64, got 'int32'"):
        cro.to_onnx(mlp([2, 2]), dtype="int32")
    with pytest.raises(ConfigError, match=r"two different non-empty strings, got 'x' and 'x'"):
        cro.to_onnx(mlp([2, 2]), input_name="x", output_name="x")
    with pytest.raises(ConfigError, match=r"no Dense layer"):
        cro.to_onnx(Sequential(Activation("relu")))
    with pytest.raises(
        ShapeError, match=r"layers\[1\] Dense\(in_features=5, out_features=1\) does not chain: a\[1\] has 3"
    ):
        cro.to_onnx(Sequential(Dense(2, 3), Dense(5, 1)))
    with pytest.raises(ConfigError, match=r"expected a Sequential or a Dense layer, got Dropout"):
        cro.to_onnx(Dropout(0.1))
    with pytest.raises(ConfigError, match=r"layers\[1\] is a Sequential, which has no ONNX form"):
        cro.to_onnx(Sequential(Dense(2, 2), Sequential(Dense(2, 2))))


def test_an_activation_without_an_onnx_row_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(functional.ACTIVATIONS, "swish", functional.ACTIVATIONS["sigmoid"])
    assert check_table() == ["swish"]
    with pytest.raises(ConfigError, match=r"layers\[0\] uses activation 'swish', which has no ONNX form"):
        cro.to_onnx(Sequential(Dense(2, 2, activation="swish")))


def test_export_checks_before_writing_and_writes_atomically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "model.onnx"
    cro.export(mlp([2, 3]), path)
    before = path.read_bytes()

    def invalid(*args: object, **kwargs: object) -> None:
        raise onnx.checker.ValidationError("bad graph")

    monkeypatch.setattr(onnx.checker, "check_model", invalid)
    with pytest.raises(onnx.checker.ValidationError):
        cro.export(mlp([2, 5]), path)
    monkeypatch.undo()

    def crash(*args: object) -> None:
        raise OSError("disk died")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk died"):
        cro.export(mlp([2, 5]), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]  # no temporary file left


# --- import: PyTorch -------------------------------------------------------------------------


def torch_net(*, dtype: torch.dtype = torch.float32) -> torch.nn.Sequential:
    """Linear layers (one without bias) and every activation chainrule reads, as PyTorch writes them.

    16 units: weights of 1 KiB, which PyTorch's default exporter keeps in an external ``.data`` file.
    """
    nn = torch.nn
    torch.manual_seed(0)
    n = 16
    layers = [
        nn.Flatten(),
        nn.Linear(6, n),
        nn.ReLU(),
        nn.Linear(n, n),
        nn.Tanh(),
        nn.Linear(n, n, bias=False),
    ]
    layers += [nn.Sigmoid(), nn.Dropout(0.3), nn.Linear(n, n), nn.LeakyReLU(), nn.Linear(n, n), nn.ELU()]
    layers += [nn.Linear(n, n), nn.Softplus(), nn.Linear(n, n), nn.GELU(approximate="tanh"), nn.Linear(n, 3)]
    layers += [nn.Softmax(dim=-1)]
    return nn.Sequential(*layers).to(dtype).eval()


def torch_export(net: torch.nn.Module, x: torch.Tensor, path: Path, dynamo: bool) -> None:
    options: dict[str, Any] = {"input_names": ["x"], "output_names": ["y"], "dynamo": dynamo}
    if dynamo:
        options["dynamic_shapes"] = ({0: torch.export.Dim("batch")},)
    else:
        options["dynamic_axes"] = {"x": {0: "batch"}, "y": {0: "batch"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
        torch.onnx.export(net, (x,), str(path), verbose=False, **options)


@pytest.mark.parametrize("dynamo", [True, False], ids=["torch.export", "legacy"])
def test_pytorch_sequential_imports_and_predicts_as_torch(tmp_path: Path, dynamo: bool) -> None:
    """Default (dynamo) and legacy exporters; input (m, 2, 3) flattened; float32 to 1e-6."""
    net = torch_net()
    path = tmp_path / "torch.onnx"
    torch_export(net, torch.randn(2, 2, 3, dtype=torch.float32), path, dynamo)
    model = cro.load(path)
    external = [
        t.name for t in onnx.load(path, load_external_data=False).graph.initializer if t.data_location
    ]
    assert bool(external) == dynamo  # the default exporter keeps the 1 KiB weights beside the model
    assert [layer.activation for layer in model.dense_layers()] == [
        "relu", "tanh", "sigmoid", "leaky_relu", "elu", "softplus", "gelu", "softmax"
    ]  # fmt: skip
    assert model.dense_layers()[2].b is None
    for m in (1, 7, 1024):
        x = torch.randn(m, 2, 3, dtype=torch.float32) * 3
        with torch.no_grad():
            want = net(x).numpy()
        assert max_error(predict(model, x.reshape(m, 6).numpy()), want) <= 1e-6


def test_pytorch_model_fine_tunes_with_torchs_gradients(tmp_path: Path) -> None:
    """float64: the imported model's gradients are PyTorch autograd's; Trainer then lowers the loss."""
    nn = torch.nn
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(4, 6), nn.ELU(), nn.Linear(6, 5), nn.Softplus(), nn.Linear(5, 3)).double()
    path = tmp_path / "logits.onnx"
    torch_export(net, torch.randn(2, 4), path, dynamo=False)
    model = cro.load(path)
    assert model.parameters()[0].dtype == np.float64 and model.output_activation == "identity"
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 4)), rng.integers(0, 3, 32)
    torch.nn.functional.cross_entropy(net(torch.from_numpy(x)), torch.from_numpy(y)).backward()
    get_loss("softmax_cross_entropy")(model(Tensor(x)), y).backward()
    torch_grads = [p.grad.numpy() for p in net.parameters()]
    for ours, theirs in zip(model.parameters(), torch_grads, strict=True):
        np.testing.assert_allclose(ours.grad, theirs, rtol=1e-10, atol=1e-12)
    model.zero_grad()
    before = evaluate(model, x, y, "softmax_cross_entropy")["loss"]
    Trainer(model, "softmax_cross_entropy", "adam", lr=0.05, batch_size=8).fit(x, y, epochs=20, verbose=0)
    assert evaluate(model, x, y, "softmax_cross_entropy")["loss"] < 0.5 * before


def test_pytorch_exact_gelu_is_refused_naming_the_node(tmp_path: Path) -> None:
    nn = torch.nn
    net = (
        nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 4), nn.GELU(), nn.Linear(4, 2)).float().eval()
    )
    path = tmp_path / "gelu.onnx"
    torch_export(net, torch.randn(2, 3, dtype=torch.float32), path, dynamo=False)
    with pytest.raises(
        SerializationError,
        match=r"gelu.onnx: graph.node\[3\] \(Gelu '/3/Gelu'\): approximate='none', but chainrule's gelu has "
        r"approximate='tanh' \(the tanh approximation",
    ):
        cro.load(path)


# --- import: scikit-learn via skl2onnx ---------------------------------------------------------


@pytest.mark.parametrize("classes", [2, 3])
@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic"])
def test_sklearn_mlp_classifier_predict_proba(classes: int, activation: str) -> None:
    """skl2onnx's default graph (with ZipMap) imports; the binary [1 - p, p] becomes a 2-unit softmax."""
    from skl2onnx import to_onnx
    from sklearn.neural_network import MLPClassifier

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(int) + (classes == 3) * (x[:, 2] > 0.5)
    clf = MLPClassifier(hidden_layer_sizes=(8, 6), activation=activation, max_iter=50, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # not converged in 50 iterations: fine for a test
        clf.fit(x, y)
    model = cro.from_onnx(to_onnx(clf, x[:1]))
    assert model.output_activation == "softmax" and model.dense_layers()[-1].out_features == classes
    assert max_error(predict(model, x), clf.predict_proba(x)) <= 1e-6
    assert (predict(model, x).argmax(axis=1) == clf.predict(x)).all()


def test_sklearn_mlp_regressor() -> None:
    from skl2onnx import to_onnx
    from sklearn.neural_network import MLPRegressor

    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 3)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reg = MLPRegressor(hidden_layer_sizes=(8,), max_iter=30, random_state=0).fit(x, x @ [1.0, -2.0, 0.5])
    model = cro.from_onnx(to_onnx(reg, x[:1]))  # ends with Reshape(-1, 1): a no-op on (m, 1)
    assert max_error(predict(model, x)[:, 0], reg.predict(x)) <= 1e-6


# --- import: explain on the imported weights ---------------------------------------------------


def test_explain_one_example_of_an_imported_model(tmp_path: Path) -> None:
    nn = torch.nn
    torch.manual_seed(2)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).float().eval()
    path = tmp_path / "small.onnx"
    torch_export(net, torch.randn(1, 3, dtype=torch.float32), path, dynamo=False)
    x, label = np.array([0.5, -1.0, 2.0]), 1
    expl = explain(cro.load(path), x, np.eye(2)[label], loss="softmax_cross_entropy")
    want = torch.nn.functional.cross_entropy(
        net(torch.tensor(x[None], dtype=torch.float32)), torch.tensor([label])
    )
    assert abs(expl.loss - want.item()) <= 1e-6
    np.testing.assert_allclose(expl.layers[0].W, net[0].weight.detach().numpy(), rtol=0, atol=0)
    assert expl.check["autodiff"] < 1e-12


# --- refused files: one line each, nothing huge allocated ---------------------------------------


def graph_model(
    nodes: list[onnx.NodeProto], weights: dict[str, np.ndarray], n_in: int = 4, **kw: Any
) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", n_in])],
        [helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, ["batch", None])],
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], **kw)


W84, W38 = np.ones((8, 4)), np.ones((3, 8))


def test_unsupported_operator_in_the_middle_is_named() -> None:
    nodes = [
        helper.make_node("Gemm", ["x", "W1"], ["z1"], name="first", transB=1),
        helper.make_node("HardSigmoid", ["z1"], ["a1"], name="odd"),
        helper.make_node("Gemm", ["a1", "W2"], ["y"], name="second", transB=1),
    ]
    with pytest.raises(
        SerializationError,
        match=r"graph.node\[1\] \(HardSigmoid 'odd'\): operator HardSigmoid is not supported",
    ):
        cro.from_onnx(graph_model(nodes, {"W1": W84, "W2": W38}))


def test_a_branch_is_not_a_chain() -> None:
    nodes = [
        helper.make_node("Gemm", ["x", "W1"], ["z1"], name="a", transB=1),
        helper.make_node("Relu", ["z1"], ["a1"], name="b"),
        helper.make_node("Add", ["a1", "z1"], ["s"], name="skip"),
        helper.make_node("Gemm", ["s", "W2"], ["y"], name="c", transB=1),
    ]
    with pytest.raises(
        SerializationError,
        match=r"graph.node\[2\] \(Add 'skip'\): reads 'z1' too, which graph.node\[1\] reads: the graph "
        r"branches",
    ):
        cro.from_onnx(graph_model(nodes, {"W1": W84, "W2": W38}))


def test_shapes_that_do_not_chain() -> None:
    nodes = [
        helper.make_node("Gemm", ["x", "W1"], ["z1"], name="a", transB=1),
        helper.make_node("Gemm", ["z1", "W2"], ["y"], name="b", transB=1),
    ]
    with pytest.raises(
        ShapeError,
        match=r"graph.node\[1\] \(Gemm 'b'\) \(layer 2\): weight of shape \(3, 5\) \(n\[2\], n\[1\]\) "
        r"does not chain: a\[1\] has 8 entries",
    ):
        cro.from_onnx(graph_model(nodes, {"W1": W84, "W2": np.ones((3, 5))}))
    with pytest.raises(ShapeError, match=r"weight of shape \(8, 5\) .* a\[0\] = x has 4 entries"):
        cro.from_onnx(graph_model(nodes[:1], {"W1": np.ones((8, 5))}))
    bias = [helper.make_node("Gemm", ["x", "W1", "b1"], ["y"], name="a", transB=1)]
    with pytest.raises(
        ShapeError, match=r"bias 'b1' of shape \(3,\) does not match layer 1 with n\[1\] = 8 units"
    ):
        cro.from_onnx(graph_model(bias, {"W1": W84, "b1": np.ones(3)}))


def claimed(dims: list[int], payload: bytes) -> onnx.TensorProto:
    tensor = onnx.TensorProto(name="W1", data_type=TensorProto.FLOAT, dims=dims)
    tensor.raw_data = payload
    return tensor


def test_a_billion_unit_layer_is_refused_before_any_allocation() -> None:
    nodes = [helper.make_node("Gemm", ["x", "W1"], ["y"], name="huge", transB=1)]
    model = graph_model(nodes, {})
    model.graph.initializer.append(claimed([10**9, 4], b"\0" * 16))
    tracemalloc.start()
    try:
        with pytest.raises(
            SerializationError,
            match=r"initializer 'W1' claims shape \(1000000000, 4\) = 4,000,000,000 values",
        ):
            cro.from_onnx(model)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5 * 2**20, f"peak {peak} bytes"
    small = graph_model(nodes, {})
    small.graph.initializer.append(claimed([8, 4], b"\0" * 16))
    with pytest.raises(SerializationError, match=r"claims shape \(8, 4\) \(128 bytes\) but holds 16 bytes"):
        cro.from_onnx(small)
    with pytest.raises(SerializationError, match=r"more than the limit of 10 \(max_parameters\)"):
        cro.from_onnx(graph_model(nodes, {"W1": W84}), max_parameters=10)


def external_model(tmp_path: Path, location: str, offset: int = 0, length: int = 32) -> Path:
    """A one-layer model whose weight ``W1 (4, 2)`` lives at ``location`` (written beside it if plain)."""
    model = graph_model([helper.make_node("MatMul", ["x", "W1"], ["y"], name="mm")], {})
    tensor = onnx.TensorProto(name="W1", data_type=TensorProto.FLOAT, dims=[4, 2])
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", str(offset)), ("length", str(length))):
        tensor.external_data.add(key=key, value=value)
    model.graph.initializer.append(tensor)
    path = tmp_path / "ext.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def test_external_weights_are_read_only_from_beside_the_model(tmp_path: Path) -> None:
    values = np.arange(8, dtype=np.float32).reshape(4, 2)
    (tmp_path / "ext.onnx.data").write_bytes(b"pad!" + values.tobytes())
    model = cro.load(external_model(tmp_path, "ext.onnx.data", offset=4))
    np.testing.assert_array_equal(model.layers[0].W.data, values.T)
    cases = [
        ("../ext.onnx.data", 0, 32, r"external data '../ext.onnx.data' is not a file inside the model's"),
        ("/etc/passwd", 0, 32, r"external data '/etc/passwd' is not a file inside the model's folder"),
        ("absent.data", 0, 32, r"its external data file 'absent.data' is missing beside the model"),
        ("ext.onnx.data", 8, 32, r"needs 32 bytes, but its external data claims 32 bytes at offset 8 of "
         r"'ext.onnx.data', which has 36"),
        ("ext.onnx.data", 0, 16, r"needs 32 bytes, but its external data claims 16 bytes"),
    ]  # fmt: skip
    for location, offset, length, message in cases:
        with pytest.raises(SerializationError, match=message):
            cro.load(external_model(tmp_path, location, offset, length))
    outside = tmp_path.parent / f"{tmp_path.name}-outside.data"
    outside.write_bytes(values.tobytes())
    (tmp_path / "link.data").symlink_to(outside)
    with pytest.raises(SerializationError, match=r"'link.data' is not a file inside the model's folder"):
        cro.load(external_model(tmp_path, "link.data"))
    with pytest.raises(
        SerializationError, match=r"keeps its values in an external file; read the model with load"
    ):
        cro.from_onnx(read(external_model(tmp_path, "ext.onnx.data", offset=4)))


def test_odd_weights_are_refused() -> None:
    nodes = [helper.make_node("MatMul", ["x", "W1"], ["y"], name="mm")]
    model = graph_model(nodes, {})
    model.graph.initializer.append(numpy_helper.from_array(np.ones((4, 2), np.float16), "W1"))
    with pytest.raises(SerializationError, match=r"initializer 'W1' has type float16"):
        cro.from_onnx(model)
    computed = [
        helper.make_node("Relu", ["x"], ["r"], name="r"),
        helper.make_node("MatMul", ["r", "r"], ["y"], name="mm"),
    ]
    with pytest.raises(SerializationError, match=r"its weight 'r' is computed, not a stored constant"):
        cro.from_onnx(graph_model(computed, {}))


@pytest.mark.parametrize(
    ("node", "message"),
    [
        (
            helper.make_node("LeakyRelu", ["z"], ["y"], name="lr", alpha=0.2),
            r"alpha=0.2, but chainrule's leaky_relu has alpha=0.01",
        ),
        (
            helper.make_node("Elu", ["z"], ["y"], name="e", alpha=0.5),
            r"alpha=0.5, but chainrule's elu has alpha=1",
        ),
        (
            helper.make_node("Softmax", ["z"], ["y"], name="s", axis=0),
            r"axis=0, but chainrule's softmax has axis=-1",
        ),
        (
            helper.make_node("Relu", ["z"], ["y"], name="r", extra=1),
            r"attribute extra=1 is not part of chainrule's relu",
        ),
    ],
)
def test_activation_attributes_must_match(node: onnx.NodeProto, message: str) -> None:
    nodes = [helper.make_node("Gemm", ["x", "W1"], ["z"], name="g", transB=1), node]
    with pytest.raises(SerializationError, match=rf"graph.node\[1\] .*: {message}"):
        cro.from_onnx(graph_model(nodes, {"W1": W84}))


def test_a_tampered_chainrule_function_is_not_trusted() -> None:
    proto = cro.to_onnx(Sequential(Dense(2, 2, activation="softplus", dtype=np.float64)))
    assert cro.from_onnx(proto).layers[0].activation == "softplus"
    body = proto.functions[0]
    body.node[2].op_type = "Min"  # max(z, 0) -> min(z, 0): no longer chainrule's softplus
    with pytest.raises(
        SerializationError,
        match=r"graph.node\[1\] \(Softplus 'layers\[0\].Softplus'\): operator chainrule.Softplus is not "
        r"supported",
    ):
        cro.from_onnx(proto)
    assert float64_function("Softplus").node[2].op_type == "Max"


def test_several_outputs_need_a_choice() -> None:
    proto = cro.to_onnx(mlp([2, 3, 2], "relu", seed=0))
    proto.graph.output.append(helper.make_tensor_value_info("a[1]", TensorProto.FLOAT, ["batch", 3]))
    with pytest.raises(
        ConfigError,
        match=r"the graph has outputs \['output', 'a\[1\]'\], 2 of them float tensors; choose one",
    ):
        cro.from_onnx(proto)
    assert cro.from_onnx(proto, output="a[1]").dense_layers()[-1].out_features == 3
    with pytest.raises(ConfigError, match=r"no float output named 'nope'"):
        cro.from_onnx(proto, output="nope")


def test_declared_output_width_must_match() -> None:
    proto = cro.to_onnx(mlp([2, 3, 2], seed=0))
    proto.graph.output[0].type.tensor_type.shape.dim[1].dim_value = 5
    with pytest.raises(
        ShapeError, match=r"output 'output' is declared with 5 columns, but the last layer has 2 units"
    ):
        cro.from_onnx(proto)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", r"the file is empty"),
        (b"hello, world\n", r"not an ONNX model"),
        (bytes(range(256)) * 4, r"not an ONNX model"),
        (b"\x08\x09", r"not an ONNX model: it parses, but has no IR version, opset or graph"),
    ],
)
def test_files_that_are_not_onnx(tmp_path: Path, payload: bytes, message: str) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(payload)
    with pytest.raises(SerializationError, match=message):
        cro.load(path)


def test_truncated_files_never_give_a_partial_model(tmp_path: Path) -> None:
    data = cro.to_onnx(mlp([6, 16, 16, 3], "relu", "softmax", seed=0)).SerializeToString()
    path = tmp_path / "cut.onnx"
    for cut in (1, 10, len(data) // 3, len(data) // 2, len(data) - 300, len(data) - 1):
        path.write_bytes(data[:cut])
        with pytest.raises(ChainruleError) as info:
            cro.load(path)
        assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_deploy_doc_python_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # type: ignore[no-untyped-def]
    """docs/deploy.md stays true: its Python blocks run in order, and print what they say."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "deploy.md").read_text()
    blocks = __import__("re").findall(r"```python\n(.*?)```", doc, flags=__import__("re").S)
    assert len(blocks) == 6 and len(blocks[1].strip().splitlines()) == 5  # onnxruntime in five lines
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLPClassifier's convergence warning
        for block in blocks:
            exec(compile(block, "docs/deploy.md", "exec"), namespace)
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("[") and len(printed[0].split()) == 3  # three classes from onnxruntime
    errors = [float(line) for line in printed if __import__("re").fullmatch(r"[0-9.e+-]+", line)]
    assert len(errors) == 2 and max(errors) <= 1e-6  # PyTorch and scikit-learn agree with the imports
    assert namespace["expl"].check["autodiff"] < 1e-10


def test_missing_and_too_large_files(tmp_path: Path) -> None:
    with pytest.raises(SerializationError, match=r"no such ONNX file"):
        cro.load(tmp_path / "absent.onnx")
    path = tmp_path / "m.onnx"
    cro.export(mlp([2, 2]), path)
    with pytest.raises(
        SerializationError, match=r"more than the 10 an ONNX file without external data can hold"
    ):
        read(path, max_bytes=10)


# --- every other refusal of the importer, one line each -----------------------------------------

F32 = np.float32


def build(
    nodes: list[onnx.NodeProto],
    weights: dict[str, np.ndarray] | None = None,
    x: tuple[int, list[Any]] = (TensorProto.FLOAT, ["batch", 4]),
    extra_inputs: tuple[str, ...] = (),
    output: str | None = None,
) -> onnx.ModelProto:
    """A graph from ``x`` to the last node's output; weights keep their dtypes."""
    inputs = [helper.make_tensor_value_info(name, x[0], x[1]) for name in ("x", *extra_inputs)]
    out = output or nodes[-1].output[0]
    graph = helper.make_graph(
        nodes,
        "g",
        inputs,
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["batch", None])],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in (weights or {}).items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])


def node(op: str, inputs: list[str], output: str, **attrs: Any) -> onnx.NodeProto:
    return helper.make_node(op, inputs, [output], name=output, **attrs)


GEMM = node("Gemm", ["x", "W"], "z", transB=1)
W = {"W": np.ones((8, 4), F32)}
REFUSALS = {
    "two inputs": (
        build([GEMM], W, extra_inputs=("x2",)),
        r"the graph has 2 inputs \['x', 'x2'\]; an MLP has one",
    ),
    "integer input": (
        build([GEMM], W, x=(TensorProto.INT64, ["b", 4])),
        r"input 'x' has type int64; an MLP takes",
    ),
    "no node": (build([GEMM], W, output="x"), r"output 'x' is computed by no node"),
    "input unused": (build([node("Relu", ["W"], "y")], W), r"tensor 'x' leads nowhere near the output"),
    "side branch": (
        build(
            [GEMM, node("Relu", ["r0"], "ratio"), node("Dropout", ["z", "ratio"], "y")],
            {**W, "r0": np.ones((), F32)},
        ),
        r"graph.node\[1\] \(Relu 'ratio'\): this node feeds the output from outside the chain",
    ),
    "no layer": (build([node("Relu", ["x"], "y")]), r"the graph has no Gemm or MatMul layer"),
    "stray Sub": (
        build([GEMM, node("Sub", ["z", "c"], "y")], {**W, "c": np.ones(8, F32)}),
        r"\(Sub 'y'\): Sub appears outside the patterns",
    ),
    "float64 weight": (
        build([GEMM], {"W": np.ones((8, 4))}),
        r"its weight 'W' is float64, but the model computes in float32",
    ),
    "weight first": (
        build([node("MatMul", ["W", "x"], "y")], W),
        r"expected the running activation 'x' as input 0, got 'W'",
    ),
    "transA": (build([node("Gemm", ["x", "W"], "y", transA=1)], W), r"transA=1 transposes the activations"),
    "vector weight": (
        build([node("Gemm", ["x", "W"], "y")], {"W": np.ones(4, F32)}),
        r"weight 'W' has shape \(4,\), expected a matrix",
    ),
    "3-D weight": (
        build([node("MatMul", ["x", "W"], "y")], {"W": np.ones((4, 2, 2), F32)}),
        r"expected a matrix \(n\[l-1\], n\[l\]\)",
    ),
    "z + z": (build([GEMM, node("Add", ["z", "z"], "y")], W), r"adds the running activation to itself"),
    "two biases": (
        build(
            [node("Gemm", ["x", "W", "b"], "z", transB=1), node("Add", ["z", "b"], "y")],
            {**W, "b": np.ones(8, F32)},
        ),
        r"\(Add 'y'\): adds a second bias to a layer that has one",
    ),
    "bias after phi": (
        build([GEMM, node("Relu", ["z"], "a"), node("Add", ["a", "b"], "y")], {**W, "b": np.ones(8, F32)}),
        r"a bias must follow Gemm or MatMul directly",
    ),
    "image input": (
        build([GEMM], W, x=(TensorProto.FLOAT, ["b", 2, 2])),
        r"has shape \['b', 2, 2\], not \(batch, n\[0\]\)",
    ),
    "no units": (build([GEMM], {"W": np.ones((0, 4), F32)}), r"weight of shape \(0, 4\) has no units"),
    "cast to int": (
        build([node("Cast", ["x"], "c", to=TensorProto.INT64), node("Gemm", ["c", "W"], "y", transB=1)], W),
        r"\(Cast 'c'\): casts to int64",
    ),
    "cast inside": (
        build([GEMM, node("Cast", ["z"], "y", to=TensorProto.DOUBLE)], W),
        r"casts from float32 to float64 inside",
    ),
    "flatten axis": (
        build([node("Flatten", ["x"], "f", axis=2)]),
        r"Flatten\(axis=2\) does not give \(batch, features\)",
    ),
    "reshape rows": (
        build([GEMM, node("Reshape", ["z", "s"], "y")], {**W, "s": np.array([-1, 4])}),
        r"Reshape to \(-1, 4\) changes the rows \(batch, 8\)",
    ),
    "reshape float shape": (
        build([node("Reshape", ["x", "s"], "y")], {"s": np.ones(2, F32)}),
        r"its shape 's' is not a small stored int64",
    ),
    "training dropout": (
        build(
            [GEMM, node("Dropout", ["z", "r", "t"], "y")], {**W, "r": np.array(0.5, F32), "t": np.array(True)}
        ),
        r"Dropout in training mode; export the model in eval mode",
    ),
    "softplus threshold 5": (
        build(
            [
                GEMM,
                node("Softplus", ["z"], "s"),
                node("Greater", ["z", "t"], "g"),
                node("Where", ["g", "z", "s"], "y"),
            ],
            {**W, "t": np.array(5.0, F32)},
        ),
        r"\(Where 'y'\): is not PyTorch's softplus threshold",
    ),
    "binary 2 - p": (
        build(
            [
                node("Gemm", ["x", "w"], "z", transB=1),
                node("Sigmoid", ["z"], "p"),
                node("Sub", ["two", "p"], "q"),
                node("Concat", ["q", "p"], "y", axis=1),
            ],
            {"w": np.ones((1, 4), F32), "two": np.array([2.0], F32)},
        ),
        r"\(Concat 'y'\): is not skl2onnx's binary output",
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_importer_refusals(case: str) -> None:
    model, message = REFUSALS[case]
    with pytest.raises(ChainruleError, match=message) as info:
        cro.from_onnx(model, where="m.onnx")
    assert "\n" not in str(info.value) and str(info.value).startswith("m.onnx: ")


def test_binary_pattern_is_a_softmax_over_zero_and_z() -> None:
    nodes = [
        node("Gemm", ["x", "w", "b"], "z", transB=1),
        node("Sigmoid", ["z"], "p"),
        node("Sub", ["one", "p"], "q"),
        node("Concat", ["q", "p"], "y", axis=1),
    ]
    weights = {
        "w": np.array([[1.0, -2.0, 0.5, 3.0]], F32),
        "b": np.array([0.25], F32),
        "one": np.ones(1, F32),
    }
    model = cro.from_onnx(build(nodes, weights))
    x = np.random.default_rng(0).normal(size=(9, 4)).astype(F32)
    want = session(build(nodes, weights)).run(None, {"x": x})[0]
    assert model.dense_layers()[0].activation == "softmax"
    assert max_error(predict(model, x), want) <= 1e-6


def test_reader_refuses_negative_dims_and_bad_external_fields(tmp_path: Path) -> None:
    model = graph_model([helper.make_node("Gemm", ["x", "W1"], ["y"], name="g", transB=1)], {})
    model.graph.initializer.append(claimed([-8, 4], b""))
    with pytest.raises(SerializationError, match=r"initializer 'W1' has negative dims \(-8, 4\)"):
        cro.from_onnx(model)
    (tmp_path / "ext.onnx.data").write_bytes(b"\0" * 32)
    path = external_model(tmp_path, "ext.onnx.data")
    proto = read(path)
    proto.graph.initializer[0].external_data[1].value = "zero"
    path.write_bytes(proto.SerializeToString())
    with pytest.raises(SerializationError, match=r"external data offset/length are not integers"):
        cro.load(path)


def test_export_refuses_more_than_one_file_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("chainrule.onnx.writer.MAX_PROTO_BYTES", 100)
    with pytest.raises(SerializationError, match=r"the weights exceed 2 GiB, more than one ONNX file holds"):
        cro.to_onnx(mlp([4, 8, 2]))
    with pytest.raises(KeyError):
        float64_function("Relu")  # only the four without float64 kernels have a body


def test_without_the_onnx_package_the_error_says_which_extra() -> None:
    code = "import sys; sys.modules['onnx'] = None; import chainrule.onnx"
    result = __import__("subprocess").run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert "chainrule.onnx needs the onnx package: pip install 'chainrule[onnx]'" in result.stderr
