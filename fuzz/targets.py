"""The fuzz targets: one reader or loader each, fed mutated copies of valid inputs.

Each target's :meth:`Target.one` mutates one input, hands it to chainrule and
returns the outcome: ``"rejected: <ErrorClass>"`` when chainrule raised one of
its own errors, or ``"round-trip"`` when it accepted the input and the result
survived a write and a read back unchanged (and, for checkpoints and specs, one
use). Anything else (a traceback from inside NumPy, zlib or json, a hang, a
round trip that changes the data) propagates as a failure.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import json
import struct
import threading
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from chainrule import datasets, serialize
from chainrule.errors import ChainruleError
from chainrule.explain import explain, render
from chainrule.layers import Dense, Sequential, mlp
from chainrule.train import Trainer
from fuzz.mutate import Rng, mutate_bytes, mutate_json

ROOT = Path(__file__).resolve().parents[1]


class Target:
    """A loader under fuzzing: ``setup`` writes the valid inputs, ``one`` tries one mutation."""

    name: ClassVar[str] = ""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir / self.name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.last: Path | None = None  # the input of the latest iteration, kept for a failure report

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dir={str(self.dir)!r})"

    def one(self, rng: Rng) -> str:
        try:
            self.attempt(rng)
        except ChainruleError as exc:
            return f"rejected: {type(exc).__name__}"
        return "round-trip"

    def attempt(self, rng: Rng) -> None:
        raise NotImplementedError

    def write(self, name: str, data: bytes) -> Path:
        path = self.dir / name
        path.write_bytes(data)
        self.last = path
        return path

    def close(self) -> None:
        """Release what ``__init__`` started (servers)."""


def _exactly_the_file(model: Sequential, path: Path) -> None:
    """An accepted model holds exactly the file's tensors: all used, none cast, all finite."""
    from safetensors import safe_open

    dtypes = {"F16": np.float16, "F32": np.float32, "F64": np.float64}
    with safe_open(str(path), framework="np") as f:
        stored = {
            k.removeprefix("model."): f.get_slice(k).get_dtype() for k in f.keys() if k.startswith("model.")
        }
    params = dict(model.named_parameters())
    assert set(stored) == set(params), (
        f"tensors stored but not loaded (or missing): {set(stored) ^ set(params)}"
    )
    for name, p in params.items():
        assert stored[name] in dtypes and p.data.dtype == dtypes[stored[name]], (
            f"{name}: {stored[name]} was cast"
        )
        assert np.isfinite(p.data).all(), f"{name}: a non-finite weight was accepted"


def _same_model(a: Sequential, b: Sequential) -> None:
    assert a.config() == b.config(), "a round trip changed the architecture"
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert p.data.dtype == q.data.dtype and p.data.tobytes() == q.data.tobytes(), "weights changed"


def _models() -> list[Sequential]:
    return [
        mlp([4, 6, 3], "tanh", "softmax", dropout=0.2, seed=1),
        mlp([3, 2], bias=False, dtype=np.float64, seed=2),
        Sequential(Sequential(Dense(4, 5, activation="relu", seed=3)), Dense(5, 2, seed=4)),
        mlp([2, 3, 1], "sigmoid", dtype=np.float16, seed=5),
    ]


class ModelBytes(Target):
    """A saved model, garbled byte by byte (truncated, flipped, spliced)."""

    name = "model-bytes"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.files = []
        for i, model in enumerate(_models()):
            serialize.save(self.dir / f"base{i}.safetensors", model, {"loss": "mse", "classes": ["a", "b"]})
            self.files.append((self.dir / f"base{i}.safetensors").read_bytes())

    def attempt(self, rng: Rng) -> None:
        data = self.files[int(rng.integers(0, len(self.files)))]
        header = 8 + int.from_bytes(data[:8], "little")
        path = self.write("m.safetensors", mutate_bytes(data, rng, focus=header))
        model = serialize.load(path)
        serialize.load_metadata(path)
        serialize.save(self.dir / "again.safetensors", model)
        _same_model(model, serialize.load(self.dir / "again.safetensors"))


def _forge_tensors(tensors: dict[str, np.ndarray], rng: Rng) -> dict[str, np.ndarray]:
    tensors = dict(tensors)
    name = sorted(tensors)[int(rng.integers(0, len(tensors)))]
    arr = tensors[name]
    kind = int(rng.integers(0, 7))
    if kind == 0:
        dtype = rng.choice(["int32", "int64", "bool", "uint8", "float16", "float64", "complex64", "float32"])
        tensors[name] = arr.astype(str(dtype))
    elif kind == 1:
        tensors[name] = arr.reshape(-1) if arr.ndim > 1 else arr.reshape(1, -1)
    elif kind == 2:
        bad = arr.copy()
        bad.reshape(-1)[int(rng.integers(0, arr.size))] = rng.choice([np.nan, np.inf, -np.inf, 1e30])
        tensors[name] = bad
    elif kind == 3:
        del tensors[name]
    elif kind == 4:
        tensors[name.rsplit(".", 1)[0] + ".b"] = np.zeros(arr.shape[:1], arr.dtype)
    elif kind == 5:
        tensors[f"model.layers.{int(rng.integers(0, 9))}.W"] = np.zeros((2, 2), np.float32)
    else:
        tensors[name] = np.concatenate([arr, arr])
    return tensors


class ModelForged(Target):
    """A saved model edited as an attacker would: JSON and tensors changed, the SHA-256 recomputed."""

    name = "model-forged"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.bases = []
        for i, model in enumerate(_models()):
            path = self.dir / f"base{i}.safetensors"
            serialize.save(path, model, {"loss": "mse", "data": "digits", "n_classes": 3})
            self.bases.append(serialize._read(path))

    def attempt(self, rng: Rng) -> None:
        tensors, meta = self.bases[int(rng.integers(0, len(self.bases)))]
        meta = dict(meta)
        roll = rng.random()
        if roll < 0.45:
            meta["architecture"] = json.dumps(mutate_json(json.loads(meta["architecture"]), rng))
        elif roll < 0.6:
            meta["user"] = json.dumps(mutate_json(json.loads(meta["user"]), rng))
        elif roll < 0.65:
            meta[str(rng.choice(["format_version", "extra", "format"]))] = str(rng.integers(0, 3))
        else:
            tensors = _forge_tensors(tensors, rng)
        path = self.dir / "m.safetensors"
        serialize._save(path, tensors, meta)  # its format fields override _save's own
        self.last = path
        model = serialize.load(path)
        _exactly_the_file(model, path)
        user = serialize.load_metadata(path)
        assert all(isinstance(user.get(k, ""), str) for k in ("loss", "data")), f"metadata types: {user}"
        serialize.save(self.dir / "again.safetensors", model)
        _same_model(model, serialize.load(self.dir / "again.safetensors"))


class Checkpoint(Target):
    """A checkpoint whose training state and optimizer arrays are forged; an accepted one must train."""

    name = "checkpoint"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        rng = np.random.default_rng(0)
        self.y = rng.integers(0, 3, 24)
        self.x = (rng.normal(size=(24, 4)) + np.eye(3, 4)[self.y]).astype(np.float32)
        self.bases = []
        for i, opt in enumerate(["adam", "sgd", "rmsprop"]):
            options = {"momentum": 0.9} if opt == "sgd" else {}
            model = mlp([4, 5, 3], "relu", "softmax", dropout=0.1, seed=i)
            trainer = Trainer(model, "cross_entropy", opt, 0.01, 8, optimizer_options=options, clip_norm=1.0)
            trainer.fit(self.x, self.y, 2, verbose=0)
            path = self.dir / f"base{i}.safetensors"
            serialize.save_checkpoint(path, trainer)
            self.bases.append(serialize._read(path))

    def attempt(self, rng: Rng) -> None:
        tensors, meta = self.bases[int(rng.integers(0, len(self.bases)))]
        meta = dict(meta)
        if rng.random() < 0.75:
            meta["training"] = json.dumps(mutate_json(json.loads(meta["training"]), rng))
        else:
            tensors = _forge_tensors(tensors, rng)
        path = self.dir / "c.safetensors"
        serialize._save(path, tensors, meta)  # its format fields override _save's own
        self.last = path
        trainer = serialize.load_checkpoint(path)
        _exactly_the_file(trainer.model, path)
        assert trainer.clip_norm is None or trainer.clip_norm > 0, "a clip_norm that climbs the loss"
        trainer.fit(self.x, self.y, trainer.epoch + 1, verbose=0)  # what was accepted must be usable
        serialize.save_checkpoint(self.dir / "again.safetensors", trainer)
        again = serialize.load_checkpoint(self.dir / "again.safetensors")
        assert again.epoch == trainer.epoch and again.batch_size == trainer.batch_size
        _same_model(trainer.model, again.model)


def _idx(array: np.ndarray, magic: int | None = None) -> bytes:
    magic = magic if magic is not None else 0x0800 | array.ndim
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


class Idx(Target):
    """An MNIST folder (four IDX files, raw or gzip) with one file garbled, before or after gzip."""

    name = "idx"
    STEMS: ClassVar[list[str]] = list(datasets.IDX_FILES.values())

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        rng = np.random.default_rng(0)
        self.raw = {
            self.STEMS[0]: _idx(rng.integers(0, 256, (20, 28, 28))),
            self.STEMS[1]: _idx(rng.integers(0, 10, 20)),
            self.STEMS[2]: _idx(rng.integers(0, 256, (6, 28, 28))),
            self.STEMS[3]: _idx(rng.integers(0, 10, 6)),
        }

    def attempt(self, rng: Rng) -> None:
        folder = self.dir / "mnist"
        for p in folder.glob("*") if folder.exists() else []:
            p.unlink()
        folder.mkdir(exist_ok=True)
        gz = bool(rng.random() < 0.6)
        victim = self.STEMS[int(rng.integers(0, 4))]
        for stem, data in self.raw.items():
            if stem == victim and (not gz or rng.random() < 0.5):
                data = mutate_bytes(data, rng, focus=20)  # the payload: headers, dims, counts
                victim = ""
            body = gzip.compress(data, compresslevel=6, mtime=0) if gz else data
            if stem == victim:
                body = mutate_bytes(body, rng)  # the gzip stream itself
            (folder / (stem + (".gz" if gz else ""))).write_bytes(body)
        self.last = folder
        ds = datasets.load_idx_folder(folder)
        (self.dir / "again-idx1-ubyte").write_bytes(_idx(ds.y_train))
        assert np.array_equal(datasets.read_idx(self.dir / "again-idx1-ubyte"), ds.y_train.astype(np.uint8))


class Csv(Target):
    """A numeric CSV table, garbled as bytes or as text (long fields, odd numbers, other encodings)."""

    name = "csv"
    TOKENS: ClassVar[list[bytes]] = [
        b"nan", b"inf", b"-1", b"1e400", b"3000000", b"1.5", b'"', b'"a,b"', b"\n", b"\r\n", b",", b"\xff",
        b"\xc3", "é".encode("latin-1"), "\u2028".encode(), b"\x00", b"0" * 140_000, b"label", b" ",
    ]  # fmt: skip

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        rng = np.random.default_rng(0)
        rows = [f"{a:.3f},{b:.3f},{i % 3}" for i, (a, b) in enumerate(rng.normal(size=(30, 2)))]
        self.text = ("f1,f2,label\n" + "\n".join(rows) + "\n").encode()

    def attempt(self, rng: Rng) -> None:
        data = self.text
        if rng.random() < 0.5:
            data = mutate_bytes(data, rng)
        else:
            at = int(rng.integers(0, len(data)))
            data = data[:at] + self.TOKENS[int(rng.integers(0, len(self.TOKENS)))] + data[at:]
        path = self.write("t.csv", data)
        datasets.load(str(path))
        x, y, _ = datasets.read_csv(path)
        rows = [",".join(repr(float(v)) for v in [*row, label]) for row, label in zip(x, y, strict=True)]
        self.write("again.csv", ("\n".join(rows) + "\n").encode())
        x2, y2, _ = datasets.read_csv(self.dir / "again.csv", header=False)
        assert np.array_equal(x, x2) and np.array_equal(y, y2), "a CSV round trip changed the values"
        self.last = path


class NpyNpz(Target):
    """``.npy`` tables and ``.npz`` archives (stored and deflated), garbled."""

    name = "npy-npz"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        rng = np.random.default_rng(0)
        x = rng.normal(size=(24, 3)).astype(np.float32)
        y = np.arange(24) % 2
        table = io.BytesIO()
        np.save(table, np.column_stack([x, y]).astype(np.float32))
        stored, deflated = io.BytesIO(), io.BytesIO()
        np.savez(stored, x=x, y=y)
        np.savez_compressed(deflated, x_train=x[:16], y_train=y[:16], x_test=x[16:], y_test=y[16:])
        self.files = [
            ("t.npy", table.getvalue()),
            ("s.npz", stored.getvalue()),
            ("d.npz", deflated.getvalue()),
        ]

    def attempt(self, rng: Rng) -> None:
        name, data = self.files[int(rng.integers(0, len(self.files)))]
        path = self.write(name, mutate_bytes(data, rng, focus=128))
        ds = datasets.load(str(path), mmap=False) if name.endswith(".npy") else datasets.load(str(path))
        again = self.dir / "again.npz"
        np.savez(again, x_train=ds.x_train, y_train=ds.y_train, x_test=ds.x_test, y_test=ds.y_test)
        ds2 = datasets.load(str(again), task=ds.task)
        assert np.array_equal(ds.x_train, ds2.x_train) and np.array_equal(ds.y_test, ds2.y_test)


class Spec(Target):
    """``explain`` specs (the examples and a drawn network), edited as JSON or garbled as bytes."""

    name = "spec"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        drawn = {
            "layers": [
                {"sizes": [3, 4], "seed": 0, "activation": "relu", "bias": True},
                {"sizes": 2, "seed": 1},
            ],
            "input": [[0.1, 0.2, 0.3], [0.3, 0.2, 0.1]],
            "target": [[0, 1], [1, 0]],
            "loss": "mse",
        }
        examples = [json.loads((ROOT / "examples" / n).read_text()) for n in ("mazur.json", "note004.json")]
        self.specs = [*examples, drawn]

    def attempt(self, rng: Rng) -> None:
        spec = self.specs[int(rng.integers(0, len(self.specs)))]
        if rng.random() < 0.75:
            data = json.dumps(mutate_json(spec, rng)).encode()
        else:
            data = mutate_bytes(json.dumps(spec).encode(), rng)
        path = self.write("s.json", data)
        steps = int(rng.choice([0, 0, 3]))
        expl = explain(path, steps=steps, weight="1:1,1" if rng.random() < 0.3 else None)
        render(expl, "text")
        text = render(expl, "json")
        assert isinstance(text, str)
        json.loads(text, parse_constant=_strict)  # the JSON an accepted spec gives is valid (RFC 8259)


def _strict(constant: str) -> None:
    raise AssertionError(f"explain's JSON holds {constant}")


class Download(Target):
    """The downloader against a 127.0.0.1 server whose every answer is garbled in a drawn way."""

    name = "download"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.body = gzip.compress(_idx(np.arange(600) % 10), mtime=0)
        self.digest = hashlib.sha256(self.body).hexdigest()
        self.plan: dict[str, Any] = {}
        target = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_GET(self) -> None:
                try:
                    target.answer(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/f/"

    def answer(self, h: http.server.BaseHTTPRequestHandler) -> None:
        plan = self.plan
        h.send_response(plan["status"])
        body = plan["body"]
        if plan["length"] is not None:
            h.send_header("Content-Length", plan["length"])
        if plan["range"] is not None:
            h.send_header("Content-Range", plan["range"])
        h.end_headers()
        if plan["trickle"]:
            for i in range(0, len(body), 64):
                h.wfile.write(body[i : i + 64])
                h.wfile.flush()
                threading.Event().wait(0.05)
        else:
            h.wfile.write(body)

    def attempt(self, rng: Rng) -> None:
        body = self.body
        kind = int(rng.integers(0, 4))
        if kind == 1:
            body = mutate_bytes(body, rng)
        elif kind == 2:
            body = body + rng.bytes(int(rng.integers(1, 10_000)))
        elif kind == 3:
            body = body[: int(rng.integers(0, len(body)))]
        lengths = [str(len(body)), None, "abc", "-5", str(len(self.body)), str(10**15), " 12", "1e3"]
        self.plan = {
            "status": int(rng.choice([200, 200, 200, 206, 404, 416, 500, 301])),
            "body": body,
            "length": lengths[int(rng.integers(0, len(lengths)))],
            "range": str(rng.choice(["bytes 0-10/20", "bytes x", "none"])) if rng.random() < 0.2 else None,
            "trickle": bool(rng.random() < 0.05),
        }
        cache = self.dir / "cache"
        for p in cache.rglob("*") if cache.exists() else []:
            if p.is_file():
                p.unlink()
        if rng.random() < 0.2:  # a .part left by an earlier attempt
            (cache / "x").mkdir(parents=True, exist_ok=True)
            (cache / "x" / "f.gz.part").write_bytes(self.body[: int(rng.integers(0, len(self.body)))])
        self.last = None
        retries = int(rng.integers(1, 3))
        folder = datasets.download(
            "x",
            cache_dir=cache,
            mirrors=[self.url],
            sha256={"f.gz": self.digest},
            retries=retries,
            backoff=0,
            timeout=0.5,
            deadline=0.4,
            max_bytes=4096,
        )
        assert (folder / "f.gz").read_bytes() == self.body, "a download passed with other bytes"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


TARGETS: dict[str, type[Target]] = {
    t.name: t for t in (ModelBytes, ModelForged, Checkpoint, Idx, Csv, NpyNpz, Spec, Download)
}

__all__ = ["TARGETS", "Target"]
