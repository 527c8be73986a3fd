"""One table: each chainrule activation and the ONNX operator it is written as and read from.

Part of :mod:`chainrule.onnx` (level 8). Export writes ``phi[l]`` as the
operator of :data:`ACTIVATIONS`; import reads that operator back and checks
its attributes against the same row, so the two directions cannot drift.

onnxruntime has no float64 kernels for ``LeakyRelu``, ``Softplus`` and
``Elu``, and its float64 ``Gelu`` is accurate to about 3e-8 only (its tanh
approximation is evaluated at lower precision). A float64 export writes those
four as model-local ONNX functions in
the domain ``chainrule`` (:func:`float64_function`), built from operators
that do have float64 kernels and computing chainrule's own formulas
(``softplus(z) = max(z, 0) + log(1 + e**-|z|)``, ...); onnxruntime inlines
them. Import accepts such a function only if its body is exactly the one
written here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from chainrule.functional import ACTIVATIONS as CHAINRULE_ACTIVATIONS

DOMAIN = "chainrule"  # the domain of the float64 functions
_GELU_C = math.sqrt(2.0 / math.pi)
FUNCTION_OPSET = 20


@dataclass(frozen=True)
class OnnxActivation:
    """How the chainrule activation ``name`` is written in ONNX.

    ``attributes`` are written on export and required on import (a float
    attribute to float32 precision, since ONNX stores floats in 32 bits);
    ``accept`` lists other attribute values that mean the same thing
    (``Softmax(axis=1)`` on an ``(m, n)`` input is ``Softmax(axis=-1)``).
    """

    name: str
    op: str
    attributes: dict[str, Any] = field(default_factory=dict)
    accept: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)
    float64_function: bool = False
    hint: str = ""

    def __repr__(self) -> str:
        return f"OnnxActivation({self.name!r} <-> {self.op}{self.attributes or ''})"

    def mismatch(self, node: onnx.NodeProto) -> str | None:
        """Why ``node`` is not this activation (an attribute value), or None if it is."""
        given = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        for key, value in given.items():
            if key not in self.attributes:
                return f"attribute {key}={_show(value)} is not part of chainrule's {self.name}"
        for key, want in self.attributes.items():
            got = given.get(key, self.defaults.get(key))
            got = got.decode() if isinstance(got, bytes) else got
            if not _same(got, want) and not any(_same(got, ok) for ok in self.accept.get(key, ())):
                return f"{key}={_show(got)}, but chainrule's {self.name} has {key}={_show(want)}{self.hint}"
        return None


def _same(got: Any, want: Any) -> bool:
    if isinstance(want, float) and isinstance(got, float | int):
        return abs(float(np.float32(want)) - float(got)) <= 1e-7 * max(1.0, abs(want))
    return bool(got == want)


def _show(value: Any) -> str:
    value = value.decode() if isinstance(value, bytes) else value
    return repr(value) if isinstance(value, str) else f"{value:g}" if isinstance(value, float) else str(value)


ACTIVATIONS: dict[str, OnnxActivation | None] = {
    "identity": None,  # no node: z[l] is a[l]
    "sigmoid": OnnxActivation("sigmoid", "Sigmoid"),
    "tanh": OnnxActivation("tanh", "Tanh"),
    "relu": OnnxActivation("relu", "Relu"),
    "leaky_relu": OnnxActivation(
        "leaky_relu", "LeakyRelu", {"alpha": 0.01}, defaults={"alpha": 0.01}, float64_function=True
    ),
    "softplus": OnnxActivation("softplus", "Softplus", float64_function=True),
    "elu": OnnxActivation("elu", "Elu", {"alpha": 1.0}, defaults={"alpha": 1.0}, float64_function=True),
    "gelu": OnnxActivation(
        "gelu",
        "Gelu",
        {"approximate": "tanh"},
        defaults={"approximate": "none"},
        float64_function=True,
        hint=" (the tanh approximation: torch.nn.GELU(approximate='tanh'))",
    ),
    "softmax": OnnxActivation(
        "softmax", "Softmax", {"axis": -1}, accept={"axis": (1,)}, defaults={"axis": -1}
    ),
}

BY_OP: dict[str, OnnxActivation] = {a.op: a for a in ACTIVATIONS.values() if a is not None}


def check_table() -> list[str]:
    """chainrule activations that have no row here (a new activation needs one)."""
    return sorted(set(CHAINRULE_ACTIVATIONS) - set(ACTIVATIONS))


def _const(name: str, value: float) -> onnx.NodeProto:
    return helper.make_node(
        "Constant", [], [name], value=helper.make_tensor(name, TensorProto.DOUBLE, [], [value])
    )


def float64_function(op: str) -> onnx.FunctionProto:
    """The float64 body of ``op`` (``LeakyRelu``, ``Softplus``, ``Elu``, ``Gelu``), as chainrule computes it.

    Math
    ----
    ``LeakyRelu(z) = where(z > 0, z, 0.01 z)``;
    ``Softplus(z) = max(z, 0) + log(1 + e**-|z|)`` (never overflows);
    ``Elu(z) = where(z <= 0, e**min(z, 0) - 1, z)`` (the unused branch never overflows);
    ``Gelu(z) = 0.5 z (1 + tanh(sqrt(2/pi) (z + 0.044715 z**3)))``.
    """
    if op == "LeakyRelu":
        nodes = [
            _const("zero", 0.0),
            _const("slope", 0.01),
            helper.make_node("Greater", ["X", "zero"], ["positive"]),
            helper.make_node("Mul", ["X", "slope"], ["scaled"]),
            helper.make_node("Where", ["positive", "X", "scaled"], ["Y"]),
        ]
    elif op == "Softplus":
        nodes = [
            _const("zero", 0.0),
            _const("one", 1.0),
            helper.make_node("Max", ["X", "zero"], ["relu"]),
            helper.make_node("Abs", ["X"], ["abs"]),
            helper.make_node("Neg", ["abs"], ["minus_abs"]),
            helper.make_node("Exp", ["minus_abs"], ["exp"]),
            helper.make_node("Add", ["one", "exp"], ["one_plus"]),
            helper.make_node("Log", ["one_plus"], ["log"]),
            helper.make_node("Add", ["relu", "log"], ["Y"]),
        ]
    elif op == "Elu":
        nodes = [
            _const("zero", 0.0),
            _const("one", 1.0),
            helper.make_node("LessOrEqual", ["X", "zero"], ["negative"]),
            helper.make_node("Min", ["X", "zero"], ["negative_part"]),
            helper.make_node("Exp", ["negative_part"], ["exp"]),
            helper.make_node("Sub", ["exp", "one"], ["exp_minus_one"]),
            helper.make_node("Where", ["negative", "exp_minus_one", "X"], ["Y"]),
        ]
    elif op == "Gelu":
        nodes = [  # 0.5 z (1 + tanh(C (z + 0.044715 z**3))), in chainrule's order of operations
            _const("half", 0.5),
            _const("one", 1.0),
            _const("k", 0.044715),
            _const("c", _GELU_C),
            helper.make_node("Mul", ["k", "X"], ["kz"]),
            helper.make_node("Mul", ["kz", "X"], ["kz2"]),
            helper.make_node("Mul", ["kz2", "X"], ["kz3"]),
            helper.make_node("Add", ["X", "kz3"], ["inner"]),
            helper.make_node("Mul", ["c", "inner"], ["scaled"]),
            helper.make_node("Tanh", ["scaled"], ["tanh"]),
            helper.make_node("Add", ["one", "tanh"], ["one_plus"]),
            helper.make_node("Mul", ["half", "X"], ["half_z"]),
            helper.make_node("Mul", ["half_z", "one_plus"], ["Y"]),
        ]
    else:
        raise KeyError(op)
    return helper.make_function(
        DOMAIN,
        op,
        ["X"],
        ["Y"],
        nodes,
        [helper.make_opsetid("", FUNCTION_OPSET)],
        doc_string=f"chainrule's {BY_OP[op].name} in float64, from operators onnxruntime runs in float64",
    )


def is_our_function(function: onnx.FunctionProto) -> bool:
    """True if ``function`` is, byte for byte, the float64 body :func:`float64_function` writes."""
    try:
        ours = float64_function(function.name)
    except KeyError:
        return False
    return function.domain == DOMAIN and ours.SerializeToString(
        deterministic=True
    ) == function.SerializeToString(deterministic=True)


__all__ = ["ACTIVATIONS", "BY_OP", "DOMAIN", "OnnxActivation", "check_table", "float64_function"]
