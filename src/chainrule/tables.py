"""Tables as users have them: the task of a target column, class labels of any kind, DataFrames (level 4).

A user's table brings column names, class labels written as text (``setosa``),
numbered from 1 or sparse (``10, 20, 30``), and a target column that may hold
class labels or a quantity. This module decides, says why, and refuses to guess:

- :func:`decide_target` reads a target column and returns a :class:`Target`:
  the task (inferred, with its reason, or as given), the values to train on,
  and the class names. Class labels become codes ``0 .. k-1`` in sorted order
  (as scikit-learn's ``LabelEncoder``); ``classes[code]`` is the label back.
  When the column could be either (whole numbers with many distinct values;
  whole numbers but for a stray fraction) it refuses with the fix: pass the task.
- :func:`as_inputs` and :func:`model_inputs`: pandas and polars DataFrames and
  Series as NumPy arrays, with their column names; :func:`model_inputs` keeps
  the names (and the class names of text labels) in the model, and checks them
  when the model sees a table again. Neither library is imported unless the
  object passed in comes from it.

Inference rules (``task="auto"``), in order:

==============================================  ==================================
the target column                               task
==============================================  ==================================
text in any cell (``setosa``), or booleans      classification
one value in every row                          refused: nothing to learn
whole numbers, at most ``MAX_AUTO_CLASSES``     classification
distinct values (``0/1``, ``1..3``, ``10, 20``)
whole numbers with more distinct values         refused: pass the task
whole numbers but for a few fractions (at most  refused: fix the cell, or pass
1 % of the rows), at most ``MAX_AUTO_CLASSES``  the task
distinct whole numbers
anything else with fractions                    regression
==============================================  ==================================
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from chainrule import backend
from chainrule.errors import ConfigError, DataError

TASKS = ("classification", "regression")
MAX_AUTO_CLASSES = 20  # whole numbers with more distinct values than this: ask for the task
FLOAT32_MAX = float(np.finfo(np.float32).max)
Label = str | int | float | bool
Where = Callable[[int], str]


@dataclass
class Target:
    """A target column, decided.

    Attributes
    ----------
    task : {"classification", "regression"}
    values : ndarray
        ``(m,)`` int64 codes ``0 .. k-1`` for classification, ``(m,)`` float64 for regression.
    classes : list or None
        ``classes[code]`` is the label as the table wrote it (str, int, float or
        bool), in sorted order; ``None`` for regression.
    reason : str
        Why this task: the inference's reason, or ``"as given"``.
    inferred : bool
        Whether the task was inferred (``task="auto"``) or given.
    """

    task: str
    values: np.ndarray
    classes: list[Label] | None
    reason: str
    inferred: bool

    def __repr__(self) -> str:
        k = "" if self.classes is None else f", classes={preview(self.classes)}"
        return f"Target(task={self.task!r}, m={len(self.values)}{k}, reason={self.reason!r})"


def preview(labels: Sequence[Any], limit: int = 6) -> str:
    """``"setosa, versicolor, virginica"``; the first ``limit`` and a count when there are more."""
    shown = ", ".join(str(v) for v in labels[:limit])
    return shown if len(labels) <= limit else f"{shown}, ... ({len(labels)} in all)"


TARGET_NAMES = ("label", "labels", "target", "class", "y", "outcome", "species")


def likely_target(feature_names: Sequence[str] | None) -> str | None:
    """The first input column whose name says it is a target (``label``, ``target``, ``class``, ``y``...).

    Used to warn, never to choose: the target stays where the user put it.
    """
    for name in feature_names or ():
        if name.strip().lower() in TARGET_NAMES:
            return name
    return None


def target_words(name: str) -> str:
    """``the target 'species'``, or ``the target (column 4)`` for a column without a header name."""
    return f"the target ({name})" if name.startswith("column ") else f"the target {name!r}"


def _row(i: int) -> str:
    return f"row {i}"


# ------------------------------------------------------------------ the target column
def decide_target(
    column: Any,
    task: str = "auto",
    *,
    name: str = "target",
    where: Where = _row,
    classes: Sequence[Label] | None = None,
    source: str = "",
) -> Target:
    """Decide the task of a target column and encode its labels.

    Parameters
    ----------
    column : array_like, shape (m,)
        Numbers, booleans, or text cells (a CSV file's cells, stripped).
    task : {"auto", "classification", "regression"}
    name : str
        The column's name, for messages.
    where : callable
        ``where(i)`` names row ``i`` in messages (``"d.csv: line 7, column 4"``).
    source : str
        Where the column comes from (a file name), for messages about the whole column.
    classes : sequence, optional
        Known class names (a trained model's): labels are encoded by these, and
        a label outside them is an error.

    Returns
    -------
    Target

    Raises
    ------
    DataError
        An empty or NaN target cell; text in a regression target; a target with
        one value in every row; a label not among ``classes``; a regression
        target beyond float32's range.
    ConfigError
        An unknown ``task``; a column that could be class labels or a quantity
        (the message says which option decides).

    Examples
    --------
    >>> t = decide_target(["setosa", "virginica", "setosa"])
    >>> t.task, t.values.tolist(), t.classes
    ('classification', [0, 1, 0], ['setosa', 'virginica'])
    >>> decide_target([1, 3, 2, 3]).classes
    [1, 2, 3]
    >>> decide_target([0.5, 1.25, 2.0]).task
    'regression'
    """
    if task != "auto" and task not in TASKS:
        raise ConfigError(f"task must be 'auto' or one of {list(TASKS)}, got {task!r}.")
    raw = np.asarray(column)
    if raw.ndim != 1:
        raise DataError(f"the target {name!r} must be one column, got shape {raw.shape}.")
    col = _Column(raw, target_words(name), source, where)
    if classes is not None:
        return _encode(col, list(classes), "as the model's classes", False)
    if task == "regression":
        return _regression(col, "as given", inferred=False)
    if task == "classification":
        return _encode(col, None, "as given", False)
    if col.numbers is None or raw.dtype == np.bool_:
        kind = "booleans" if raw.dtype == np.bool_ else "text"
        return _encode(col, None, f"the target holds {kind}", True)
    return _infer_numeric(col, col.numbers)


class _Column:
    """A target column with its numbers (None when a cell is text) and the words to name it."""

    def __init__(self, raw: np.ndarray, who: str, source: str, where: Where) -> None:
        self.raw, self.who, self.where = raw, who, where
        self.whole = f"{source}: {who}" if source else who  # for messages about the whole column
        self.numbers = self._as_numbers()

    def __repr__(self) -> str:
        return f"_Column({self.whole!r}, m={len(self.raw)})"

    def _as_numbers(self) -> np.ndarray | None:
        """The column as float64, or None when a cell is text; empty and NaN cells are refused."""
        raw = self.raw
        if raw.dtype.kind in "biuf":
            values = raw.astype(np.float64)
        else:
            cells = ["" if c is None else str(c).strip() for c in raw]
            for i, cell in enumerate(cells):
                if not cell:
                    raise DataError(f"{self.where(i)}: {self.who} is empty; fill in a value or drop the row.")
            try:
                values = np.array([float(c) for c in cells], dtype=np.float64)
            except ValueError:
                return None
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            i = int(bad[0])
            raise DataError(
                f"{self.where(i)}: {self.who} is {self.cell(i, values)} (NaN or infinite); "
                "fill in a value or drop the row."
            )
        return values

    def cell(self, i: int, numbers: np.ndarray | None = None) -> str:
        """Row ``i``'s value as the table wrote it: the text of a CSV cell, else the number."""
        value = self.raw[i]
        numbers = self.numbers if numbers is None else numbers
        if isinstance(value, str | np.str_):
            return repr(str(value).strip())
        return repr(_name(float(numbers[i]))) if numbers is not None else repr(value)

    def one_value(self) -> None:
        raise DataError(
            f"{self.whole} has the same value, {self.cell(0)}, in all {len(self.raw)} rows: there is "
            "nothing to learn (a classifier needs at least two classes). Check the target column."
        )


def _infer_numeric(col: _Column, numbers: np.ndarray) -> Target:
    whole = numbers == np.round(numbers)
    distinct_whole = np.unique(numbers[whole])
    if whole.all():
        k = len(distinct_whole)
        if k == 1:
            col.one_value()
        if k <= MAX_AUTO_CLASSES:
            reason = f"whole numbers with {k} distinct values ({preview(_names(distinct_whole))})"
            return _encode(col, None, reason, True)
        raise ConfigError(
            f"{col.whole} holds whole numbers with {k} distinct values "
            f"({_name(distinct_whole[0])} .. {_name(distinct_whole[-1])}): class labels or a quantity? "
            "Say which: pass --task classification or --task regression (task= in Python)."
        )
    fractions = np.flatnonzero(~whole)
    few = len(fractions) <= max(1, len(numbers) // 100)
    i = int(fractions[0])
    if few and 2 <= len(distinct_whole) <= MAX_AUTO_CLASSES:
        more = f" (and {len(fractions) - 1} more rows)" if len(fractions) > 1 else ""
        raise ConfigError(
            f"{col.where(i)}: {col.who} is {col.cell(i)}{more}, but the other rows hold whole numbers "
            f"with {len(distinct_whole)} distinct values ({preview(_names(distinct_whole))}): a class "
            "label typed wrong, or a numeric target? Fix the cell, or pass --task regression "
            "(or --task classification; task= in Python)."
        )
    reason = f"the target has fractional values ({col.cell(i)} at {col.where(i)})"
    return _regression(col, reason, inferred=True)


def _regression(col: _Column, reason: str, inferred: bool) -> Target:
    numbers = col.numbers
    if numbers is None:
        i = next(i for i, c in enumerate(col.raw) if not is_number(str(c)))
        raise DataError(
            f"{col.where(i)}: {col.who} is {col.cell(i)}, not a number; a regression target must be "
            "numeric (for class labels pass --task classification, or task= in Python)."
        )
    if np.all(numbers == numbers[0]):
        col.one_value()
    big = np.flatnonzero(np.abs(numbers) > FLOAT32_MAX)
    if big.size:
        i = int(big[0])
        raise DataError(
            f"{col.where(i)}: {col.who} is {col.cell(i)}, beyond float32's range "
            f"(+-{FLOAT32_MAX:.4g}); rescale the column."
        )
    return Target("regression", numbers, None, reason, inferred)


def _encode(col: _Column, known: list[Label] | None, reason: str, inferred: bool) -> Target:
    """Codes ``0 .. k-1`` (sorted labels), or codes by the ``known`` class names."""
    raw, numbers = col.raw, col.numbers
    if known is None:
        if numbers is not None and raw.dtype != np.bool_:
            uniq, codes = np.unique(numbers, return_inverse=True)
            labels: list[Label] = _names(uniq)
        else:
            keys = raw if raw.dtype == np.bool_ else np.array([str(c).strip() for c in raw])
            uniq, codes = np.unique(keys, return_inverse=True)
            labels = [v.item() if isinstance(v, np.generic) else v for v in uniq]
        if len(labels) == 1:
            col.one_value()
        return Target("classification", codes.astype(np.int64), labels, reason, inferred)
    lookup = {_key(c): i for i, c in enumerate(known)}
    out = np.empty(len(raw), dtype=np.int64)
    for i, value in enumerate(raw):
        boolean = isinstance(value, bool | np.bool_)
        code = lookup.get(_key(numbers[i] if numbers is not None and not boolean else value))
        if code is None:
            raise DataError(
                f"{col.where(i)}: {col.who} is {col.cell(i)}, which is not one of the model's "
                f"{len(known)} classes ({preview(known)})."
            )
        out[i] = code
    return Target("classification", out, list(known), reason, inferred)


def _key(label: Any) -> tuple[str, Any]:
    """A lookup key under which 1, 1.0, "1" and "1.0" meet, and "setosa" stays text."""
    if isinstance(label, bool | np.bool_):
        return ("bool", bool(label))
    if isinstance(label, int | float | np.integer | np.floating):
        return ("number", float(label))
    text = str(label).strip()
    return ("number", float(text)) if is_number(text) else ("text", text)


def is_number(cell: str) -> bool:
    """True if ``cell`` reads as a number (``float(cell)`` succeeds)."""
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _name(v: float) -> int | float:
    """A numeric class name: an int when it is a whole number that float64 holds exactly."""
    return int(v) if abs(v) < 2**53 and v == round(v) else float(v)


def _names(values: np.ndarray) -> list[Label]:
    return [_name(float(v)) for v in values]


# ------------------------------------------------------------------ pandas and polars
def _library(obj: Any) -> str | None:
    """``"pandas"`` or ``"polars"`` for their DataFrames and Series, else None (nothing imported)."""
    root = type(obj).__module__.split(".")[0]
    return root if root in ("pandas", "polars") else None


def is_frame(obj: Any) -> bool:
    """A pandas or polars DataFrame."""
    return _library(obj) is not None and hasattr(obj, "columns") and getattr(obj, "ndim", 2) == 2


def is_series(obj: Any) -> bool:
    """A pandas or polars Series."""
    return _library(obj) is not None and not hasattr(obj, "columns")


def _column(series: Any) -> np.ndarray:
    """One pandas/polars column as NumPy; missing numbers become NaN, missing labels None."""
    if _library(series) == "pandas" and series.isna().any():
        import pandas as pd

        if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
            return np.asarray(series.to_numpy(dtype=np.float64, na_value=np.nan))
        return np.asarray(series.astype(object).where(series.notna(), None).to_numpy())
    return np.asarray(series.to_numpy())


def as_inputs(x: Any, who: str = "fit") -> tuple[np.ndarray, list[str] | None]:
    """A DataFrame as an ``(m, n)`` float64 array and its column names; anything else unchanged.

    Raises
    ------
    DataError
        A column that is not numeric (named, with its dtype), or a missing value
        (column and row named).
    """
    if not is_frame(x):
        return x, None
    names = [str(c) for c in x.columns]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise DataError(f"{who}: the table has two columns named {dup!r}; rename one.")
    columns = []
    for name in names:
        col = _column(x[name] if _library(x) == "polars" else x[x.columns[names.index(name)]])
        if col.dtype.kind not in "biuf":
            raise DataError(
                f"{who}: column {name!r} holds {col.dtype} values, not numbers; encode it as numbers "
                "first (e.g. one 0/1 column per category)."
            )
        col = col.astype(np.float64)
        bad = np.flatnonzero(~np.isfinite(col))
        if bad.size:
            raise DataError(
                f"{who}: column {name!r} has a missing, NaN or infinite value at row {int(bad[0])}; "
                "fill it in or drop the row."
            )
        columns.append(col)
    return np.stack(columns, axis=1) if columns else np.empty((len(x), 0)), names


def as_targets(y: Any) -> tuple[np.ndarray, str | None]:
    """A Series (or one-column DataFrame) as ``(m,)``, a DataFrame as ``(m, k)``; with its name."""
    if is_frame(y):
        if len(y.columns) == 1:
            return _column(y[y.columns[0]]), str(y.columns[0])
        values, _ = as_inputs(y, "targets")
        return values, None
    if is_series(y):
        return _column(y), None if y.name is None else str(y.name)
    return y, None


def model_inputs(model: Any, x: Any, y: Any = None, who: str = "fit") -> tuple[Any, Any]:
    """Convert DataFrames and Series at the API boundary; keep and check column and class names.

    ``who`` is ``"fit"`` (names are learned into ``model.feature_names`` and, for
    text labels, ``model.classes``) or a use (``"predict"``, ``"evaluate"``):
    then a DataFrame's columns are matched to the model's names by name (their
    order may differ). Labels in a Series, or text labels, are encoded by the
    model's classes (booleans too); plain numeric arrays are class codes ``0 .. k-1`` (or
    regression targets) and pass through unchanged, as do NumPy and CuPy inputs.

    Raises
    ------
    DataError
        Columns the model was not trained on, or missing ones (named); labels
        outside the model's classes; text labels for a model without class names.
    """
    if is_frame(x):
        values, names = as_inputs(x, who)
        known = getattr(model, "feature_names", None)
        if who == "fit" and known is None:
            model.feature_names = names
        elif known is not None and names != known:
            values = _reorder(values, names or [], known, who)
        x = backend.asarray(values.astype(model.parameters()[0].dtype))
    if y is None:
        return x, None
    labelled = is_series(y) or is_frame(y)
    y, _ = as_targets(y)
    if isinstance(y, list | tuple):
        y = np.asarray(y)
    text = isinstance(y, np.ndarray) and y.dtype.kind not in "iuf"  # text or booleans: labels
    classes = getattr(model, "classes", None)
    if not (text or (labelled and classes is not None)) or np.ndim(y) != 1:
        return x, y
    if classes is None and who != "fit":
        raise DataError(
            f"{who}: the targets are labels ({preview(sorted({str(v) for v in y}))}) but the model has "
            "no class names; it was trained on class numbers 0 .. k-1."
        )
    target = decide_target(y, "classification", name="y", classes=classes)
    if classes is None:
        model.classes = target.classes
    return x, target.values


def _reorder(values: np.ndarray, names: list[str], known: list[str], who: str) -> np.ndarray:
    missing = [n for n in known if n not in names]
    extra = [n for n in names if n not in known]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {preview(missing)}")
        if extra:
            parts.append(f"not seen in training {preview(extra)}")
        raise DataError(
            f"{who}: the table's columns do not match the model's features ({'; '.join(parts)}); "
            f"the model was trained on {preview(known)}."
        )
    return values[:, [names.index(n) for n in known]]


__all__ = [
    "MAX_AUTO_CLASSES",
    "is_number",
    "TASKS",
    "Target",
    "as_inputs",
    "as_targets",
    "decide_target",
    "is_frame",
    "is_series",
    "likely_target",
    "model_inputs",
    "preview",
    "target_words",
]
