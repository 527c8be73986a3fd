"""Saving and loading models and checkpoints: safetensors + JSON, never pickle (level 7).

One file holds everything: the weights (and optimizer state) as safetensors
tensors, and in the safetensors header's metadata, as JSON strings, the
architecture (``Sequential.config()``) and, for a checkpoint, the training
state (epoch, history, optimizer hyper-parameters, RNG states). A SHA-256
digest over the tensors and the JSON is stored too, so a truncated, corrupted or
foreign file is rejected with a clear error. Loading parses JSON and raw arrays
only: nothing in a file can execute code.

A digest catches accidents, not a forger, who can recompute it. So a file is
validated completely before anything is built from it, and anything malformed is
a :class:`~chainrule.errors.SerializationError` naming the file and the field or
tensor (or a :class:`~chainrule.errors.LimitError` naming the limit):

- before any tensor is read: the metadata keys and format version; the
  architecture (known layer types and fields of the right JSON types, positive
  sizes within ``max_layer_width``, Dense layers that chain, at least one Dense
  layer, nesting within ``max_nesting_depth``, total parameters within
  ``max_parameters``); every tensor's name, dtype and shape from the file's header
  against the architecture (dtypes on the allow-list float16/32/64 and equal to the
  layer's own; no tensor missing, none extra, such as a ``b`` under ``bias=false``);
  a checkpoint's training state (every key known, every value of its type and range);
- after reading: the digest, then every tensor finite (the first bad one is named).

Writes are atomic and durable (:func:`chainrule.fileio.write_atomic`): a crash
mid-save leaves the previous file intact.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from chainrule import backend, limits
from chainrule.errors import ChainruleError, ConfigError, SerializationError
from chainrule.fileio import write_atomic
from chainrule.functional import ACTIVATIONS
from chainrule.init import INITIALIZERS
from chainrule.layers import Sequential, from_config
from chainrule.losses import LOSSES, REDUCTIONS
from chainrule.optim import OPTIMIZERS, get_optimizer
from chainrule.train import History, Trainer

FORMAT = "chainrule"
FORMAT_VERSION = "1"
META_KEYS = ("format", "format_version", "architecture", "user", "training", "sha256")
# the dtype allow-list, safetensors' names -> NumPy's: weights and optimizer state are floats
DTYPES = {"F16": "float16", "F32": "float32", "F64": "float64"}
LAYER_FIELDS: dict[str, tuple[str, ...]] = {
    "Sequential": ("type", "layers", "feature_names", "classes"),
    "Dense": ("type", "in_features", "out_features", "bias", "activation", "init", "dtype"),
    "Activation": ("type", "name"),
    "Dropout": ("type", "p"),
}
# the arrays each optimizer keeps per parameter, in groups that exist together (Adam's m needs its v)
OPTIONAL_FIELDS = ("init", "feature_names", "classes")  # a Sequential's names: of a table it was trained on
OPTIMIZER_STATE: dict[str, tuple[tuple[str, ...], ...]] = {
    "sgd": (("momentum",),),
    "adam": (("m", "v"),),
    "adamw": (("m", "v"),),
    "rmsprop": (("square_avg",), ("momentum",)),
}
OTHER_STATE = (("m",), ("v",), ("momentum",), ("square_avg",))  # an optimizer registered elsewhere
USER_TYPES: dict[str, tuple[type, ...]] = {  # metadata the CLI writes and reads back
    "loss": (str,),
    "data": (str,),
    "task": (str, type(None)),
    "n_classes": (int, type(None)),
    "run_id": (str,),
}

Expected = dict[str, tuple[str, str, tuple[int, ...], str]]  # tensor -> (who, name, shape, dtype)


def _digest(tensors: dict[str, np.ndarray], texts: dict[str, str]) -> str:
    h = hashlib.sha256()
    for key in sorted(texts):
        h.update(f"{key}={texts[key]}\n".encode())
    for key in sorted(tensors):
        arr = np.ascontiguousarray(tensors[key])
        h.update(f"{key}:{arr.dtype.str}:{arr.shape}\n".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def _save(path: str | os.PathLike[str], tensors: dict[str, Any], texts: dict[str, str]) -> None:
    from safetensors.numpy import save as st_save

    arrays = {k: np.ascontiguousarray(backend.to_numpy(v)) for k, v in tensors.items()}
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, **texts}
    meta["sha256"] = _digest(arrays, meta)
    write_atomic(Path(path), st_save(arrays, metadata=meta))


# ----------------------------------------------------------------------------- reading, validated


def _read(path: str | os.PathLike[str]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Tensors and metadata of a chainrule file, validated completely; SerializationError otherwise."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise SerializationError(f"{path}: no such model file.")
    try:
        with safe_open(str(path), framework="np") as f:
            meta = dict(f.metadata() or {})
            header = {k: (f.get_slice(k).get_dtype(), tuple(f.get_slice(k).get_shape())) for k in f.keys()}
            _check_header(path, meta, header)  # everything checkable before a tensor is read
            tensors = {k: f.get_tensor(k) for k in header}
    except ChainruleError:
        raise
    except (SafetensorError, OSError, ValueError, TypeError) as exc:
        raise SerializationError(
            f"{path}: not a readable safetensors file (truncated or foreign?): {exc}"
        ) from exc
    stored = meta.pop("sha256", None)
    if stored != _digest(tensors, meta):
        raise SerializationError(
            f"{path}: checksum mismatch: the file was altered or corrupted after saving."
        )
    for name, arr in tensors.items():
        _check_finite(arr, f"{path}: tensor {name!r}")
    return tensors, meta


def _check_finite(arr: np.ndarray, who: str) -> None:
    if not np.isfinite(arr).all():
        where = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise SerializationError(
            f"{who} holds NaN or infinity (first at index {where}, value {arr[where]}); the weights "
            "diverged before saving, or the file was altered. Retrain, or load an earlier file."
        )


def _check_header(path: Path, meta: dict[str, str], header: dict[str, tuple[str, tuple[int, ...]]]) -> None:
    if meta.get("format") != FORMAT:
        raise SerializationError(
            f"{path}: a safetensors file, but not a chainrule model (no chainrule metadata)."
        )
    if meta.get("format_version") != FORMAT_VERSION:
        raise SerializationError(
            f"{path}: format version {meta.get('format_version')!r}, but this chainrule reads version "
            f"{FORMAT_VERSION!r}; load it with the chainrule version that saved it."
        )
    unknown = sorted(set(meta) - set(META_KEYS))
    if unknown:
        raise SerializationError(
            f"{path}: unknown metadata field {unknown[0]!r}; expected {list(META_KEYS)}."
        )
    expected = _architecture(_json(meta, "architecture", path), path)
    if "user" in meta:
        _check_user(_json(meta, "user", path), path)
    groups: list[tuple[str, ...]] = []
    if "training" in meta:
        params = [(shape, dtype) for _, _, shape, dtype in expected.values()]
        optim, groups = _training_state(_json(meta, "training", path), path, params)
        expected |= optim
    _compare(path, header, expected, groups)


def _compare(
    path: Path,
    header: dict[str, tuple[str, tuple[int, ...]]],
    expected: Expected,
    groups: list[tuple[str, ...]],
) -> None:
    """The file's tensors (names, dtypes, shapes from its header) against those expected."""
    for name, (dtype, shape) in header.items():
        if name not in expected:
            raise SerializationError(f"{path}: unexpected tensor {name!r}{_why_unexpected(name, header)}.")
        who, pname, want_shape, want_dtype = expected[name]
        if dtype not in DTYPES:
            raise SerializationError(
                f"{path}: tensor {name!r} ({who} {pname}) is stored as {dtype}; allowed are "
                f"{', '.join(DTYPES)} (float16, float32, float64)."
            )
        if shape != want_shape:
            raise SerializationError(f"{path}: {who} expects {pname} of shape {want_shape}, found {shape}.")
        if DTYPES[dtype] != want_dtype:
            raise SerializationError(
                f"{path}: tensor {name!r} ({who} {pname}) is stored as {DTYPES[dtype]}, but the "
                f"architecture says {want_dtype}; a chainrule file stores each weight in its layer's dtype."
            )
    for name, (who, pname, shape, _) in expected.items():
        if name not in header and name.startswith("model."):
            raise SerializationError(f"{path}: {who} expects {pname} of shape {shape}, found None.")
    for group in groups:
        if 0 < sum(name in header for name in group) < len(group):
            missing = next(name for name in group if name not in header)
            raise SerializationError(
                f"{path}: tensor {missing!r} is missing: the optimizer keeps {[*group]} together."
            )


def _why_unexpected(name: str, header: dict[str, Any]) -> str:
    if name.startswith("model.") and name.endswith(".b") and name[:-1] + "W" in header:
        return ": the architecture says that layer has bias=false"
    if name.startswith("optim."):
        return ": not a state array of this checkpoint's optimizer and parameters"
    return ": the architecture has no such parameter"


def _json(meta: dict[str, str], key: str, path: Any, kind: type = dict) -> Any:
    try:
        value = json.loads(meta[key])
    except (KeyError, ValueError, RecursionError) as exc:
        raise SerializationError(f"{path}: metadata field {key!r} is missing or not JSON: {exc}.") from exc
    if not isinstance(value, kind):
        raise SerializationError(f"{path}: metadata field {key!r} should be a JSON {kind.__name__}.")
    limits.check_depth(value, f"{path}: metadata field {key!r}")
    return value


def _check_user(user: dict[str, Any], path: Path) -> None:
    for key, types in USER_TYPES.items():
        value = user.get(key)
        if key in user and (isinstance(value, bool) or not isinstance(value, types)):
            kinds = " or ".join(
                "null" if t is type(None) else {str: "a string", int: "an integer"}[t] for t in types
            )
            raise SerializationError(f"{path}: user metadata {key!r} should be {kinds}, got {value!r}.")
    if isinstance(user.get("n_classes"), int) and user["n_classes"] < 1:
        raise SerializationError(
            f"{path}: user metadata 'n_classes' should be >= 1, got {user['n_classes']}."
        )


# ----------------------------------------------------------------------------- the architecture


def _architecture(config: dict[str, Any], path: Path) -> Expected:
    """The tensors the architecture needs (``model.<name>``), after validating all of it."""
    if config.get("type") != "Sequential" or not isinstance(config.get("layers"), list):
        raise SerializationError(f"{path}: the architecture is not a Sequential model with a list of layers.")
    expected: Expected = {}
    dense: list[tuple[str, int, int]] = []
    _layer(config, "", "model", 1, expected, dense, path)
    if not dense:
        raise SerializationError(f"{path}: the architecture has no Dense layer, so no weights to load.")
    for (who_a, _, out_a), (who_b, in_b, _) in itertools.pairwise(dense):
        if in_b != out_a:
            raise SerializationError(
                f"{path}: {who_b} Dense has in_features={in_b}, but {who_a} Dense before it has "
                f"out_features={out_a}; the layers do not chain."
            )
    total = sum(math.prod(shape) for _, _, shape, _ in expected.values())
    layers = f" in {len(dense)} Dense layer" + "s" * (len(dense) > 1)
    limits.check("max_parameters", total, f"{path}: the architecture", layers)
    return expected


def _layer(cfg: Any, prefix: str, who: str, depth: int, out: Expected, dense: list[Any], path: Path) -> None:
    limits.check("max_nesting_depth", depth, f"{path}: architecture {who}", " of nested Sequential models")
    if not isinstance(cfg, dict):
        raise SerializationError(f"{path}: architecture {who.removeprefix('model.')} is not a JSON object.")
    kind = cfg.get("type")
    bad = f"{path}: bad architecture: {who.removeprefix('model.')}"
    if not isinstance(kind, str) or kind not in LAYER_FIELDS:
        raise SerializationError(
            f"{bad}: unknown layer type {kind!r}; expected one of {sorted(LAYER_FIELDS)}."
        )
    fields = LAYER_FIELDS[kind]
    extra, missing = (
        sorted(set(cfg) - set(fields)),
        [f for f in fields if f not in cfg and f not in OPTIONAL_FIELDS],
    )
    if extra or missing:
        raise SerializationError(
            f"{bad}: a {kind} has the fields {list(fields)}; "
            + (f"unknown field {extra[0]!r}." if extra else f"missing {missing[0]!r}.")
        )
    if kind == "Sequential":
        if not isinstance(cfg["layers"], list) or not cfg["layers"]:
            raise SerializationError(f"{bad}: a Sequential needs a non-empty list of layers.")
        _names(cfg, bad, path)
        for i, child in enumerate(cfg["layers"]):
            _layer(child, f"{prefix}layers.{i}.", f"{who}.layers[{i}]", depth + 1, out, dense, path)
    elif kind == "Dense":
        _dense(cfg, prefix, who.removeprefix("model."), bad, out, dense, path)
    elif kind == "Activation" and (not isinstance(cfg["name"], str) or cfg["name"] not in ACTIVATIONS):
        raise SerializationError(
            f"{bad}: unknown activation {cfg['name']!r}; expected one of {sorted(ACTIVATIONS)}."
        )
    elif kind == "Dropout" and not (_is_number(cfg["p"]) and 0.0 <= cfg["p"] < 1.0):
        raise SerializationError(f"{bad}: Dropout p must be a number in [0, 1), got {cfg['p']!r}.")


def _names(cfg: dict[str, Any], bad: str, path: Path) -> None:
    """A Sequential's ``feature_names`` (text) and ``classes`` (text, numbers or booleans), if stored."""
    names = cfg.get("feature_names")
    if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        raise SerializationError(f"{bad}: feature_names must be a list of strings.")
    classes = cfg.get("classes")
    if classes is None:
        return
    if not isinstance(classes, list) or not all(isinstance(c, str | bool) or _is_number(c) for c in classes):
        raise SerializationError(f"{bad}: classes must be a list of strings, numbers or booleans.")
    limits.check("max_classes", len(classes), f"{path}: the stored classes")


def _dense(
    cfg: dict[str, Any], prefix: str, who: str, bad: str, out: Expected, dense: list[Any], path: Path
) -> None:
    sizes = (cfg["out_features"], cfg["in_features"])
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in sizes):
        raise SerializationError(f"{bad}: Dense sizes must be positive integers, got {sizes}.")
    for n in sizes:
        limits.check("max_layer_width", n, f"{path}: {who} Dense")
    if not isinstance(cfg["bias"], bool):
        raise SerializationError(f"{bad}: Dense bias must be true or false, got {cfg['bias']!r}.")
    if not isinstance(cfg["activation"], str) or cfg["activation"] not in ACTIVATIONS:
        raise SerializationError(
            f"{bad}: unknown activation {cfg['activation']!r}; expected one of {sorted(ACTIVATIONS)}."
        )
    init = cfg.get("init")
    if init is not None and (not isinstance(init, str) or init not in INITIALIZERS):
        raise SerializationError(f"{bad}: unknown init {init!r}; expected one of {sorted(INITIALIZERS)}.")
    dtype = cfg["dtype"]
    if dtype not in DTYPES.values():
        raise SerializationError(
            f"{bad}: Dense dtype must be one of {sorted(DTYPES.values())}, got {dtype!r}."
        )
    out[f"model.{prefix}W"] = (f"{who} Dense", "W", sizes, dtype)
    if cfg["bias"]:
        out[f"model.{prefix}b"] = (f"{who} Dense", "b", (sizes[0],), dtype)
    dense.append((who, sizes[1], sizes[0]))


def _is_number(value: Any) -> bool:
    """A finite JSON number (not a boolean); an integer too large for a float is not one."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


# ----------------------------------------------------------------------------- the training state

TRAINING_KEYS = (
    "epoch", "history", "seed", "rng", "model_rng", "optimizer", "loss", "batch_size", "clip_norm",
    "compiled", "traced", "fused_update", "schedule",
)  # fmt: skip
# absent from checkpoints written before them ("traced": what "compiled" was called before the compile layer)
OPTIONAL_KEYS = ("seed", "compiled", "traced", "fused_update")


class _State:
    """Typed access to the training state's JSON; every mistake names the key."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, expected: str, value: Any) -> SerializationError:
        text = repr(value) if len(repr(value)) < 80 else repr(value)[:77] + "..."
        return SerializationError(f"{self.path}: training state {where} should be {expected}, got {text}.")

    def int(self, value: Any, where: str, low: int = 0) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value < 2**63:
            raise self.fail(where, f"an integer >= {low}", value)
        return value

    def number(self, value: Any, where: str, positive: bool = True) -> float:
        if not _is_number(value) or (positive and value <= 0):
            raise self.fail(where, "a finite number" + (" > 0" if positive else ""), value)
        return float(value)

    def dict(self, value: Any, where: str, keys: tuple[str, ...], optional: tuple[str, ...] = ()) -> Any:
        if not isinstance(value, dict):
            raise self.fail(where, "a JSON object", value)
        unknown = sorted(set(value) - set(keys))
        missing = [k for k in keys if k not in value and k not in optional]
        if unknown or missing:
            what = f"an unknown key {unknown[0]!r}" if unknown else f"no key {missing[0]!r}"
            raise SerializationError(
                f"{self.path}: training state {where} has {what}; expected {list(keys)}."
            )
        return value


def _training_state(
    state: dict[str, Any], path: Path, params: list[tuple[tuple[int, ...], str]]
) -> tuple[Expected, list[tuple[str, ...]]]:
    """Validate a checkpoint's training state; the optimizer's tensors (``optim.<i>.<key>``) it implies."""
    s = _State(path)
    s.dict(state, "", TRAINING_KEYS, OPTIONAL_KEYS)
    s.int(state["epoch"], "'epoch'")
    if not isinstance(state["history"], list):
        raise s.fail("'history'", "a list of per-epoch metrics", state["history"])
    for e, logs in enumerate(state["history"]):
        if not isinstance(logs, dict) or not all(
            isinstance(v, float) or _is_number(v) for v in logs.values()
        ):
            raise s.fail(f"'history'[{e}]", "an object of numbers", logs)
    if state.get("seed") is not None:
        s.int(state["seed"], "'seed'")
    for key in ("compiled", "traced", "fused_update"):
        if key in state and not isinstance(state[key], bool):
            raise s.fail(f"{key!r}", "true or false", state[key])
    s.int(state["batch_size"], "'batch_size'", low=1)
    if state["clip_norm"] is not None:
        s.number(state["clip_norm"], "'clip_norm'")
    loss = s.dict(state["loss"], "'loss'", ("name", "reduction"))
    if not isinstance(loss["name"], str) or loss["name"] not in LOSSES or loss["reduction"] not in REDUCTIONS:
        raise s.fail("'loss'", f"a loss of {sorted(LOSSES)} with a reduction of {list(REDUCTIONS)}", loss)
    if state["schedule"] is not None:
        schedule = s.dict(state["schedule"], "'schedule'", ("epoch", "base_lr"), ("base_lr",))
        s.int(schedule["epoch"], "'schedule'.'epoch'")
        if "base_lr" in schedule:
            s.number(schedule["base_lr"], "'schedule'.'base_lr'")
    _check_rng(state["rng"], s, "'rng'")
    _check_model_rng(state["model_rng"], s, "'model_rng'")
    return _optimizer_state(state["optimizer"], s, params)


def _check_rng(value: Any, s: _State, where: str) -> None:
    """A NumPy PCG64 state, checked by giving it to a scratch generator."""
    if not isinstance(value, dict) or value.get("bit_generator") != "PCG64":
        raise s.fail(where, "a PCG64 generator state", value)
    try:
        scratch: Any = np.random.PCG64()
        scratch.state = value
    except (TypeError, ValueError, KeyError, OverflowError) as exc:
        raise s.fail(where, f"a PCG64 generator state ({exc})", value) from None


def _check_model_rng(value: Any, s: _State, where: str) -> None:
    """``Sequential.rng_state()``: layer index -> a Dropout's PCG64 state, or a nested model's states."""
    if not isinstance(value, dict):
        raise s.fail(where, "a JSON object", value)
    for key, sub in value.items():
        if not key.isdigit():
            raise s.fail(f"{where} key", "a layer index", key)
        if isinstance(sub, dict) and "bit_generator" in sub:
            _check_rng(sub, s, f"{where}.{key!r}")
        else:
            _check_model_rng(sub, s, f"{where}.{key!r}")


def _optimizer_state(
    value: Any, s: _State, params: list[tuple[tuple[int, ...], str]]
) -> tuple[Expected, list[tuple[str, ...]]]:
    """The optimizer's settings checked; the tensors it may keep, and the groups that go together."""
    opt = s.dict(value, "'optimizer'", ("name", "lr", "options", "steps", "counters"), ("counters",))
    if not isinstance(opt["name"], str) or opt["name"] not in OPTIMIZERS:
        raise s.fail("'optimizer'.'name'", f"one of {sorted(OPTIMIZERS)}", opt["name"])
    s.number(opt["lr"], "'optimizer'.'lr'")
    s.int(opt["steps"], "'optimizer'.'steps'")
    if not isinstance(opt["options"], dict):
        raise s.fail("'optimizer'.'options'", "a JSON object", opt["options"])
    for key, option in opt["options"].items():
        items = option if isinstance(option, list) else [option]
        if not all(isinstance(v, bool) or _is_number(v) for v in items):
            raise s.fail(f"'optimizer'.'options'.{key!r}", "finite numbers or true/false", option)
    counters = opt.get("counters", {})
    if not isinstance(counters, dict):
        raise s.fail("'optimizer'.'counters'", "a JSON object", counters)
    for key, count in counters.items():
        _param_index(key, ("step",), s, "'optimizer'.'counters'", len(params))
        s.int(count, f"'optimizer'.'counters'.{key!r}")
    expected: Expected = {}
    groups = []
    for i, (shape, dtype) in enumerate(params):
        for group in OPTIMIZER_STATE.get(opt["name"], OTHER_STATE):
            groups.append(tuple(f"optim.{i}.{k}" for k in group))
            for k in group:
                expected[f"optim.{i}.{k}"] = (f"optimizer state of parameter {i}", k, shape, dtype)
    return expected, groups


def _param_index(key: str, names: tuple[str, ...], s: _State, where: str, n: int) -> None:
    i, _, k = key.partition(".")
    if not (i.isdigit() and int(i) < n and k in names):
        raise s.fail(f"{where} key", f"'<parameter index < {n}>.<one of {list(names)}>'", key)


# ----------------------------------------------------------------------------- the public API


def save(path: str | os.PathLike[str], model: Sequential, metadata: dict[str, Any] | None = None) -> None:
    """Save ``model``'s architecture and weights to ``path`` (one ``.safetensors`` file), atomically.

    ``metadata`` (JSON-serialisable) is stored alongside, e.g. class names.

    Raises
    ------
    SerializationError
        A weight holds NaN or infinity (such a file could not be loaded back).
    """
    tensors = {f"model.{name}": p.data for name, p in model.named_parameters()}
    for name, data in tensors.items():
        _check_finite(backend.to_numpy(data), f"save {path}: tensor {name!r}")
    texts = {"architecture": json.dumps(model.config()), "user": json.dumps(metadata or {})}
    _save(path, tensors, texts)


def _restore_weights(model: Sequential, tensors: dict[str, np.ndarray]) -> None:
    for name, p in model.named_parameters():
        arr = tensors[f"model.{name}"]  # name, shape and dtype validated by _read
        p.data[...] = backend.to_device(arr.astype(p.dtype, copy=False))  # into the layer's own array


def _build(path: Any, meta: dict[str, str], tensors: dict[str, np.ndarray]) -> Sequential:
    try:
        model = from_config(json.loads(meta["architecture"]))
    except (ConfigError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SerializationError(f"{path}: bad architecture: {exc}") from exc
    if not isinstance(model, Sequential):  # _architecture checked the type: a bug if this fails
        raise SerializationError(f"{path}: expected a Sequential model, found {type(model).__name__}.")
    _restore_weights(model, tensors)
    return model


def load(path: str | os.PathLike[str]) -> Sequential:
    """Load a model saved by :func:`save` or :func:`save_checkpoint`, onto the active backend.

    Raises
    ------
    SerializationError
        If the file is missing, truncated, altered, not a chainrule model, or
        malformed in any field or tensor (see the module docstring).
    LimitError
        If the architecture is over ``max_parameters``, ``max_layer_width`` or ``max_nesting_depth``.
    """
    tensors, meta = _read(path)
    return _build(path, meta, tensors)


def load_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The user metadata stored by :func:`save` (verified like the weights)."""
    _, meta = _read(path)
    return dict(_json(meta, "user", path)) if "user" in meta else {}


def save_checkpoint(path: str | os.PathLike[str], trainer: Trainer) -> None:
    """Save everything needed to resume ``trainer`` to the same result as an uninterrupted run."""
    opt = trainer.optimizer.state_dict()
    tensors = {f"model.{name}": p.data for name, p in trainer.model.named_parameters()}
    tensors.update({f"optim.{k}": v for k, v in opt.pop("arrays").items()})
    state = {
        "epoch": trainer.epoch,
        "history": trainer.history.epochs,
        "seed": trainer.seed,
        "rng": trainer.rng.bit_generator.state,
        "model_rng": trainer.model.rng_state(),
        "optimizer": opt,
        "loss": {"name": trainer.loss.name, "reduction": trainer.loss.reduction},
        "batch_size": trainer.batch_size,
        "clip_norm": trainer.clip_norm,
        "compiled": trainer.compiled,
        "fused_update": trainer.fused_update,
        "schedule": None
        if trainer.schedule is None
        else {"epoch": trainer.schedule.epoch, "base_lr": trainer.schedule.base_lr},
    }
    texts = {"architecture": json.dumps(trainer.model.config()), "training": json.dumps(state)}
    _save(path, tensors, texts)


def load_checkpoint(path: str | os.PathLike[str], schedule: Any = None) -> Trainer:
    """Rebuild the :class:`Trainer` saved by :func:`save_checkpoint`; ``fit`` then continues it.

    ``schedule`` must be the same schedule factory the run started with, if any.
    """
    tensors, meta = _read(path)
    state = _json(meta, "training", path)
    try:
        return _resume(path, state, tensors, _build(path, meta, tensors), schedule)
    except (ConfigError, KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise SerializationError(f"{path}: bad training state: {exc!r}") from exc


def _resume(
    path: Any, state: dict[str, Any], tensors: dict[str, Any], model: Sequential, schedule: Any
) -> Trainer:
    opt = state["optimizer"]
    optimizer = get_optimizer(opt["name"], model.parameters(), lr=opt["lr"], **opt["options"])
    arrays = {k.removeprefix("optim."): v for k, v in tensors.items() if k.startswith("optim.")}
    optimizer.load_state_dict({**opt, "arrays": arrays})
    trainer = Trainer(
        model,
        state["loss"]["name"],
        optimizer,
        batch_size=state["batch_size"],
        seed=state.get("seed", 0),
        clip_norm=state["clip_norm"],
        schedule=schedule,
        # absent from (or, before "compiled", named "traced" in) checkpoints written before these options
        compiled=bool(state.get("compiled", state.get("traced", True))),
        # fused_update was on by default before it became opt-in: old checkpoints get the new default
        fused_update=bool(state.get("fused_update", False)) and "compiled" in state,
    )
    trainer.loss.reduction = trainer.step_loss.reduction = state["loss"]["reduction"]
    trainer.epoch = state["epoch"]
    trainer.history = History(list(state["history"]))
    trainer.rng.bit_generator.state = state["rng"]
    model.set_rng_state(state["model_rng"])
    if trainer.schedule is not None and state["schedule"] is not None:
        # the factory saw the saved (already decayed) lr: give the schedule its own state back
        trainer.schedule.epoch = state["schedule"]["epoch"]
        trainer.schedule.base_lr = float(state["schedule"].get("base_lr", trainer.optimizer.lr))
    return trainer


class Checkpoint:
    """Callback for :meth:`Trainer.fit`: save a checkpoint to ``path`` every ``every`` epochs.

    In a data-parallel run only rank 0 writes (the replicas are equal).
    """

    def __init__(self, path: str | os.PathLike[str], every: int = 1) -> None:
        self.path, self.every = Path(path), int(every)

    def __repr__(self) -> str:
        return f"Checkpoint(path={str(self.path)!r}, every={self.every})"

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict[str, float]) -> bool:
        if epoch % self.every == 0 and getattr(trainer.distributed, "rank", 0) == 0:
            save_checkpoint(self.path, trainer)
        return False


__all__ = [
    "Checkpoint",
    "load",
    "load_checkpoint",
    "load_metadata",
    "save",
    "save_checkpoint",
]
