"""``chainrule export`` and ``chainrule import``: a model to ONNX and an ONNX MLP to a model.

Part of :mod:`chainrule.cli` (level 9). The ONNX work itself is in
:mod:`chainrule.onnx`, imported when a command needs it, so the rest of the
command line runs without the ``onnx`` extra.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from types import ModuleType
from typing import Any

from chainrule import serialize
from chainrule.cli.common import positive_int
from chainrule.errors import ConfigError
from chainrule.layers import Sequential


def onnx_module() -> ModuleType:
    """:mod:`chainrule.onnx`, or a one-line ConfigError saying which extra to install."""
    try:
        import chainrule.onnx as chainrule_onnx
    except ImportError as exc:
        raise ConfigError(f"ONNX needs the onnx extra: pip install 'chainrule[onnx]' ({exc}).") from None
    return chainrule_onnx


def read_model(path: str | os.PathLike[str]) -> tuple[Sequential, dict[str, Any]]:
    """A model and its training metadata from a ``.onnx`` file or a chainrule ``.safetensors`` file."""
    if Path(path).suffix.lower() == ".onnx":
        chainrule_onnx = onnx_module()
        return chainrule_onnx.load(path), chainrule_onnx.load_metadata(path)
    return serialize.load(path), serialize.load_metadata(path)


def add_export(ex: argparse.ArgumentParser) -> None:
    """The options of ``chainrule export``."""
    ex.add_argument("model", help="a chainrule model file (.safetensors, from chainrule train or import)")
    ex.add_argument("--format", choices=["onnx"], default="onnx", help="the file format (default: onnx)")
    ex.add_argument("--output", help="the file to write (default: MODEL with the suffix .onnx)")
    ex.add_argument(
        "--dtype",
        choices=["float32", "float64"],
        help="dtype of the weights and the input (default: the model's)",
    )
    ex.add_argument("--input-name", default="input", help="name of the graph input (default: input)")
    ex.add_argument("--output-name", default="output", help="name of the graph output (default: output)")


def cmd_export(args: argparse.Namespace) -> int:
    """Write the model as ONNX and say what was written."""
    chainrule_onnx = onnx_module()
    model = serialize.load(args.model)
    output = Path(args.output or Path(args.model).with_suffix(".onnx"))
    proto = chainrule_onnx.export(
        model,
        output,
        dtype=args.dtype,
        input_name=args.input_name,
        output_name=args.output_name,
        metadata=serialize.load_metadata(args.model),
    )
    graph = proto.graph
    shapes = [
        [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in (graph.input[0], graph.output[0])
    ]
    dtype = args.dtype or model.parameters()[0].dtype
    print(
        f"wrote {output}: ONNX opset {chainrule_onnx.OPSET}, {len(graph.node)} nodes, "
        f"{args.input_name} {shapes[0]} -> {args.output_name} {shapes[1]}, {dtype}"
    )
    return 0


def add_import(im: argparse.ArgumentParser) -> None:
    """The options of ``chainrule import``."""
    im.add_argument("model", help="an ONNX file holding an MLP (from PyTorch, skl2onnx, chainrule, ...)")
    im.add_argument(
        "--output", help="the chainrule model to write (default: MODEL with the suffix .safetensors)"
    )
    im.add_argument(
        "--graph-output",
        help="the graph output to import, if the graph has several (default: its one float output)",
    )
    im.add_argument(
        "--loss",
        help="training loss to record for evaluate and fine-tuning, e.g. cross_entropy (default: the file's)",
    )
    im.add_argument("--data", help="dataset to record, for evaluate, e.g. digits (default: the file's)")
    im.add_argument(
        "--max-parameters",
        type=positive_int,
        help="refuse a model with more weights than this (default: chainrule's max_parameters limit, "
        "100,000,000 unless raised)",
    )


def cmd_import(args: argparse.Namespace) -> int:
    """Read the ONNX MLP, save it as a chainrule model, and say what it is."""
    chainrule_onnx = onnx_module()
    model = chainrule_onnx.load(args.model, output=args.graph_output, max_parameters=args.max_parameters)
    meta = chainrule_onnx.load_metadata(args.model)
    meta.update({k: v for k, v in (("loss", args.loss), ("data", args.data)) if v is not None})
    meta.setdefault("imported_from", os.path.basename(args.model))
    output = Path(args.output or Path(args.model).with_suffix(".safetensors"))
    serialize.save(output, model, meta)
    n = sum(p.data.size for p in model.parameters())
    sizes = [model.dense_layers()[0].in_features] + [d.out_features for d in model.dense_layers()]
    print(f"wrote {output}: {len(model.dense_layers())} dense layers, sizes {sizes}, {n} parameters")
    print(repr(model))
    return 0


__all__ = ["add_export", "add_import", "cmd_export", "cmd_import", "onnx_module", "read_model"]
