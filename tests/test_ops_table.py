"""Table-driven proof of every primitive in :data:`chainrule.ops.PRIMITIVES`.

For each differentiable primitive and each of its ``samples``:

- forward values and gradients (for a random upstream gradient ``g``) match
  PyTorch autograd in float64 to a relative error of 1e-10;
- the gradients pass central finite differences (:func:`chainrule.check_grad`)
  and the dot-product test (:func:`chainrule.check_vjp`).

A primitive added to the table gets these tests automatically; a
differentiable one without a PyTorch reference or without samples is a
failing test, so an unproven rule cannot slip in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as tnf

import chainrule as cr
from chainrule import ops
from chainrule.tensor import Tensor

TOL = 1e-10


def _dims(x: torch.Tensor, axis: Any) -> tuple[int, ...]:
    """torch ``dim`` for a NumPy ``axis`` (None: every axis)."""
    if axis is None:
        return tuple(range(x.ndim))
    return (axis,) if isinstance(axis, int) else tuple(axis)


def _torch_index(index: Any) -> Any:
    parts = index if isinstance(index, tuple) else (index,)
    return tuple(torch.as_tensor(p) if isinstance(p, np.ndarray) else p for p in parts)


def _transpose(x: torch.Tensor, axes: Any = None) -> torch.Tensor:
    return x.permute(*(reversed(range(x.ndim)) if axes is None else axes))


# name -> callable(torch_inputs, params) -> torch tensor
TORCH_REFS: dict[str, Callable[[list[torch.Tensor], dict[str, Any]], torch.Tensor]] = {
    "add": lambda t, p: t[0] + t[1],
    "subtract": lambda t, p: t[0] - t[1],
    "multiply": lambda t, p: t[0] * t[1],
    "divide": lambda t, p: t[0] / t[1],
    "negative": lambda t, p: -t[0],
    "power": lambda t, p: torch.pow(t[0], t[1]),
    "matmul": lambda t, p: torch.matmul(t[0], t[1]),
    "linear": lambda t, p: tnf.linear(t[0], t[1], t[2] if len(t) > 2 else None),
    "dense": lambda t, p: getattr(torch, p["activation"])(
        tnf.linear(t[0], t[1], t[2] if len(t) > 2 else None)
    ),
    "sum": lambda t, p: torch.sum(t[0], dim=_dims(t[0], p.get("axis")), keepdim=p.get("keepdims", False)),
    "mean": lambda t, p: torch.mean(t[0], dim=_dims(t[0], p.get("axis")), keepdim=p.get("keepdims", False)),
    "max": lambda t, p: torch.amax(t[0], dim=_dims(t[0], p.get("axis")), keepdim=p.get("keepdims", False)),
    "reshape": lambda t, p: t[0].reshape(p["shape"]),
    "transpose": lambda t, p: _transpose(t[0], p.get("axes")),
    "getitem": lambda t, p: t[0][_torch_index(p["index"])],
    "take_along_axis": lambda t, p: torch.take_along_dim(t[0], torch.as_tensor(p["indices"]), dim=p["axis"]),
    "concatenate": lambda t, p: torch.cat(t, dim=p.get("axis", 0)),
    "exp": lambda t, p: torch.exp(t[0]),
    "log": lambda t, p: torch.log(t[0]),
    "sqrt": lambda t, p: torch.sqrt(t[0]),
    "abs": lambda t, p: torch.abs(t[0]),
    "maximum": lambda t, p: torch.maximum(t[0], t[1]),
    "minimum": lambda t, p: torch.minimum(t[0], t[1]),
    "where": lambda t, p: torch.where(torch.as_tensor(p["cond"]), t[0], t[1]),
    "elu": lambda t, p: tnf.elu(t[0], alpha=p.get("alpha", 1.0)),
    "xlogy": lambda t, p: torch.xlogy(t[0], t[1]),
    "relu": lambda t, p: torch.relu(t[0]),
    "leaky_relu": lambda t, p: tnf.leaky_relu(t[0], p.get("slope", 0.01)),
    "sigmoid": lambda t, p: torch.sigmoid(t[0]),
    "tanh": lambda t, p: torch.tanh(t[0]),
    "softmax": lambda t, p: torch.softmax(t[0], dim=p.get("axis", -1)),
    "log_softmax": lambda t, p: torch.log_softmax(t[0], dim=p.get("axis", -1)),
    "logsumexp": lambda t, p: torch.logsumexp(t[0], dim=p.get("axis", -1), keepdim=p.get("keepdims", False)),
    "softmax_cross_entropy": lambda t, p: (
        -(t[1] * torch.log_softmax(t[0], dim=p.get("axis", -1))).sum(p.get("axis", -1))
    ),
    "softmax_cross_entropy_labels": lambda t, p: tnf.cross_entropy(
        t[0], torch.as_tensor(p["labels"]), reduction=p.get("reduction", "none")
    ),
    "sigmoid_binary_cross_entropy": lambda t, p: tnf.binary_cross_entropy_with_logits(
        t[0], t[1], reduction="none"
    ),
}

DIFFERENTIABLE = [name for name, p in ops.PRIMITIVES.items() if p.differentiable]
CASES = [
    pytest.param(name, i, id=f"{name}-{i}")
    for name in DIFFERENTIABLE
    for i in range(len(ops.PRIMITIVES[name].samples))
]


def _run_engine(name: str, arrays: list[np.ndarray], params: dict[str, Any], g: np.ndarray | None) -> Any:
    tensors = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    out = ops.PRIMITIVES[name](*tensors, **params)
    if g is None:
        return out, None
    out.backward(g)
    return out, [t.grad for t in tensors]


def _run_torch(name: str, arrays: list[np.ndarray], params: dict[str, Any], g: np.ndarray) -> Any:
    tensors = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    out = TORCH_REFS[name](tensors, params)
    out.backward(torch.as_tensor(g))
    return out.detach().numpy(), [t.grad.numpy() for t in tensors]


# ---------------------------------------------------------------- the table
def test_every_differentiable_primitive_has_a_torch_reference() -> None:
    missing = sorted(set(DIFFERENTIABLE) - set(TORCH_REFS))
    assert not missing, f"differentiable primitives without a PyTorch reference in TORCH_REFS: {missing}"


def test_every_differentiable_primitive_has_samples() -> None:
    empty = [name for name in DIFFERENTIABLE if not ops.PRIMITIVES[name].samples]
    assert not empty, f"differentiable primitives without samples: {empty}"


def test_torch_refs_name_real_primitives() -> None:
    assert set(TORCH_REFS) <= set(DIFFERENTIABLE)


def test_every_primitive_is_differentiable_or_listed() -> None:
    for name, prim in ops.PRIMITIVES.items():
        assert prim.name == name
        assert prim.differentiable == (name not in ops.NON_DIFFERENTIABLE), name
        assert prim.formula, f"{name} has no formula"
    assert set(ops.NON_DIFFERENTIABLE) <= set(ops.PRIMITIVES)


def test_non_differentiable_lists_argmax_and_comparisons() -> None:
    expected = {"argmax", "equal", "not_equal", "less", "less_equal", "greater", "greater_equal"}
    assert expected <= set(ops.NON_DIFFERENTIABLE)
    for name in expected:
        assert ops.PRIMITIVES[name].vjp is None


def test_table_lists_every_primitive() -> None:
    rows = dict(ops.table())
    assert list(rows) == list(ops.PRIMITIVES)
    assert "g @ B^T" in rows["matmul"]


COMPARISONS = {
    "equal": torch.eq,
    "not_equal": torch.ne,
    "less": torch.lt,
    "less_equal": torch.le,
    "greater": torch.gt,
    "greater_equal": torch.ge,
}


@pytest.mark.parametrize("name", list(COMPARISONS))
def test_comparisons_match_torch_and_record_nothing(name: str, rng: np.random.Generator) -> None:
    a = np.round(rng.standard_normal((3, 4)))  # rounding makes ties, so == and <= are exercised
    b = np.round(rng.standard_normal((4,)))
    out = ops.PRIMITIVES[name](Tensor(a, requires_grad=True), Tensor(b, requires_grad=True))
    assert out.requires_grad is False and out.is_leaf
    expected = COMPARISONS[name](torch.as_tensor(a), torch.as_tensor(b)).numpy()
    np.testing.assert_array_equal(out.numpy(), expected)


@pytest.mark.parametrize("axis", [None, 0, 1])
def test_argmax_matches_torch_and_records_nothing(axis: int | None, rng: np.random.Generator) -> None:
    x = Tensor(rng.standard_normal((4, 5)), requires_grad=True)
    out = x.argmax(axis=axis)
    assert out.requires_grad is False and out.is_leaf
    expected = torch.argmax(torch.as_tensor(x.data), dim=axis).numpy()
    np.testing.assert_array_equal(out.numpy(), expected)


def test_operators_route_to_comparisons() -> None:
    x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    assert (x < 2.0).numpy().tolist() == [True, False, False]
    assert (x <= 2.0).numpy().tolist() == [True, True, False]
    assert (x > 2.0).numpy().tolist() == [False, False, True]
    assert (x >= 2.0).numpy().tolist() == [False, True, True]
    assert not (x > 2.0).requires_grad


# ------------------------------------------------------- per-sample proofs
@pytest.mark.parametrize(("name", "i"), CASES)
def test_matches_torch(name: str, i: int, rng: np.random.Generator, make_sample: Any, rel_err: Any) -> None:
    assert name in TORCH_REFS, f"{name}: no PyTorch reference"
    arrays, params = make_sample(ops.PRIMITIVES[name].samples[i], rng)
    out, _ = _run_engine(name, arrays, params, None)
    g = rng.standard_normal(out.shape)
    out, grads = _run_engine(name, arrays, params, g)
    t_out, t_grads = _run_torch(name, arrays, params, g)
    assert out.shape == t_out.shape
    assert out.dtype == np.float64
    assert rel_err(out.numpy(), t_out) <= TOL, f"{name}: forward differs from torch"
    for k, (mine, ref) in enumerate(zip(grads, t_grads, strict=True)):
        assert mine is not None, f"{name}: input {k} got no gradient"
        assert mine.shape == arrays[k].shape
        assert rel_err(mine, ref) <= TOL, f"{name}: gradient of input {k} differs from torch"


@pytest.mark.parametrize(("name", "i"), CASES)
def test_finite_differences_and_dot_product(
    name: str, i: int, rng: np.random.Generator, make_sample: Any
) -> None:
    arrays, params = make_sample(ops.PRIMITIVES[name].samples[i], rng)
    prim = ops.PRIMITIVES[name]

    def f(*xs: Tensor) -> Tensor:
        return prim(*xs, **params)

    report = cr.check_grad(f, *arrays, rtol=1e-6)
    assert report.ok, str(report)
    assert len(report.inputs) == len(arrays)
    report = cr.check_vjp(f, *arrays, rtol=1e-6, seed=i)
    assert report.ok, str(report)


# ------------------------------------------------ fused rules vs composites
def _composite_grads(fused: Callable[..., Tensor], composite: Callable[..., Tensor], *arrays: np.ndarray):
    results = []
    for fn in (fused, composite):
        tensors = [Tensor(a.copy(), requires_grad=True) for a in arrays]
        out = fn(*tensors)
        g = np.random.default_rng(0).standard_normal(out.shape)
        out.backward(g)
        results.append((out.numpy(), [t.grad for t in tensors]))
    return results


def _lse_composite(x: Tensor, axis: int = -1, keepdims: bool = False) -> Tensor:
    return ops.log(ops.exp(x).sum(axis=axis, keepdims=keepdims))


FUSED = {
    **{
        f"dense-{act}": (
            lambda a, w, b, act=act: ops.dense(a, w, b, activation=act),
            lambda a, w, b, act=act: getattr(ops, act)(ops.linear(a, w, b)),
            [(70, 40), (30, 40), (30,)],  # float64, through the compiled loops
        )
        for act in ("relu", "sigmoid", "tanh")
    },
    "linear": (
        lambda a, w, b: ops.linear(a, w, b),
        lambda a, w, b: ops.matmul(a, ops.transpose(w)) + b,
        [(5, 3), (4, 3), (4,)],
    ),
    "logsumexp": (
        lambda x: ops.logsumexp(x, axis=1),
        lambda x: _lse_composite(x, axis=1),
        [(3, 4)],
    ),
    "log_softmax": (
        lambda x: ops.log_softmax(x),
        lambda x: x - _lse_composite(x, keepdims=True),
        [(3, 4)],
    ),
    "softmax_cross_entropy": (
        lambda z, y: ops.softmax_cross_entropy(z, y),
        lambda z, y: -(y * (z - _lse_composite(z, keepdims=True))).sum(axis=-1),
        [(4, 3), (4, 3)],
    ),
    "softmax_cross_entropy_labels": (
        lambda z: ops.softmax_cross_entropy_labels(z, labels=np.array([2, 0, 1, 2])),
        lambda z: (
            -ops.take_along_axis(
                z - _lse_composite(z, keepdims=True), indices=np.array([[2], [0], [1], [2]]), axis=1
            ).sum(axis=-1)
        ),
        [(4, 3)],
    ),
}


@pytest.mark.parametrize("name", list(FUSED))
def test_fused_rule_equals_composite(name: str, rng: np.random.Generator, rel_err: Any) -> None:
    fused, composite, shapes = FUSED[name]
    arrays = [rng.standard_normal(s) for s in shapes]
    (out_f, grads_f), (out_c, grads_c) = _composite_grads(fused, composite, *arrays)
    assert rel_err(out_f, out_c) <= TOL
    for k, (a, b) in enumerate(zip(grads_f, grads_c, strict=True)):
        assert rel_err(a, b) <= TOL, f"{name}: input {k}"


def test_softmax_cross_entropy_with_one_hot_is_a_minus_y(rng: np.random.Generator, rel_err: Any) -> None:
    z = Tensor(rng.standard_normal((4, 3)), requires_grad=True)
    y = np.eye(3)[[0, 2, 1, 2]]
    ops.softmax_cross_entropy(z, y).sum().backward()
    assert rel_err(z.grad, ops.softmax(Tensor(z.data)).numpy() - y) <= TOL
