"""File readers: MNIST IDX files and folders, CSV tables, ``.npz`` archives, ``.npy`` tables.

Part of :mod:`chainrule.datasets` (level 5). Every problem raises
:class:`~chainrule.errors.DataError` naming the file and, where it helps, the byte
offset, line or column.
"""

from __future__ import annotations

import codecs
import csv
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from chainrule import limits
from chainrule.datasets._bounded import (
    check_npy,
    fill_from,
    gunzip_chunks,
    gunzip_head,
    gunzip_size,
    npz_keys,
    read_npz,
)
from chainrule.datasets._core import TASKS, Dataset, _as_labels, _check_finite, _split
from chainrule.errors import ConfigError, DataError, LimitError
from chainrule.tables import FLOAT32_MAX, Label, decide_target, is_number, preview, target_words

# ----------------------------------------------------------------------------- IDX files (MNIST)

IDX_DTYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
}
IDX_DTYPES |= {0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
IDX_IMAGES_MAGIC = 0x00000803  # ubyte, 3 dims: (count, rows, cols)
IDX_LABELS_MAGIC = 0x00000801  # ubyte, 1 dim: (count,)
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def read_idx(path: str | os.PathLike[str], expected_magic: int | None = None) -> np.ndarray:
    """Read one IDX file (the MNIST format), raw or gzip-compressed (``.gz``).

    Layout: a 4-byte big-endian magic number ``0x0000 <dtype byte> <ndims>``,
    then ``ndims`` big-endian uint32 sizes, then the data in C order.

    The header is read and checked first (:func:`read_idx_header`): the data's
    size must equal what the dims declare (and, for ``.gz``, be within
    ``max_decompressed_bytes``) before the array is allocated. A ``.gz`` file is
    streamed twice (checked, then read), so a damaged or hostile one is rejected
    without being expanded in memory.

    Parameters
    ----------
    path : path-like
        The file; a name ending in ``.gz`` is decompressed.
    expected_magic : int, optional
        The exact magic to require, e.g. :data:`IDX_IMAGES_MAGIC` (0x00000803) or
        :data:`IDX_LABELS_MAGIC` (0x00000801). Any valid IDX magic when ``None``.

    Returns
    -------
    ndarray
        Shape ``dims``, in the native-endian version of the file's dtype.

    Raises
    ------
    DataError
        Wrong magic (the file, byte offset 0, the value found and expected); an
        unknown dtype byte; a header cut short; data shorter or longer than the
        dims declare (bytes expected vs found, and where the data ends); a broken gzip stream.
    LimitError
        Dims that declare more than ``max_decompressed_bytes`` in a ``.gz`` file.
    """
    header = read_idx_header(path, expected_magic)
    data = np.empty(header.dims, dtype=header.dtype)
    if header.gz:
        fill_from(gunzip_chunks(header.path, header.path.name), header.offset, data)
    else:
        with open(header.path, "rb") as f:
            f.seek(header.offset)
            if f.readinto(data.reshape(-1).view(np.uint8).data) != data.nbytes:
                raise DataError(f"{header.path.name}: the file changed while it was read; read it again.")
    return data.astype(header.dtype.newbyteorder("="), copy=False)


@dataclass(frozen=True)
class IdxHeader:
    """An IDX file's checked header: dims, dtype and where the data starts (its size matches)."""

    path: Path
    gz: bool
    dims: tuple[int, ...]
    dtype: np.dtype[Any]
    offset: int


def read_idx_header(
    path: str | os.PathLike[str], expected_magic: int | None = None, check_size: bool = True
) -> IdxHeader:
    """The header of IDX file ``path``, checked against the file's (decompressed) length; no data kept.

    With ``check_size=False`` only the header is read (for a ``.gz``, its first bytes).
    Raises the errors of :func:`read_idx`.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file.")
    gz = path.suffix == ".gz"
    where = f"{path.name}" + (" (after gunzip)" if gz else "")
    if gz:
        raw = gunzip_head(path, 4 + 4 * 255, path.name)
    else:
        with open(path, "rb") as f:
            raw = f.read(4 + 4 * 255)
    if len(raw) < 4:
        raise DataError(
            f"{where}: truncated IDX header: need 4 bytes of magic at byte offset 0, found {len(raw)}."
        )
    magic = int.from_bytes(raw[:4], "big")
    dtype_byte, ndim = raw[2], raw[3]
    if expected_magic is not None and magic != expected_magic:
        raise DataError(
            f"{where}: bad IDX magic number at byte offset 0: found 0x{magic:08X}, expected "
            f"0x{expected_magic:08X}. Is this the right file (images 0x00000803, labels 0x00000801)?"
        )
    if raw[0] != 0 or raw[1] != 0 or dtype_byte not in IDX_DTYPES or ndim == 0:
        raise DataError(
            f"{where}: bad IDX magic number at byte offset 0: found 0x{magic:08X}, expected "
            f"0x0000TTNN with dtype byte TT in {{08, 09, 0B, 0C, 0D, 0E}} and NN >= 1 dims; "
            f"this is not an IDX file."
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(
            f"{where}: truncated IDX header: {ndim} dims need {header} bytes, the file has {len(raw)}."
        )
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = IDX_DTYPES[dtype_byte]
    expected = math.prod(dims) * dtype.itemsize  # Python ints: a product of uint32 dims cannot wrap
    if not check_size:
        return IdxHeader(path, gz, dims, dtype, header)
    if gz:
        limits.check("max_decompressed_bytes", header + expected, where, f" declared by dims {dims}")
        size = gunzip_size(path, header + expected, path.name)  # counts at most one piece past it
    else:
        size = path.stat().st_size
    found = size - header
    if found != expected:
        problem = "truncated data" if found < expected else "trailing bytes after the data"
        more = " or more" if gz and found > expected else ""
        raise DataError(
            f"{where}: {problem}: dims {dims} of {dtype.str} need {expected} bytes of data from "
            f"byte offset {header}, found {found}{more} (the file ends at byte offset {size}{more}, "
            f"the data should end at {header + expected})."
        )
    return IdxHeader(path, gz, dims, dtype, header)


def _find_idx(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def _has_idx_layout(folder: Path) -> bool:
    return all(_find_idx(folder, stem) is not None for stem in IDX_FILES.values())


def load_idx_folder(folder: str | os.PathLike[str], name: str | None = None) -> Dataset:
    """Load the standard four-file MNIST layout (also Fashion-MNIST, KMNIST...) from a folder.

    Files: ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each raw or ``.gz``.
    Pixels are divided by 255 into [0, 1] and images flattened.

    Shapes
    ------
    x : (m, rows * cols) float32 (784 for MNIST), y : (m,) int64, n_classes = 10.

    Raises
    ------
    DataError
        A file is missing, malformed (see :func:`read_idx`), or the image and
        label counts of a split disagree (both files and counts are named).
    """
    folder = Path(folder)
    paths = {}
    for key, stem in IDX_FILES.items():
        found = _find_idx(folder, stem)
        if found is None:
            raise DataError(
                f"{folder}: missing {stem} (or {stem}.gz); an MNIST folder needs all four IDX files."
            )
        paths[key] = found
    for split in ("train", "test"):  # headers first: counts must agree before any data is read
        n_images = read_idx_header(paths[f"{split}_images"], IDX_IMAGES_MAGIC, check_size=False).dims[0]
        n_labels = read_idx_header(paths[f"{split}_labels"], IDX_LABELS_MAGIC, check_size=False).dims[0]
        if n_images != n_labels:
            raise DataError(
                f"{paths[f'{split}_images'].name} has {n_images} images but "
                f"{paths[f'{split}_labels'].name} has {n_labels} labels; they must match."
            )
    arrays = {}
    for split in ("train", "test"):
        images = read_idx(paths[f"{split}_images"], IDX_IMAGES_MAGIC)
        x = images.reshape(images.shape[0], math.prod(images.shape[1:])).astype(np.float32)
        x /= np.float32(255.0)
        arrays[split] = (x, read_idx(paths[f"{split}_labels"], IDX_LABELS_MAGIC).astype(np.int64))
    n_classes = max(10, int(arrays["train"][1].max(initial=0)) + 1)
    return Dataset(*arrays["train"], *arrays["test"], name=name or folder.name, n_classes=n_classes)


# ----------------------------------------------------------------------------- CSV, NPZ, NPY


def _resolve_column(target: str | int, header: list[str] | None, n_cols: int, where: str) -> int:
    if isinstance(target, str):
        if header is None:
            raise ConfigError(f"{where}: target={target!r} names a column, but the file has no header row.")
        if target not in header:
            raise ConfigError(f"{where}: no column named {target!r}; the header has {header}.")
        if header.count(target) > 1:
            raise ConfigError(f"{where}: two columns are named {target!r}; pick one by index.")
        return header.index(target)
    col = target + n_cols if target < 0 else target
    if not 0 <= col < n_cols:
        raise ConfigError(f"{where}: target column {target} is out of range for {n_cols} columns.")
    return col


def _is_header(first: list[str], second: list[str] | None) -> bool:
    """A header has a name (non-empty, not a number) where the next row has a number.

    A column of text labels says nothing either way, so a headerless file whose
    labels are words (``5.1,3.5,setosa``) is not taken for a header.
    """
    names = [bool(c.strip()) and not is_number(c) for c in first]
    if second is None or not any(is_number(c) for c in second):
        return any(names)
    return any(n and is_number(c) for n, c in zip(names, second, strict=False))


class _Cells:
    """A CSV file's rows as text: the header (or None), the body, and each body row's line number."""

    def __init__(self, path: Path, header: bool | None, delimiter: str) -> None:
        if not path.is_file():
            raise DataError(f"{path}: no such file.")
        try:
            with open(path, newline="", encoding="utf-8-sig") as f:
                rows = [(reader_line, row) for reader_line, row in _csv_rows(f, delimiter, path.name) if row]
        except UnicodeDecodeError:
            raise DataError(_not_utf8(path)) from None
        if not rows:
            raise DataError(f"{path.name}: the CSV file is empty; the dataset has no rows.")
        first = rows[0][1]
        second = rows[1][1] if len(rows) > 1 else None
        has_header = header if header is not None else _is_header(first, second)
        self.path, self.file = path, path.name
        self.names = [c.strip() for c in first] if has_header else None
        body = rows[1:] if has_header else rows
        if not body:
            raise DataError(f"{path.name}: the CSV file has a header but no data rows; the dataset is empty.")
        self.n_cols = len(first)
        for line, row in body:
            if len(row) != self.n_cols:
                raise DataError(
                    f"{path.name}: line {line} has {len(row)} cells, expected {self.n_cols} "
                    f"(as on line {rows[0][0]})."
                )
        self.lines = [line for line, _ in body]
        self.rows = [row for _, row in body]

    def label(self, j: int) -> str:
        """``column 3 ('b')``: 1-based, with the header name when there is one."""
        return f"column {j + 1}" + (f" ({self.names[j]!r})" if self.names else "")

    def where(self, i: int, j: int) -> str:
        """``d.csv: line 7, column 3 ('b')`` for body row ``i``, column ``j`` (both 0-based)."""
        return f"{self.file}: line {self.lines[i]}, {self.label(j)}"

    def numbers(self, columns: list[int]) -> np.ndarray:
        """The ``columns`` as float64 ``(m, len(columns))``: every cell a finite number that float32 holds.

        Raises
        ------
        DataError
            Naming the line and column of the first empty, non-numeric, NaN,
            infinite or too large (beyond float32's +-3.4e38) cell.
        """
        table = np.empty((len(self.rows), len(columns)), dtype=np.float64)
        for i, row in enumerate(self.rows):
            for out, j in enumerate(columns):
                cell = row[j]
                try:
                    value = float(cell)
                except ValueError:
                    shown = "an empty cell" if not cell.strip() else f"{cell!r}"
                    raise DataError(f"{self.where(i, j)}: cannot parse {shown} as a number.") from None
                if not np.isfinite(value):
                    raise DataError(
                        f"{self.where(i, j)}: value {cell.strip()!r} is NaN or infinite; "
                        "clean or drop this row."
                    )
                if abs(value) > FLOAT32_MAX:
                    raise DataError(
                        f"{self.where(i, j)}: value {cell.strip()!r} is beyond float32's range "
                        f"(+-{FLOAT32_MAX:.4g}), in which chainrule computes; rescale this column."
                    )
                table[i, out] = value
        return table


def read_csv(
    path: str | os.PathLike[str],
    target: str | int = -1,
    header: bool | None = None,
    delimiter: str = ",",
) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
    """Parse a CSV table into numeric inputs and one target column.

    Parameters
    ----------
    path : path-like
    target : str or int, default -1
        The target column, by header name or by 0-based index (negative counts from the end).
    header : bool, optional
        Whether the first row is a header; auto-detected when ``None``: a header
        has a name (a cell that is not a number) above a number in the next row.
    delimiter : str, default ","

    Returns
    -------
    x : (m, n_columns - 1) float64
    y : (m,) float64 when every target cell is a number, else the cells' text (str)
    header : list of str, or None

    Raises
    ------
    DataError
        An input cell that is empty, not a number, NaN, infinite or beyond
        float32's range, or a row with the wrong number of cells: the message
        names the file, the 1-based line of the file and the 1-based column (and
        its header name). An empty file or table.
    ConfigError
        An unknown target column.
    """
    cells = _Cells(Path(path), header, delimiter)
    col_t = _resolve_column(target, cells.names, cells.n_cols, cells.file)
    x = cells.numbers([j for j in range(cells.n_cols) if j != col_t])
    text = np.array([row[col_t].strip() for row in cells.rows])
    y = np.array([float(c) for c in text]) if all(is_number(c) for c in text) else text
    return x, y, cells.names


def read_inputs(
    path: str | os.PathLike[str],
    features: list[str] | None = None,
    n_features: int | None = None,
    skip: tuple[str, ...] = (),
    header: bool | None = None,
    delimiter: str = ",",
) -> tuple[np.ndarray, list[int]]:
    """Inputs for a trained model from a CSV file, read as :func:`read_csv` reads a training file.

    With a header and the model's ``features`` (names), the columns are picked
    by name, in the model's order; a column in ``skip`` (the target, when the
    file still has it) is left out. Otherwise every column is an input.

    Returns
    -------
    x : (m, n_features) float64
    lines : list of int
        The file's line number of each row, for messages about a row.

    Raises
    ------
    DataError
        A cell as in :func:`read_csv`; a feature column missing from the header,
        a column the model does not know, or the wrong number of columns.
    """
    cells = _Cells(Path(path), header, delimiter)
    names = cells.names
    if names is not None and features is not None:
        extra = [n for n in names if n not in features and n not in skip]
        missing = [n for n in features if n not in names]
        if missing or extra:
            problem = f"has no column {preview(missing)}" if missing else f"has columns {preview(extra)}"
            raise DataError(
                f"{cells.file}: {problem}, but the model takes the columns {preview(features)} "
                "(by name, in any order)."
            )
        columns = [names.index(n) for n in features]
    else:
        columns = [j for j in range(cells.n_cols) if names is None or names[j] not in skip]
    if n_features is not None and len(columns) != n_features:
        raise DataError(
            f"{cells.file}: {len(columns)} input columns, but the model takes {n_features} (n[0]); "
            "one row per example, one column per feature (a header row lets columns be picked by name)."
        )
    return cells.numbers(columns), cells.lines


def _csv_rows(f: Any, delimiter: str, where: str = "") -> Iterator[tuple[int, list[str]]]:
    """Rows with the 1-based line number of the file where each row starts; fields within ``max_csv_field``.

    Raises
    ------
    LimitError
        A field longer than ``max_csv_field`` characters (the line is named).
    DataError
        A row the csv module cannot parse (the line is named).
    """
    limit = limits.get("max_csv_field")
    previous = csv.field_size_limit(limit)  # NOTE: the csv module's limit is process-wide: restored below
    try:
        reader = csv.reader(f, delimiter=delimiter)
        start = 1
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                if "field larger than field limit" in str(exc):
                    raise LimitError(
                        f"{where}: line {reader.line_num}: a field is longer than the limit max_csv_field = "
                        f"{limit} characters. {limits.how_to_raise('max_csv_field')}"
                    ) from None
                raise DataError(f"{where}: line {reader.line_num}: not a valid CSV row: {exc}.") from None
            yield start, row
            start = reader.line_num + 1
    finally:
        csv.field_size_limit(previous)


def _not_utf8(path: Path) -> str:
    """Where the first byte that is not UTF-8 sits in ``path``: its 1-based line and byte offset."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = newlines = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 16):
            pending = len(decoder.getstate()[0])  # the bytes of a character split across chunks
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                bad = offset - pending + exc.start
                newlines += chunk[: max(0, bad - offset)].count(b"\n")
                shown = exc.object[exc.start : exc.end].hex(" ")
                break
            offset += len(chunk)
            newlines += chunk.count(b"\n")
        else:
            bad, shown = offset - len(decoder.getstate()[0]), "(a character cut off at the end)"
    return (
        f"{path.name}: line {newlines + 1}, byte offset {bad}: not UTF-8 (bytes {shown}); save the file "
        "as UTF-8 (a spreadsheet's 'CSV UTF-8'), or convert it, e.g. iconv -f latin1 -t utf-8."
    )


def _task_of(y: np.ndarray, task: str) -> str:
    """``'auto'``: classification for integer dtypes or whole-number floats, else regression."""
    if task != "auto":
        if task not in TASKS:
            raise ConfigError(f"task must be 'auto' or one of {TASKS}, got {task!r}.")
        return task
    if np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.bool_):
        return "classification"
    y = np.asarray(y)
    return (
        "classification"
        if y.ndim == 1 and np.all(np.isfinite(y)) and np.all(y == np.round(y))
        else "regression"
    )


def load_csv(
    path: str | os.PathLike[str],
    *,
    target: str | int = -1,
    header: bool | None = None,
    delimiter: str = ",",
    task: str = "auto",
    n_classes: int | None = None,
    classes: Sequence[Label] | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> Dataset:
    """A CSV table as a Dataset, split seeded (stratified for classes) into train and test.

    The target column (default: the last) decides the task unless ``task`` is
    given: see :func:`chainrule.tables.decide_target` for the rules (text labels
    and whole numbers with few distinct values are classes; fractions are
    regression; a column that could be either is refused, asking for ``task``).
    Class labels of any kind (``setosa``, ``1..3``, ``10, 20, 30``, ``-1/1``) are
    encoded ``0 .. k-1`` in sorted order; ``Dataset.classes`` holds them.

    Parameters
    ----------
    classes : sequence, optional
        Encode the labels by these class names (a trained model's) instead of
        the file's own; a label outside them is an error.

    See :func:`read_csv` for parsing and its errors.

    Raises
    ------
    DataError
        From :func:`read_csv`; a target with one value in every row; a class
        with a single row (it cannot be in both the training and test split);
        more classes than ``n_classes``.
    ConfigError
        An ambiguous target column under ``task="auto"``: pass ``task``.
    """
    cells = _Cells(Path(path), header, delimiter)
    col_t = _resolve_column(target, cells.names, cells.n_cols, cells.file)
    x = cells.numbers([j for j in range(cells.n_cols) if j != col_t])
    column = np.array([row[col_t].strip() for row in cells.rows])
    name = cells.names[col_t] if cells.names else f"column {col_t + 1}"
    decided = decide_target(
        column, task, name=name, where=lambda i: cells.where(i, col_t), classes=classes, source=cells.file
    )
    y = decided.values
    if decided.classes is not None:
        if n_classes is not None and len(decided.classes) > n_classes:
            raise DataError(
                f"{cells.file}: {target_words(name)} has {len(decided.classes)} classes "
                f"({preview(decided.classes)}), more than n_classes={n_classes}."
            )
        if test_fraction > 0 and classes is None:
            _check_class_sizes(y, decided.classes, cells, col_t)
    stratify = decided.task == "classification"  # the same rows as training when it is the same file
    parts = _split(x, y, test_fraction=test_fraction, seed=seed, stratify=stratify, name=cells.file)
    features = [n for j, n in enumerate(cells.names) if j != col_t] if cells.names else None
    return Dataset(
        *parts,
        name=cells.file,
        task=decided.task,
        n_classes=n_classes,
        classes=decided.classes,
        feature_names=features,
        target_name=name,
        task_reason=decided.reason if decided.inferred else None,
    )


def _check_class_sizes(codes: np.ndarray, classes: list[Label], cells: _Cells, col_t: int) -> None:
    """A class with one row cannot be in both splits: name it and its line (often a typo)."""
    counts = np.bincount(codes, minlength=len(classes))
    lonely = np.flatnonzero(counts < 2)
    if lonely.size:
        row = int(np.flatnonzero(codes == lonely[0])[0])
        others = f" ({len(lonely) - 1} more classes have one row)" if len(lonely) > 1 else ""
        raise DataError(
            f"{cells.where(row, col_t)}: the label {cells.rows[row][col_t].strip()!r} occurs in this row "
            f"only{others}; a class needs at least 2 rows, to be in both the training and the test "
            "split. Fix or drop the row, or pass test_fraction=0 to keep every row for training."
        )


def load_npz(
    path: str | os.PathLike[str],
    *,
    task: str = "auto",
    n_classes: int | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> Dataset:
    """An ``.npz`` with keys ``x_train, y_train, x_test, y_test``, or ``x, y`` (split seeded here).

    Raises
    ------
    DataError
        Missing keys (the keys found are listed), NaN or infinity, bad labels, empty arrays.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file.")
    keys = npz_keys(path)
    if {"x_train", "y_train", "x_test", "y_test"} <= keys:
        z = read_npz(path, {"x_train", "y_train", "x_test", "y_test"})
        x_train, y_train, x_test, y_test = (z[k] for k in ("x_train", "y_train", "x_test", "y_test"))
        split = False
    elif {"x", "y"} <= keys:
        z = read_npz(path, {"x", "y"})
        x, y = z["x"], z["y"]
        split = True
    else:
        raise DataError(
            f"{path.name}: expected arrays x_train, y_train, x_test, y_test (or x, y), found {sorted(keys)}."
        )
    kind = _task_of(y_train if not split else y, task)
    if split:
        if len(x) == 0:
            raise DataError(f"{path.name}: the dataset is empty (x has 0 rows).")
        if kind == "classification":
            y = _as_labels(y, path.name, "y")
        _check_finite(np.asarray(x).reshape(len(x), -1), path.name, "x")
        x_train, y_train, x_test, y_test = _split(
            x, y, test_fraction=test_fraction, seed=seed, stratify=kind == "classification", name=path.name
        )
    return Dataset(x_train, y_train, x_test, y_test, name=path.name, task=kind, n_classes=n_classes)


def read_npy(path: str | os.PathLike[str], mmap: bool = True) -> np.ndarray:
    """One ``.npy`` array, memory-mapped (or read, ``mmap=False``) after its header is checked.

    The dtype must be numeric (bool, integers, float16/32/64) and the bytes the
    shape declares must be the bytes in the file, so a header claiming a
    ``(100000, 100000)`` array in a small file is refused before anything is allocated.

    Raises
    ------
    DataError
        No such file; an empty, truncated or padded file; a bad header; a dtype
        off the allow-list (strings, objects, records, dates, complex).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file.")
    header = check_npy(path)
    try:
        return np.load(path, mmap_mode="r" if mmap and header.nbytes else None, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path.name}: cannot read as .npy: {exc}") from exc


def load_npy(
    path: str | os.PathLike[str],
    *,
    target: int = -1,
    task: str = "auto",
    n_classes: int | None = None,
    test_fraction: float = 0.2,
    mmap: bool = True,
    check_finite: bool = True,
) -> Dataset:
    """One 2-D ``.npy`` table, memory-mapped; the target is its first or last column.

    The inputs stay a memory-mapped view (nothing is read until used), so files
    larger than memory can be iterated with :func:`chainrule.data.iterate_batches`.
    The target column (m values) is read into memory.

    NOTE: to keep the memory map, the split is not shuffled: the last
    ``test_fraction`` of the rows is the test set. Shuffle the file beforehand,
    or use :func:`chainrule.data.train_val_split` on loaded arrays.

    Raises
    ------
    DataError
        Not a 2-D array, NaN or infinity (scanned in chunks; ``check_finite=False``
        skips the scan), bad labels, an empty table.
    ConfigError
        A target column other than the first or last.
    """
    path = Path(path)
    table = read_npy(path, mmap)
    if table.ndim != 2 or table.shape[1] < 2:
        raise DataError(f"{path.name}: expected a 2-D table (m, n_features + 1), got shape {table.shape}.")
    if table.shape[0] == 0:
        raise DataError(f"{path.name}: the dataset is empty (0 rows).")
    col = target + table.shape[1] if target < 0 else target
    if col not in (0, table.shape[1] - 1):
        raise ConfigError(f"{path.name}: target must be the first (0) or last (-1) column, got {target}.")
    x = table[:, 1:] if col == 0 else table[:, :-1]
    y = np.array(table[:, col])
    if check_finite:
        _check_finite(x, path.name, "x")
        _check_finite(y, path.name, "y")
    if not 0.0 <= test_fraction < 1.0:
        raise ConfigError(f"{path.name}: test_fraction must be in [0, 1), got {test_fraction!r}.")
    cut = table.shape[0] - round(test_fraction * table.shape[0])
    kind = _task_of(y, task)
    return Dataset(
        x[:cut],
        y[:cut],
        x[cut:],
        y[cut:],
        name=path.name,
        task=kind,
        n_classes=n_classes,
        check_finite=check_finite,
    )


def load_npy_folder(
    folder: str | os.PathLike[str], *, task: str = "auto", n_classes: int | None = None, mmap: bool = True
) -> Dataset:
    """A folder of ``x_train.npy, y_train.npy, x_test.npy, y_test.npy``; the x files memory-mapped."""
    folder = Path(folder)
    arrays = {}
    for key in ("x_train", "y_train", "x_test", "y_test"):
        file = folder / f"{key}.npy"
        if not file.is_file():
            raise DataError(
                f"{folder}: missing {file.name}; an array folder needs x_train/y_train/x_test/y_test.npy."
            )
        arrays[key] = read_npy(file, mmap and key[0] == "x")
    kind = _task_of(arrays["y_train"], task)
    x_train, y_train, x_test, y_test = (arrays[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    return Dataset(x_train, y_train, x_test, y_test, name=folder.name, task=kind, n_classes=n_classes)
