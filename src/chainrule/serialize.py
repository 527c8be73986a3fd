"""Saving and loading models and checkpoints: safetensors + JSON, never pickle (level 7).

One file holds everything: the weights (and optimizer state) as safetensors
tensors, and in the safetensors header's metadata, as JSON strings, the
architecture (``Sequential.config()``) and, for a checkpoint, the training
state (epoch, history, optimizer hyper-parameters, RNG states). A SHA-256
digest over the tensors and the JSON is stored too, so a truncated, corrupted or
foreign file is rejected with a clear error (a digest catches accidents, not a
forger, who can recompute it: so every field is also validated on load, and a
malformed one is a SerializationError, never a crash). Loading parses JSON and
raw arrays only: nothing in a file can execute code.

Writes are atomic: the file is written beside the target, flushed to disk,
then renamed over it, so a crash mid-save leaves the previous file intact.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from chainrule import backend
from chainrule.errors import ConfigError, SerializationError
from chainrule.layers import Sequential, from_config
from chainrule.optim import get_optimizer
from chainrule.train import History, Trainer

FORMAT = "chainrule"
FORMAT_VERSION = "1"


def _digest(tensors: dict[str, np.ndarray], texts: dict[str, str]) -> str:
    h = hashlib.sha256()
    for key in sorted(texts):
        h.update(f"{key}={texts[key]}\n".encode())
    for key in sorted(tensors):
        arr = np.ascontiguousarray(tensors[key])
        h.update(f"{key}:{arr.dtype.str}:{arr.shape}\n".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def write_atomic(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` via a temporary file beside it, fsync and rename: all or nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _save(path: str | os.PathLike[str], tensors: dict[str, Any], texts: dict[str, str]) -> None:
    from safetensors.numpy import save as st_save

    arrays = {k: np.ascontiguousarray(backend.to_numpy(v)) for k, v in tensors.items()}
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, **texts}
    meta["sha256"] = _digest(arrays, meta)
    write_atomic(Path(path), st_save(arrays, metadata=meta))


def _read(path: str | os.PathLike[str]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Tensors and metadata of a chainrule file, verified; SerializationError otherwise."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise SerializationError(f"{path}: no such model file.")
    try:
        with safe_open(str(path), framework="np") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise SerializationError(
            f"{path}: not a readable safetensors file (truncated or foreign?): {exc}"
        ) from exc
    if meta.get("format") != FORMAT:
        raise SerializationError(
            f"{path}: a safetensors file, but not a chainrule model (no chainrule metadata)."
        )
    stored = meta.pop("sha256", None)
    if stored != _digest(tensors, meta):
        raise SerializationError(
            f"{path}: checksum mismatch: the file was altered or corrupted after saving."
        )
    return tensors, meta


def _json(meta: dict[str, str], key: str, path: Any, kind: type = dict) -> Any:
    try:
        value = json.loads(meta[key])
    except (KeyError, ValueError, RecursionError) as exc:
        raise SerializationError(f"{path}: metadata field {key!r} is missing or not JSON: {exc}.") from exc
    if not isinstance(value, kind):
        raise SerializationError(f"{path}: metadata field {key!r} should be a JSON {kind.__name__}.")
    return value


def _check_architecture(config: dict[str, Any], tensors: dict[str, np.ndarray], path: Any) -> None:
    """Every Dense layer's sizes must match its stored weights, checked before allocating any."""
    layers = config.get("layers")
    if config.get("type") != "Sequential" or not isinstance(layers, list):
        raise SerializationError(f"{path}: the architecture is not a Sequential model with a list of layers.")
    for i, layer in enumerate(layers):
        if not isinstance(layer, dict):
            raise SerializationError(f"{path}: architecture layers[{i}] is not a JSON object.")
        if layer.get("type") == "Dense":
            w = tensors.get(f"model.layers.{i}.W")
            expected = (layer.get("out_features"), layer.get("in_features"))
            if w is None or tuple(w.shape) != expected:
                got = None if w is None else tuple(w.shape)
                raise SerializationError(
                    f"{path}: layers[{i}] Dense expects W of shape {expected}, found {got}."
                )


def save(path: str | os.PathLike[str], model: Sequential, metadata: dict[str, Any] | None = None) -> None:
    """Save ``model``'s architecture and weights to ``path`` (one ``.safetensors`` file), atomically.

    ``metadata`` (JSON-serialisable) is stored alongside, e.g. class names.
    """
    tensors = {f"model.{name}": p.data for name, p in model.named_parameters()}
    texts = {"architecture": json.dumps(model.config()), "user": json.dumps(metadata or {})}
    _save(path, tensors, texts)


def _restore_weights(model: Sequential, tensors: dict[str, np.ndarray], path: Any) -> None:
    for name, p in model.named_parameters():
        arr = tensors.get(f"model.{name}")
        if arr is None or arr.shape != p.shape:
            got = None if arr is None else arr.shape
            raise SerializationError(f"{path}: weight {name!r} expected shape {p.shape}, found {got}.")
        p.data[...] = backend.to_device(arr.astype(p.dtype, copy=False))  # into the layer's own array


def load(path: str | os.PathLike[str]) -> Sequential:
    """Load a model saved by :func:`save` or :func:`save_checkpoint`, onto the active backend.

    Raises
    ------
    SerializationError
        If the file is missing, truncated, altered, or not a chainrule model.
    """
    tensors, meta = _read(path)
    config = _json(meta, "architecture", path)
    _check_architecture(config, tensors, path)
    try:
        model = from_config(config)
    except (ConfigError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SerializationError(f"{path}: bad architecture: {exc}") from exc
    if not isinstance(model, Sequential):
        raise SerializationError(f"{path}: expected a Sequential model, found {type(model).__name__}.")
    _restore_weights(model, tensors, path)
    return model


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
    state = _json(_read(path)[1], "training", path)
    try:
        return _resume(path, state, schedule)
    except (ConfigError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SerializationError(f"{path}: bad training state: {exc!r}") from exc


def _resume(path: Any, state: dict[str, Any], schedule: Any) -> Trainer:
    tensors, _ = _read(path)
    model = load(path)
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
    trainer.epoch = int(state["epoch"])
    trainer.history = History(list(state["history"]))
    trainer.rng.bit_generator.state = state["rng"]
    model.set_rng_state(state["model_rng"])
    if trainer.schedule is not None and state["schedule"] is not None:
        # the factory saw the saved (already decayed) lr: give the schedule its own state back
        trainer.schedule.epoch = int(state["schedule"]["epoch"])
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
    "write_atomic",
]
