"""Tests for chainrule.serialize: round trips, rejected files, no pickle, atomic writes, resumes."""

from __future__ import annotations

import os
import pickle
import re

import numpy as np
import pytest
from safetensors.numpy import save_file

from chainrule import serialize
from chainrule.errors import SerializationError
from chainrule.layers import mlp
from chainrule.train import Trainer, predict


def blobs(m: int = 64) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, m)
    return (rng.normal(size=(m, 4)) + 2.0 * np.eye(3, 4)[y]).astype(np.float32), y


@pytest.fixture
def saved(tmp_path):  # type: ignore[no-untyped-def]
    model = mlp([4, 6, 3], "tanh", "softmax", seed=1)
    path = tmp_path / "model.safetensors"
    serialize.save(path, model, {"classes": ["a", "b", "c"]})
    return model, path


def test_round_trip_preserves_predictions_exactly(saved) -> None:  # type: ignore[no-untyped-def]
    model, path = saved
    x, _ = blobs()
    loaded = serialize.load(path)
    assert loaded.config() == model.config()
    np.testing.assert_array_equal(predict(loaded, x), predict(model, x))
    assert serialize.load_metadata(path) == {"classes": ["a", "b", "c"]}


def test_float64_and_no_bias_round_trip(tmp_path) -> None:
    model = mlp([3, 2], bias=False, dtype=np.float64, seed=0)
    serialize.save(tmp_path / "m.safetensors", model)
    loaded = serialize.load(tmp_path / "m.safetensors")
    assert loaded[0].W.dtype == np.float64 and loaded[0].b is None
    assert loaded[0].W.data.tobytes() == model[0].W.data.tobytes()


def test_missing_file(tmp_path) -> None:
    with pytest.raises(SerializationError, match=r"nope.safetensors: no such model file"):
        serialize.load(tmp_path / "nope.safetensors")


def test_truncated_file(saved) -> None:  # type: ignore[no-untyped-def]
    _, path = saved
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(
        SerializationError, match=r"not a readable safetensors file \(truncated or foreign\?\)"
    ):
        serialize.load(path)


def test_one_byte_altered(saved) -> None:  # type: ignore[no-untyped-def]
    _, path = saved
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x01  # inside the last tensor's bytes
    path.write_bytes(bytes(data))
    with pytest.raises(
        SerializationError, match=r"checksum mismatch: the file was altered or corrupted after saving"
    ):
        serialize.load(path)


def test_foreign_safetensors_file(tmp_path) -> None:
    path = tmp_path / "foreign.safetensors"
    save_file({"weight": np.ones((2, 2), dtype=np.float32)}, str(path))
    with pytest.raises(
        SerializationError, match=r"a safetensors file, but not a chainrule model \(no chainrule metadata\)"
    ):
        serialize.load(path)


def test_random_bytes(tmp_path) -> None:
    path = tmp_path / "noise.safetensors"
    path.write_bytes(np.random.default_rng(0).bytes(512))
    with pytest.raises(SerializationError, match=r"not a readable safetensors file"):
        serialize.load(path)


class Payload:
    """A pickle whose loading would create a marker file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (open, (self.marker, "w"))


def test_a_pickle_is_rejected_and_never_executed(tmp_path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps(Payload(str(marker))))
    with pytest.raises(SerializationError, match=r"not a readable safetensors file"):
        serialize.load(path)
    with pytest.raises(SerializationError):
        serialize.load_checkpoint(path)
    assert not marker.exists()


def test_crash_mid_save_keeps_the_previous_file(saved, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    _, path = saved
    before = path.read_bytes()

    def crash(*args: object) -> None:
        raise OSError("disk died")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk died"):
        serialize.save(path, mlp([4, 9, 3], seed=5))
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.safetensors"]


def test_crash_during_the_write_leaves_no_temp_file(tmp_path, monkeypatch) -> None:
    def crash(fd: int) -> None:
        raise OSError("fsync failed")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="fsync failed"):
        serialize.save(tmp_path / "m.safetensors", mlp([2, 2]))
    assert list(tmp_path.iterdir()) == []


def test_architecture_mismatch_and_bad_metadata(tmp_path) -> None:
    path = tmp_path / "m.safetensors"
    model = mlp([4, 3])
    serialize._save(
        path,
        {"model.layers.0.W": np.zeros((2, 2), np.float32)},
        {"architecture": __import__("json").dumps(model.config()), "user": "{}"},
    )
    with pytest.raises(
        SerializationError, match=re.escape("layers[0] Dense expects W of shape (3, 4), found (2, 2).")
    ):
        serialize.load(path)
    serialize._save(path, {}, {"architecture": "not json"})
    with pytest.raises(SerializationError, match=r"metadata field 'architecture' is missing or not JSON"):
        serialize.load(path)
    for arch in ('{"type": "Conv2d"}', '{"type": "Activation", "name": "relu"}'):
        serialize._save(path, {}, {"architecture": arch})
        with pytest.raises(SerializationError, match=r"the architecture is not a Sequential model"):
            serialize.load(path)
    serialize._save(path, {}, {"architecture": '{"type": "Sequential", "layers": [{"type": "Conv2d"}]}'})
    with pytest.raises(
        SerializationError, match=r"bad architecture: from_config: unknown layer type 'Conv2d'"
    ):
        serialize.load(path)


@pytest.mark.parametrize(
    ("field", "text", "message"),
    [
        ("architecture", "[1, 2]", "metadata field 'architecture' should be a JSON dict"),
        (
            "architecture",
            '{"type": "Sequential", "layers": [[1]]}',
            r"architecture layers\[0\] is not a JSON object",
        ),
        (
            "architecture",
            '{"type": "Sequential", "layers": [{"type": "Dense", "in_features": 10000000, '
            '"out_features": 10000000, "bias": false, "activation": "identity"}]}',
            r"layers\[0\] Dense expects W of shape \(10000000, 10000000\), found None",
        ),
        ("architecture", "[" * 100000 + "]" * 100000, "metadata field 'architecture' is missing or not JSON"),
        ("user", "[1]", "metadata field 'user' should be a JSON dict"),
    ],
)
def test_crafted_metadata_is_a_serialization_error(tmp_path, field: str, text: str, message: str) -> None:
    """The digest is recomputable, so a forged file must still fail cleanly, before any allocation."""
    path = tmp_path / "m.safetensors"
    texts = {"architecture": '{"type": "Sequential", "layers": []}', "user": "{}", field: text}
    serialize._save(path, {}, texts)
    with pytest.raises(SerializationError, match=message):
        serialize.load_metadata(path) if field == "user" else serialize.load(path)


def test_crafted_training_state_is_a_serialization_error(tmp_path) -> None:
    x, y = blobs()
    trainer = Trainer(mlp([4, 3], output="softmax"), "cross_entropy", "sgd", 0.1)
    trainer.fit(x, y, 1, verbose=0)
    path = tmp_path / "c.safetensors"
    serialize.save_checkpoint(path, trainer)
    tensors, meta = serialize._read(path)
    for training in ("[]", '{"epoch": 1}'):
        serialize._save(path, tensors, {**meta, "training": training})
        with pytest.raises(SerializationError, match="training"):
            serialize.load_checkpoint(path)
    state = __import__("json").loads(meta["training"])
    state["optimizer"]["options"] = {"bogus": 1}
    serialize._save(path, tensors, {**meta, "training": __import__("json").dumps(state)})
    with pytest.raises(SerializationError, match="bad training state"):
        serialize.load_checkpoint(path)


def test_checkpoint_resume_with_a_schedule_is_bit_identical(tmp_path) -> None:
    from chainrule.optim import StepLR

    x, y = blobs()

    def new_trainer() -> Trainer:
        return Trainer(
            mlp([4, 8, 3], "relu", "softmax", seed=0),
            "cross_entropy",
            "sgd",
            lr=0.1,
            batch_size=16,
            schedule=lambda opt: StepLR(opt, step_size=1, gamma=0.5),
        )

    full = new_trainer()
    full.fit(x, y, 4, verbose=0)
    first = new_trainer()
    first.fit(x, y, 2, verbose=0)
    path = tmp_path / "ckpt.safetensors"
    serialize.save_checkpoint(path, first)
    resumed = serialize.load_checkpoint(path, schedule=lambda opt: StepLR(opt, step_size=1, gamma=0.5))
    resumed.fit(x, y, 4, verbose=0)
    assert resumed.history["lr"] == full.history["lr"] == [0.1, 0.05, 0.025, 0.0125]
    for p, q in zip(full.model.parameters(), resumed.model.parameters(), strict=True):
        assert p.data.tobytes() == q.data.tobytes()


# ------------------------------------------------------------ checkpoints
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_checkpoint_resume_is_bit_identical(tmp_path, optimizer: str) -> None:
    x, y = blobs()
    options = {"momentum": 0.9} if optimizer == "sgd" else {}

    def new_trainer() -> Trainer:
        model = mlp([4, 8, 3], "relu", "softmax", dropout=0.3, seed=0)
        return Trainer(
            model, "cross_entropy", optimizer, lr=0.01, batch_size=16, seed=0, optimizer_options=options
        )

    full = new_trainer()
    full.fit(x, y, 6, verbose=0, validation_split=0.2)

    first = new_trainer()
    first.fit(x, y, 3, verbose=0, validation_split=0.2)
    path = tmp_path / "ckpt.safetensors"
    serialize.save_checkpoint(path, first)
    resumed = serialize.load_checkpoint(path)
    assert resumed.epoch == 3 and len(resumed.history) == 3
    resumed_history = resumed.fit(x, y, 6, verbose=0, validation_split=0.2)
    assert len(resumed_history) == 6
    for p, q in zip(full.model.parameters(), resumed.model.parameters(), strict=True):
        assert p.data.tobytes() == q.data.tobytes()
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert resumed_history[key] == full.history[key]


@pytest.mark.parametrize(("compiled", "fused_update"), [(True, False), (False, False), (True, True)])
def test_checkpoint_keeps_the_engine_options(tmp_path, compiled: bool, fused_update: bool) -> None:
    x, y = blobs()
    model = mlp([4, 8, 3], "relu", "softmax", seed=0)
    trainer = Trainer(
        model, "cross_entropy", "sgd", 0.1, batch_size=16, compiled=compiled, fused_update=fused_update
    )
    trainer.fit(x, y, 1, verbose=0)
    path = tmp_path / "ckpt.safetensors"
    serialize.save_checkpoint(path, trainer)
    resumed = serialize.load_checkpoint(path)
    assert (resumed.compiled, resumed.fused_update) == (compiled, fused_update)


def test_a_checkpoint_of_the_traced_engine_resumes_with_its_options_renamed(tmp_path) -> None:
    """Checkpoints written before the compile layer said 'traced', and fused plain SGD by default."""
    import json

    from safetensors.numpy import load_file

    x, y = blobs()
    trainer = Trainer(mlp([4, 8, 3], "relu", "softmax", seed=0), "cross_entropy", "adam", 0.01, batch_size=16)
    trainer.fit(x, y, 1, verbose=0)
    path = tmp_path / "ckpt.safetensors"
    serialize.save_checkpoint(path, trainer)
    tensors, meta = load_file(str(path)), serialize._read(path)[1]
    state = json.loads(meta["training"])
    state["traced"] = False
    state["fused_update"] = True  # the old default, written even for Adam
    del state["compiled"]
    meta["training"] = json.dumps(state)
    serialize._save(path, tensors, {k: v for k, v in meta.items() if k not in ("format", "format_version")})
    resumed = serialize.load_checkpoint(path)
    assert (resumed.compiled, resumed.fused_update) == (False, False)


def test_checkpoint_callback_writes_every_n_epochs(tmp_path) -> None:
    x, y = blobs()
    path = tmp_path / "ckpt.safetensors"
    trainer = Trainer(mlp([4, 3], output="softmax"), "cross_entropy")
    cb = serialize.Checkpoint(path, every=2)
    assert repr(cb) == f"Checkpoint(path={str(path)!r}, every=2)"
    trainer.fit(x, y, 3, verbose=0, callbacks=[cb])
    assert serialize.load_checkpoint(path).epoch == 2
