"""Reading compressed and binary files with every size checked before it is allocated.

Part of :mod:`chainrule.datasets` (level 5), used by the IDX, NPY and NPZ readers.

- gzip files and ``.npz`` members are decompressed in pieces of at most
  :data:`CHUNK` bytes. A compressed input is read twice: the first pass checks
  the whole stream (its CRC, its length against what the header declares and
  against ``max_decompressed_bytes``) while holding one piece at a time; only then
  is the array allocated and filled by the second pass. So a damaged or hostile
  file is rejected with memory of about :data:`CHUNK`, whatever it would expand to.
- ``.npy`` headers (alone or inside an ``.npz``) are parsed first: the dtype must
  be on the allow-list (:func:`check_dtype`), and the bytes the shape declares
  must equal the bytes present, before an array is made.

Every problem is a :class:`~chainrule.errors.DataError` naming the file (and
member), with the byte offset where it helps.
"""

from __future__ import annotations

import gzip
import math
import tokenize
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.lib.format as npformat

from chainrule import limits
from chainrule.errors import DataError

CHUNK = 1 << 18  # bytes decompressed at a time (256 KiB)
NPY_KINDS = "biuf"  # bool, signed and unsigned integers, floats: no strings, objects, dates, structs
_GZIP_ERRORS = (OSError, EOFError, zlib.error)  # gzip.BadGzipFile is an OSError


def check_dtype(dtype: np.dtype[Any], where: str) -> None:
    """The dtype allow-list of array files: bool, integers up to 64 bits, float16/32/64."""
    plain = dtype.fields is None and dtype.subdtype is None and not dtype.hasobject
    if not (plain and dtype.kind in NPY_KINDS and (dtype.kind != "f" or dtype.itemsize in (2, 4, 8))):
        raise DataError(
            f"{where}: arrays of dtype {dtype} are not read; expected numbers (bool, integers, float16, "
            "float32 or float64), not strings, objects, dates, records or complex numbers."
        )


# ----------------------------------------------------------------------------- gzip


def gunzip_chunks(path: Path, where: str) -> Iterator[bytes]:
    """The decompressed bytes of gzip file ``path`` in pieces of at most :data:`CHUNK` bytes.

    Raises
    ------
    DataError
        A broken gzip stream (a bad header, corrupt deflate data, a bad CRC or
        length, a stream cut short), naming the compressed byte offset reached.
    """
    produced = 0
    with open(path, "rb") as raw, gzip.GzipFile(fileobj=raw, mode="rb") as f:
        while True:
            try:
                piece = f.read(CHUNK)
            except _GZIP_ERRORS as exc:
                raise DataError(
                    f"{where}: not a valid gzip file: {exc} (at or before compressed byte offset "
                    f"{raw.tell()}, after {produced} decompressed bytes); delete it and fetch it again."
                ) from None
            if not piece:
                return
            produced += len(piece)
            yield piece


def gunzip_head(path: Path, n: int, where: str) -> bytes:
    """The first ``n`` decompressed bytes (fewer if the stream is shorter)."""
    head = b""
    for piece in gunzip_chunks(path, where):
        head += piece
        if len(head) >= n:
            break
    return head[:n]


def gunzip_size(path: Path, cap: int, where: str) -> int:
    """Decompressed length of ``path``, streamed (the CRC checked); stops counting past ``cap``."""
    total = 0
    for piece in gunzip_chunks(path, where):
        total += len(piece)
        if total > cap:
            break
    return total


def fill_from(pieces: Iterator[bytes], skip: int, out: np.ndarray) -> None:
    """Copy bytes ``skip`` onwards of ``pieces`` into ``out`` (C-contiguous) until it is full."""
    view = out.reshape(-1).view(np.uint8).data
    filled = 0
    for piece in pieces:
        if skip >= len(piece):
            skip -= len(piece)
            continue
        piece = piece[skip:]
        skip = 0
        take = min(len(piece), len(view) - filled)
        view[filled : filled + take] = piece[:take]
        filled += take
        if filled == len(view):
            return


# ----------------------------------------------------------------------------- NPY


@dataclass(frozen=True)
class NpyHeader:
    """What an ``.npy`` header declares, checked: dtype on the allow-list, data size from the shape."""

    shape: tuple[int, ...]
    fortran: bool
    dtype: np.dtype[Any]
    offset: int  # where the data starts

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def read_npy_header(fp: IO[bytes], where: str) -> NpyHeader:
    """Parse the header of an ``.npy`` stream positioned at its start."""
    try:
        version = npformat.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = npformat.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, fortran, dtype = npformat.read_array_header_2_0(fp)
        else:
            raise ValueError(
                f"format version {version} (structured dtypes with non-latin1 names) is not read"
            )
    except (
        ValueError,
        EOFError,
        SyntaxError,
        TypeError,
        KeyError,
        OverflowError,
        tokenize.TokenError,
    ) as exc:
        # NOTE: NumPy parses the header with Python's tokenizer and literal_eval: all of these escape it
        raise DataError(f"{where}: not a valid .npy file: {exc}.") from None
    check_dtype(dtype, where)
    return NpyHeader(tuple(int(n) for n in shape), bool(fortran), dtype, fp.tell())


def check_npy(path: Path) -> NpyHeader:
    """The header of ``.npy`` file ``path``, its declared size equal to the bytes in the file."""
    size = path.stat().st_size
    if size == 0:
        raise DataError(f"{path.name}: the file is empty (0 bytes); not a .npy file.")
    with open(path, "rb") as fp:
        header = read_npy_header(fp, path.name)
    if header.offset + header.nbytes != size:
        problem = (
            "truncated data" if header.offset + header.nbytes > size else "trailing bytes after the data"
        )
        raise DataError(
            f"{path.name}: {problem}: shape {header.shape} of {header.dtype} needs {header.nbytes} bytes "
            f"from byte offset {header.offset}, found {size - header.offset}."
        )
    return header


# ----------------------------------------------------------------------------- NPZ


def _member_error(where: str, exc: BaseException) -> DataError:
    return DataError(f"{where}: damaged archive member: {exc}; the .npz file is corrupt or truncated.")


def _open_zip(path: Path) -> zipfile.ZipFile:
    if path.stat().st_size == 0:
        raise DataError(f"{path.name}: the file is empty (0 bytes); not a .npz archive.")
    try:
        return zipfile.ZipFile(path)
    except (
        zipfile.BadZipFile,
        OSError,
        EOFError,
        ValueError,
        NotImplementedError,
    ) as exc:  # a garbled version
        raise DataError(f"{path.name}: not a valid .npz (zip) archive: {exc}.") from None


def npz_keys(path: Path) -> set[str]:
    """The array names in ``.npz`` file ``path`` (``x`` for member ``x.npy``); nothing is decompressed."""
    with _open_zip(path) as archive:
        return {name.removesuffix(".npy") for name in archive.namelist()}


def read_npz(path: Path, wanted: set[str] | None = None) -> dict[str, np.ndarray]:
    """Arrays of ``.npz`` file ``path`` by name (all, or those in ``wanted``), checked before allocation."""
    with _open_zip(path) as archive:
        members = {info.filename.removesuffix(".npy"): info for info in archive.infolist()}
        keys = sorted(members if wanted is None else set(members) & wanted)
        return {
            key: _read_member(archive, members[key], f"{path.name}: {members[key].filename}") for key in keys
        }


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> np.ndarray:
    limits.check("max_decompressed_bytes", info.file_size, where, " declared in the zip directory")
    if info.flag_bits & 0x1:  # zipfile would raise RuntimeError asking for a password
        raise DataError(f"{where}: the archive member is encrypted; .npz members are plain (np.savez).")
    try:
        with archive.open(info) as member:
            header = read_npy_header(member, where)
            if header.offset + header.nbytes != info.file_size:
                raise DataError(
                    f"{where}: shape {header.shape} of {header.dtype} needs {header.nbytes} bytes after a "
                    f"{header.offset}-byte header, but the member holds {info.file_size} bytes."
                )
            if info.compress_type != zipfile.ZIP_STORED:  # first pass: the whole stream and its CRC
                while member.read(CHUNK):
                    pass
        out = np.empty(header.shape[::-1] if header.fortran else header.shape, dtype=header.dtype)
        with archive.open(info) as member:
            member.read(header.offset)
            fill_from(iter(lambda: member.read(CHUNK), b""), 0, out)
    except DataError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error, ValueError, NotImplementedError) as exc:
        raise _member_error(where, exc) from None
    return out.T if header.fortran else out


__all__ = [
    "CHUNK",
    "NpyHeader",
    "check_dtype",
    "check_npy",
    "fill_from",
    "gunzip_chunks",
    "npz_keys",
    "read_npz",
]
