"""ONNX in and out: deploy a chainrule model anywhere, and read an MLP trained elsewhere (level 8).

Needs the optional extra: ``pip install "chainrule[onnx]"`` (onnx and onnxruntime).

- :func:`export` / :func:`to_onnx`: a Sequential of Dense layers (with or
  without bias, any chainrule activation; Dropout left out) becomes an ONNX
  graph of opset :data:`OPSET` with a symbolic batch axis, float32 or
  float64, named input and output, and the architecture and training
  metadata as model properties; checked with ``onnx.checker`` (full check)
  and written atomically.
- :func:`load` / :func:`from_onnx`: an ONNX graph that is an MLP chain
  (``Gemm`` or ``MatMul`` + ``Add`` and supported activations, as PyTorch,
  skl2onnx and chainrule write them) becomes a chainrule Sequential; anything
  else is refused with one line naming the first node that does not fit.

The package is named like the ``onnx`` library it uses: every import in it is
absolute, so ``import onnx`` always means the library.
"""

from __future__ import annotations

try:
    import onnx  # noqa: F401 (fail early, with the fix, if the extra is missing)
except ImportError as exc:  # pragma: no cover - the test extra installs onnx
    raise ImportError(
        "chainrule.onnx needs the onnx package: pip install 'chainrule[onnx]' (onnx and onnxruntime)."
    ) from exc

from chainrule.onnx.activations import ACTIVATIONS, OnnxActivation
from chainrule.onnx.importer import SUPPORTED, from_onnx, load, load_metadata
from chainrule.onnx.reader import MAX_PARAMETERS
from chainrule.onnx.writer import OPSET, export, to_onnx

__all__ = [
    "ACTIVATIONS",
    "MAX_PARAMETERS",
    "OPSET",
    "SUPPORTED",
    "OnnxActivation",
    "export",
    "from_onnx",
    "load",
    "load_metadata",
    "to_onnx",
]
