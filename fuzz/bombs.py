"""Memory bombs: small inputs that declare or expand to huge sizes, each measured while it is refused.

Each case builds its input once, then runs the loader under ``tracemalloc`` (which
sees NumPy's arrays, Python's bytes and zlib's buffers) and checks that chainrule
refused it with one of its own errors, and that the peak of memory allocated
meanwhile stayed within ``RATIO * (size of the input) + SLACK`` bytes, the input
read in pieces of at most :data:`chainrule.datasets._bounded.CHUNK`.
"""

from __future__ import annotations

import gzip
import http.server
import io
import json
import struct
import threading
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import sklearn.model_selection  # noqa: F401  (imported here: a lazy import's memory is not the input's)

from chainrule import datasets, limits, serialize
from chainrule.errors import ChainruleError
from chainrule.explain import load_spec
from chainrule.layers import mlp

RATIO = 4
SLACK = 2 << 20  # bytes: a decompression piece and its buffers


def _header(dims: tuple[int, ...], magic: int | None = None) -> bytes:
    magic = magic if magic is not None else 0x0800 | len(dims)
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims)


def _gzip_zeros(path: Path, header: bytes, n: int, corrupt_tail: bool = False) -> Path:
    with gzip.GzipFile(path, "wb", compresslevel=9, mtime=0) as f:
        f.write(header)
        zeros = bytes(1 << 20)
        for _ in range(n >> 20):
            f.write(zeros)
        f.write(bytes(n & ((1 << 20) - 1)))
    if corrupt_tail:
        data = bytearray(path.read_bytes())
        data[-6] ^= 0xFF  # the CRC-32 in the trailer
        path.write_bytes(bytes(data))
    return path


def _mnist(folder: Path, images: Path | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    stems = list(datasets.IDX_FILES.values())
    for stem, dims in zip(stems, [(10, 28, 28), (10,), (10, 28, 28), (10,)], strict=True):
        (folder / stem).write_bytes(_header(dims) + bytes(int(np.prod(dims))))
    if images is not None:
        (folder / stems[0]).unlink()
        images.rename(folder / (stems[0] + ".gz"))
    return folder


def _npz_zeros(path: Path, shape: tuple[int, ...], corrupt_tail: bool = False) -> Path:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("x.npy", "w", force_zip64=True) as member:
            member.write(header.getvalue())
            zeros = bytes(1 << 20)
            n = int(np.prod(shape)) * 8
            for _ in range(n >> 20):
                member.write(zeros)
            member.write(bytes(n & ((1 << 20) - 1)))
        zf.writestr("y.npy", header.getvalue())
    if corrupt_tail:
        data = bytearray(path.read_bytes())
        with zipfile.ZipFile(path) as zf:
            info = zf.getinfo("x.npy")
        at = info.header_offset  # the local header: 30 bytes, the name, the extra field, then the data
        start = (
            at
            + 30
            + int.from_bytes(data[at + 26 : at + 28], "little")
            + int.from_bytes(data[at + 28 : at + 30], "little")
        )
        data[start + info.compress_size - 3] ^= 0x55  # late in the deflate stream: found only at its end
        path.write_bytes(bytes(data))
    return path


class _Flood(http.server.BaseHTTPRequestHandler):
    """100 MiB without a Content-Length."""

    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        try:
            for _ in range(100):
                self.wfile.write(bytes(1 << 20))
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args: object) -> None:
        pass


def _download_flood(work: Path) -> int:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Flood)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/"
        datasets.download(
            "x", cache_dir=work, mirrors=[url], sha256={"f.gz": "0" * 64}, retries=1, max_bytes=8 << 20
        )
    finally:
        httpd.shutdown()
        httpd.server_close()
    return 0


def _model(path: Path, layers: list[dict[str, object]]) -> Path:
    arch = {"type": "Sequential", "layers": [{"type": "Sequential", "layers": layers}]}
    serialize._save(path, {}, {"architecture": json.dumps(arch), "user": "{}"})
    return path


def _dense(n_in: int, n_out: int) -> dict[str, object]:
    fields = {"in_features": n_in, "out_features": n_out, "bias": True, "activation": "identity"}
    return {"type": "Dense", **fields, "dtype": "float32"}


Case = tuple[str, Callable[[Path], tuple[int, Callable[[], object]]]]


def _file(path: Path, run: Callable[[Path], object]) -> tuple[int, Callable[[], object]]:
    """The input's size (all files of a folder) and the call that loads it."""
    files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
    return sum(p.stat().st_size for p in files), lambda: run(path)


CASES: list[Case] = [
    # IDX: 300,000 images declared (235 MB of zeros in a 228 KB gzip) against 10 labels
    ("idx-gzip-count", lambda w: _file(
        _mnist(w / "count", _gzip_zeros(w / "i.gz", _header((300_000, 28, 28)), 300_000 * 784)),
        datasets.load_idx_folder)),
    # IDX: 10 images declared, 235 MB of data in the stream
    ("idx-gzip-trailing", lambda w: _file(
        _gzip_zeros(w / "t-idx3-ubyte.gz", _header((10, 28, 28)), 300_000 * 784), datasets.read_idx)),
    # IDX: 47 MB of zeros whose CRC is wrong at the very end
    ("idx-gzip-bad-crc", lambda w: _file(
        _gzip_zeros(w / "c-idx3-ubyte.gz", _header((60_000, 28, 28)), 60_000 * 784, True),
        datasets.read_idx)),
    # IDX: 2**64 bytes declared by four dims of 65536
    ("idx-gzip-declared", lambda w: _file(
        _gzip_zeros(w / "d-idx4-ubyte.gz", _header((65536,) * 4), 0), datasets.read_idx)),
    # NPY: a header claiming (100000, 100000) float64 (74.5 GiB) in a 128-byte file
    ("npy-header", lambda w: _file(_npy_claim(w / "big.npy"), lambda p: datasets.read_npy(p, mmap=False))),
    # NPZ: a 400 MB member whose CRC is wrong (a 400 KB file)
    ("npz-bad-crc", lambda w: _file(_npz_zeros(w / "c.npz", (50_000, 1000), True), datasets.load)),
    # NPZ: the same member over a 256 MiB max_decompressed_bytes
    ("npz-over-limit", lambda w: _file(
        _npz_zeros(w / "l.npz", (50_000, 1000)),
        lambda p: _with_limit(lambda: datasets.load(p), max_decompressed_bytes=256 << 20))),
    # model: a nested Sequential declaring 5e7 parameters, no tensors
    ("model-nested", lambda w: _file(_model(w / "n.safetensors", [_dense(10_000, 5_000)]), serialize.load)),
    # model: 9e8 parameters declared (over max_parameters)
    ("model-huge", lambda w: _file(_model(w / "h.safetensors", [_dense(30_000, 30_000)]), serialize.load)),
    # NPZ: one label of 3,000,000 (a 3,000,001-class model; a CSV's labels are encoded, so not there)
    ("npz-label", lambda w: _file(_label_npz(w / "l.npz"), lambda p: datasets.load(str(p)))),
    # explain: a 2-1000-1000-2 network
    ("explain-network", lambda w: _file(_big_spec(w / "s.json"), load_spec)),
    # --layers 1000000000
    ("mlp-width", lambda w: (0, lambda: mlp([64, 1_000_000_000, 10]))),
    # a server sending 100 MiB without Content-Length, cap 8 MiB
    ("download-flood", lambda w: (0, lambda: _download_flood(w / "dl"))),
]  # fmt: skip


def _npy_claim(path: Path) -> Path:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (10**5, 10**5)}
    )
    path.write_bytes(header.getvalue())  # the magic and the header, no data
    return path


def _with_limit(run: Callable[[], object], **values: int) -> object:
    with limits.override(**values):
        return run()


def _label_npz(path: Path) -> Path:
    x = np.arange(84.0).reshape(42, 2)
    np.savez(path, x=x, y=np.array([i % 2 for i in range(40)] + [3_000_000] * 2))
    return path


def _big_spec(path: Path) -> Path:
    layers = [{"sizes": [2, 1000], "seed": 0}, {"sizes": 1000, "seed": 1}, {"sizes": 2, "seed": 2}]
    path.write_text(json.dumps({"layers": layers, "input": [0.1, 0.2], "target": [0.0, 1.0]}))
    return path


def run_bombs(work: Path) -> list[dict[str, object]]:
    """Every case: its input size, the error it raised, its peak memory and whether that is within bounds."""
    results = []
    for name, build in CASES:
        folder = work / name
        folder.mkdir(parents=True, exist_ok=True)
        size, run = build(folder)
        tracemalloc.start()
        try:
            run()
            outcome = "accepted"
        except ChainruleError as exc:
            outcome = f"rejected: {type(exc).__name__}: {str(exc)[:100]}"
        except Exception as exc:
            outcome = f"escaped: {type(exc).__name__}: {str(exc)[:100]}"
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        bound = RATIO * size + SLACK
        ok = outcome.startswith("rejected") and peak <= bound
        results.append(
            {"case": name, "size": size, "peak": peak, "bound": bound, "outcome": outcome, "ok": ok}
        )
    return results


__all__ = ["CASES", "RATIO", "SLACK", "run_bombs"]
