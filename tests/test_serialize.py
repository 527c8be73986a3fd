"""Tests for chainrule.serialize: round trips, rejected files, no pickle, atomic writes, resumes."""

from __future__ import annotations

import json
import os
import pickle
import re

import numpy as np
import pytest
from safetensors.numpy import save_file

from chainrule import serialize
from chainrule.errors import LimitError, SerializationError
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
        SerializationError, match=r"bad architecture: layers\[0\]: unknown layer type 'Conv2d'"
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
            '{"type": "Sequential", "layers": [{"type": "Dense", "in_features": 10000, '
            '"out_features": 5000, "bias": false, "activation": "identity", "dtype": "float32"}]}',
            r"layers\[0\] Dense expects W of shape \(5000, 10000\), found \(1, 2\)",
        ),
        ("architecture", "[" * 100000 + "]" * 100000, "metadata field 'architecture' is missing or not JSON"),
        ("user", "[1]", "metadata field 'user' should be a JSON dict"),
    ],
)
def test_crafted_metadata_is_a_serialization_error(tmp_path, field: str, text: str, message: str) -> None:
    """The digest is recomputable, so a forged file must still fail cleanly, before any allocation."""
    path = tmp_path / "m.safetensors"
    texts = {"architecture": json.dumps(mlp([2, 1]).config()), "user": "{}", field: text}
    tensors = {"model.layers.0.W": np.zeros((1, 2), np.float32), "model.layers.0.b": np.zeros(1, np.float32)}
    serialize._save(path, tensors, texts)
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


# ------------------------------------------------------------ hostile files (issue 14)
# Each file below is forged with the digest recomputed (serialize._save), as an attacker would.


def forge(path, model, tensors=None, drop=(), user=None, texts=None) -> None:  # type: ignore[no-untyped-def]
    """Save ``model`` with some tensors replaced, added or dropped, and the digest recomputed."""
    arrays = {f"model.{n}": p.data for n, p in model.named_parameters() if f"model.{n}" not in drop}
    arrays.update(tensors or {})
    meta = {"architecture": json.dumps(model.config()), "user": json.dumps(user or {})}
    serialize._save(path, arrays, {**meta, **(texts or {})})


def raw_safetensors(path, entries: dict, metadata: dict) -> None:  # type: ignore[no-untyped-def]
    """A safetensors file written byte by byte, for dtypes NumPy cannot hold (BF16, F8, F4)."""
    header, offset, data = {"__metadata__": metadata}, 0, b""
    for name, (dtype, shape, nbytes) in entries.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
        data += bytes(nbytes)
    text = json.dumps(header).encode()
    path.write_bytes(len(text).to_bytes(8, "little") + text + data)


@pytest.mark.parametrize(
    ("dtype", "nbytes"),
    [("BF16", 4), ("F8_E4M3", 2), ("F8_E5M2", 2), ("F4", 1), ("C64", 16), ("I32", 8), ("BOOL", 2), ("U8", 2)],
)
def test_a_dtype_off_the_allow_list_is_refused_before_reading(tmp_path, dtype: str, nbytes: int) -> None:
    path = tmp_path / "m.safetensors"
    model = mlp([2, 1], bias=False)
    meta = {"format": "chainrule", "format_version": "1", "architecture": json.dumps(model.config())}
    raw_safetensors(path, {"model.layers.0.W": (dtype, [1, 2], nbytes)}, {**meta, "sha256": "0" * 64})
    with pytest.raises(
        SerializationError,
        match=rf"tensor 'model.layers.0.W' \(layers\[0\] Dense W\) is stored as {dtype}; "
        r"allowed are F16, F32, F64",
    ):
        serialize.load(path)


@pytest.mark.parametrize("dtype", [np.int32, np.bool_, np.float16, np.float64, np.complex64, np.uint8])
def test_a_stored_dtype_other_than_the_layers_is_refused_not_cast(tmp_path, dtype: type) -> None:
    path = tmp_path / "m.safetensors"
    forge(path, mlp([4, 3], seed=0), {"model.layers.0.W": np.ones((3, 4), dtype)})
    kind = np.dtype(dtype).name
    stored = {
        "float16": "stored as float16, but the architecture says float32",
        "float64": "stored as float64",
    }
    with pytest.raises(SerializationError, match=stored.get(kind, r"allowed are F16, F32, F64")):
        serialize.load(path)


def test_a_float16_model_round_trips(tmp_path) -> None:
    model = mlp([3, 2], dtype=np.float16, seed=0)
    serialize.save(tmp_path / "m.safetensors", model)
    loaded = serialize.load(tmp_path / "m.safetensors")
    assert loaded[0].W.dtype == np.float16 and loaded[0].W.data.tobytes() == model[0].W.data.tobytes()


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_weights_are_refused_naming_the_tensor(tmp_path, value: float) -> None:
    path = tmp_path / "m.safetensors"
    b = np.zeros(3, np.float32)
    b[2] = value
    forge(path, mlp([4, 3], seed=0), {"model.layers.0.b": b})
    with pytest.raises(
        SerializationError, match=r"tensor 'model.layers.0.b' holds NaN or infinity \(first at index \(2,\)"
    ):
        serialize.load(path)


def test_save_refuses_non_finite_weights(tmp_path) -> None:
    model = mlp([2, 2], seed=0)
    model[0].W.data[1, 0] = np.nan
    with pytest.raises(SerializationError, match=r"tensor 'model.layers.0.W' holds NaN or infinity"):
        serialize.save(tmp_path / "m.safetensors", model)
    assert not list(tmp_path.iterdir())


def test_a_stored_b_under_bias_false_is_refused(tmp_path) -> None:
    path = tmp_path / "m.safetensors"
    forge(path, mlp([4, 3], bias=False, seed=0), {"model.layers.0.b": np.ones(3, np.float32)})
    with pytest.raises(
        SerializationError,
        match=r"unexpected tensor 'model.layers.0.b': the architecture says that layer has bias=false",
    ):
        serialize.load(path)


def test_a_missing_tensor_is_named(tmp_path) -> None:
    path = tmp_path / "m.safetensors"
    forge(path, mlp([4, 3], seed=0), drop=("model.layers.0.b",))
    with pytest.raises(
        SerializationError, match=re.escape("layers[0] Dense expects b of shape (3,), found None")
    ):
        serialize.load(path)


def test_an_architecture_without_a_dense_layer_is_refused(tmp_path) -> None:
    path = tmp_path / "m.safetensors"
    arch = {"type": "Sequential", "layers": [{"type": "Activation", "name": "relu"}]}
    serialize._save(path, {}, {"architecture": json.dumps(arch), "user": "{}"})
    with pytest.raises(
        SerializationError, match=r"the architecture has no Dense layer, so no weights to load"
    ):
        serialize.load(path)


def test_dense_layers_that_do_not_chain_are_refused(tmp_path) -> None:
    from chainrule.layers import Dense, Sequential

    model = Sequential(Dense(4, 3, seed=0), Dense(5, 2, seed=0))
    path = tmp_path / "m.safetensors"
    forge(path, model)
    with pytest.raises(
        SerializationError,
        match=re.escape(
            "layers[1] Dense has in_features=5, but layers[0] Dense before it has out_features=3"
        ),
    ):
        serialize.load(path)


def test_nested_sequential_round_trips_and_is_checked(tmp_path) -> None:
    from chainrule.layers import Dense, Sequential

    model = Sequential(Sequential(Dense(4, 3, activation="tanh", seed=0)), Dense(3, 2, seed=1))
    path = tmp_path / "m.safetensors"
    serialize.save(path, model)
    x, _ = blobs()
    np.testing.assert_array_equal(predict(serialize.load(path), x), predict(model, x))
    forge(path, model, {"model.layers.0.layers.0.W": np.zeros((3, 5), np.float32)})
    with pytest.raises(
        SerializationError,
        match=re.escape("layers[0].layers[0] Dense expects W of shape (3, 4), found (3, 5)"),
    ):
        serialize.load(path)


def test_a_nested_sequential_over_the_parameter_limit_fails_before_allocation(tmp_path) -> None:
    from chainrule import limits

    path = tmp_path / "m.safetensors"
    small = {
        "type": "Sequential",
        "layers": [{"type": "Sequential", "layers": [mlp([100, 100]).config()["layers"][0]]}],
    }
    serialize._save(path, {}, {"architecture": json.dumps(small), "user": "{}"})
    with limits.override(max_parameters=1000):  # first: a nested model once skipped every check
        with pytest.raises(
            LimitError, match=r"10100 parameters in 1 Dense layer is over the limit max_parameters"
        ):
            serialize.load(path)
    arch = {
        "type": "Sequential",
        "layers": [{"type": "Sequential", "layers": [
            {"type": "Dense", "in_features": 30000, "out_features": 30000, "bias": True,
             "activation": "identity", "dtype": "float32"}]}],
    }  # fmt: skip
    path = tmp_path / "m.safetensors"
    serialize._save(path, {}, {"architecture": json.dumps(arch), "user": "{}"})
    with pytest.raises(
        LimitError, match=r"900030000 parameters in 1 Dense layer is over the limit max_parameters"
    ):
        serialize.load(path)


def test_nesting_deeper_than_the_limit_is_refused(tmp_path) -> None:
    inner: dict = mlp([2, 1]).config()
    for _ in range(70):
        inner = {"type": "Sequential", "layers": [inner]}
    path = tmp_path / "m.safetensors"
    serialize._save(path, {}, {"architecture": json.dumps(inner), "user": "{}"})
    with pytest.raises(
        LimitError, match=r"65 levels of JSON nesting is over the limit max_nesting_depth = 64"
    ):
        serialize.load(path)


@pytest.mark.parametrize(
    ("arch_change", "message"),
    [
        ({"bias": "yes"}, r"Dense bias must be true or false, got 'yes'"),
        ({"in_features": 4.0}, r"Dense sizes must be positive integers"),
        ({"in_features": True}, r"Dense sizes must be positive integers"),
        ({"activation": ["relu"]}, r"unknown activation \['relu'\]"),
        ({"dtype": "complex64"}, r"Dense dtype must be one of \['float16', 'float32', 'float64'\]"),
        ({"init": 3}, r"unknown init 3"),
        ({"bogus": 1}, r"a Dense has the fields .*; unknown field 'bogus'"),
        ({"out_features": 2_000_000}, r"layers\[0\] Dense: 2000000 units is over the limit max_layer_width"),
    ],
)
def test_every_architecture_field_is_typed(tmp_path, arch_change: dict, message: str) -> None:
    config = mlp([4, 3]).config()
    config["layers"][0].update(arch_change)
    path = tmp_path / "m.safetensors"
    serialize._save(path, {}, {"architecture": json.dumps(config)})
    with pytest.raises((SerializationError, LimitError), match=message):
        serialize.load(path)


@pytest.mark.parametrize(
    ("user", "message"),
    [
        ({"loss": 5}, r"user metadata 'loss' should be a string, got 5"),
        ({"data": [1]}, r"user metadata 'data' should be a string, got \[1\]"),
        ({"n_classes": "10"}, r"user metadata 'n_classes' should be an integer or null, got '10'"),
        ({"n_classes": 0}, r"user metadata 'n_classes' should be >= 1, got 0"),
        ({"task": 1}, r"user metadata 'task' should be a string or null, got 1"),
    ],
)
def test_the_metadata_the_cli_reads_is_typed(tmp_path, user: dict, message: str) -> None:
    path = tmp_path / "m.safetensors"
    forge(path, mlp([2, 2]), user=user)
    with pytest.raises(SerializationError, match=message):
        serialize.load_metadata(path)


def test_unknown_metadata_fields_and_versions_are_refused(tmp_path) -> None:
    path = tmp_path / "m.safetensors"
    forge(path, mlp([2, 2]), texts={"extra": "1"})
    with pytest.raises(SerializationError, match=r"unknown metadata field 'extra'"):
        serialize.load(path)
    forge(path, mlp([2, 2]), texts={"format_version": "2"})
    with pytest.raises(SerializationError, match=r"format version '2', but this chainrule reads version '1'"):
        serialize.load(path)


@pytest.fixture
def checkpoint(tmp_path):  # type: ignore[no-untyped-def]
    x, y = blobs()
    trainer = Trainer(mlp([4, 5, 3], "relu", "softmax", dropout=0.2), "cross_entropy", "adam", 0.01)
    trainer.fit(x, y, 1, verbose=0)
    path = tmp_path / "c.safetensors"
    serialize.save_checkpoint(path, trainer)
    tensors, meta = serialize._read(path)
    return path, tensors, meta


def _edit_state(state: dict, dotted: str, value: object) -> None:
    *parents, last = dotted.split("/")
    for key in parents:
        state = state[key]
    if value is KeyError:
        del state[last]
    else:
        state[last] = value


@pytest.mark.parametrize(
    ("where", "value", "message"),
    [
        ("epoch", float("inf"), r"training state 'epoch' should be an integer >= 0, got inf"),
        ("epoch", -1, r"'epoch' should be an integer >= 0, got -1"),
        ("optimizer/counters/0.step", float("inf"), r"'optimizer'.'counters'.'0.step' should be an integer"),
        ("optimizer/counters/9.step", 1, r"'optimizer'.'counters' key should be '<parameter index < 4>"),
        ("optimizer/steps", 1.5, r"'optimizer'.'steps' should be an integer >= 0, got 1.5"),
        ("optimizer/lr", -0.1, r"'optimizer'.'lr' should be a finite number > 0, got -0.1"),
        ("optimizer/name", ["adam"], r"'optimizer'.'name' should be one of"),
        ("optimizer/options/eps", "x", r"'optimizer'.'options'.'eps' should be finite numbers or true/false"),
        ("bogus", 1, r"training state  has an unknown key 'bogus'"),
        ("batch_size", 2.5, r"'batch_size' should be an integer >= 1, got 2.5"),
        ("batch_size", 0, r"'batch_size' should be an integer >= 1, got 0"),
        ("clip_norm", -1, r"'clip_norm' should be a finite number > 0, got -1"),
        ("clip_norm", 0, r"'clip_norm' should be a finite number > 0, got 0"),
        ("clip_norm", float("nan"), r"'clip_norm' should be a finite number > 0, got nan"),
        ("seed", -1, r"'seed' should be an integer >= 0, got -1"),
        ("traced", "yes", r"'traced' should be true or false"),
        ("loss/name", {}, r"'loss' should be a loss of"),
        ("loss/reduction", "max", r"'loss' should be a loss of"),
        ("schedule", {"epoch": "1"}, r"'schedule'.'epoch' should be an integer"),
        ("rng/state/state", "x", r"'rng' should be a PCG64 generator state"),
        ("rng", {"bit_generator": "MT19937"}, r"'rng' should be a PCG64 generator state"),
        ("model_rng/1/state", 5, r"'model_rng'.'1' should be a PCG64 generator state"),
        ("model_rng/x", {}, r"'model_rng' key should be a layer index"),
        ("history", [{"loss": "low"}], r"'history'\[0\] should be an object of numbers"),
        ("epoch", KeyError, r"training state  has no key 'epoch'"),
    ],
)
def test_every_training_state_field_is_typed_and_ranged(
    checkpoint, where: str, value: object, message: str
) -> None:
    path, tensors, meta = checkpoint
    state = json.loads(meta["training"])
    _edit_state(state, where, value)
    serialize._save(path, tensors, {**meta, "training": json.dumps(state)})
    with pytest.raises(SerializationError, match=message):
        serialize.load_checkpoint(path)


@pytest.mark.parametrize(
    ("name", "array", "message"),
    [
        (
            "optim.0.m",
            np.zeros((5, 3), np.float32),
            r"optimizer state of parameter 0 expects m of shape \(5, 4\)",
        ),
        ("optim.0.m", np.full((5, 4), np.nan, np.float32), r"tensor 'optim.0.m' holds NaN or infinity"),
        ("optim.0.v", np.zeros((5, 4), np.float64), r"stored as float64, but the architecture says float32"),
        ("optim.7.m", np.zeros(3, np.float32), r"unexpected tensor 'optim.7.m': not a state array"),
        ("optim.0.bogus", np.zeros(3, np.float32), r"unexpected tensor 'optim.0.bogus'"),
    ],
)
def test_optimizer_arrays_are_checked_against_the_parameters(
    checkpoint, name: str, array, message: str
) -> None:  # type: ignore[no-untyped-def]
    path, tensors, meta = checkpoint
    serialize._save(path, {**tensors, name: array}, meta)
    with pytest.raises(SerializationError, match=message):
        serialize.load_checkpoint(path)


def test_a_valid_checkpoint_still_loads_after_the_checks(checkpoint) -> None:  # type: ignore[no-untyped-def]
    path, _, _ = checkpoint
    trainer = serialize.load_checkpoint(path)
    assert trainer.epoch == 1 and trainer.batch_size == 32 and trainer.optimizer.steps == 2
    assert serialize.load(path).config() == trainer.model.config()  # load() takes a checkpoint too


def test_saved_files_get_the_usual_permissions_and_no_temp_is_left(tmp_path) -> None:
    umask = os.umask(0o022)
    os.umask(umask)
    serialize.save(tmp_path / "m.safetensors", mlp([2, 2]))
    mode = (tmp_path / "m.safetensors").stat().st_mode & 0o777
    assert mode == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]
