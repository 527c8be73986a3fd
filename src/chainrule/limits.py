"""Size limits, checked before anything of that size is allocated (level 1).

A size that comes from input (a layer width on the command line, the shape in a
model file's header, the label values of a CSV file, the dims of an IDX header,
the length a server announces) is compared with a limit here *before* memory is
asked for, so a hostile or mistaken file fails with one line naming the limit,
instead of a minute of swapping or a kill by the kernel.

=========================  ===============  ====================================================
limit                      default          what it bounds
=========================  ===============  ====================================================
``max_parameters``         100,000,000      weights and biases of one model (400 MB in float32)
``max_layer_width``        1,000,000        units ``n[l]`` of one layer
``max_classes``            100,000          classes of a classification data set
``max_decompressed_bytes`` 2 GiB            one gzip file or ``.npz`` member, once decompressed
``max_csv_field``          131,072          characters in one CSV field
``max_explain_parameters`` 5,000            parameters of a network given to ``explain``
``max_explain_steps``      100,000          ``explain --steps``
``max_download_bytes``     64 MiB           one downloaded file
``download_deadline``      1,800            seconds for one :func:`chainrule.datasets.download`
``max_nesting_depth``      64               nesting of JSON (specs, model metadata) and of models
=========================  ===============  ====================================================

Each limit is raised (or lowered) in three ways, and its error names all three:
the command line option (``--max-parameters N``), :func:`set_limits` in Python
(``chainrule.limits.set_limits(max_parameters=N)``, or :func:`override` for a
block), and the environment variable ``CHAINRULE_MAX_PARAMETERS=N``. A value set
in Python wins over the environment, which wins over the default.

Examples
--------
>>> from chainrule import limits
>>> limits.get("max_classes")
100000
>>> with limits.override(max_classes=10):
...     limits.check("max_classes", 11, "labels.csv")
Traceback (most recent call last):
...
chainrule.errors.LimitError: labels.csv: 11 classes is over the limit max_classes = 10 (classes of a \
classification data set). If the input is what you meant, raise the limit: --max-classes N on the \
command line, chainrule.limits.set_limits(max_classes=N) in Python, or the environment variable \
CHAINRULE_MAX_CLASSES=N.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass

from chainrule.errors import ConfigError, LimitError


@dataclass(frozen=True)
class Limit:
    """One limit: its name, default, unit, what it bounds, and its command-line option."""

    name: str
    default: int
    unit: str
    what: str

    @property
    def option(self) -> str:
        """The command-line option that sets it, e.g. ``--max-parameters``."""
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        """The environment variable that sets it, e.g. ``CHAINRULE_MAX_PARAMETERS``."""
        return "CHAINRULE_" + self.name.upper()


LIMITS: dict[str, Limit] = {
    limit.name: limit
    for limit in (
        Limit("max_parameters", 100_000_000, "parameters", "weights and biases of one model"),
        Limit("max_layer_width", 1_000_000, "units", "units n[l] of one layer"),
        Limit("max_classes", 100_000, "classes", "classes of a classification data set"),
        Limit("max_decompressed_bytes", 2**31, "bytes", "one gzip file or .npz member, once decompressed"),
        Limit("max_csv_field", 131_072, "characters", "characters in one CSV field"),
        Limit(
            "max_explain_parameters",
            5_000,
            "parameters",
            "parameters of a network given to explain, each checked by finite differences",
        ),
        Limit("max_explain_steps", 100_000, "steps", "gradient-descent steps of explain"),
        Limit("max_download_bytes", 64 * 2**20, "bytes", "bytes of one downloaded file"),
        Limit("download_deadline", 1_800, "seconds", "seconds for one download, all files and retries"),
        Limit("max_nesting_depth", 64, "levels", "nesting of JSON (specs, model metadata) and of models"),
    )
}

_overrides: dict[str, int] = {}


def _limit(name: str) -> Limit:
    try:
        return LIMITS[name]
    except KeyError:
        raise ConfigError(f"limits: unknown limit {name!r}; expected one of {sorted(LIMITS)}.") from None


def _positive(name: str, value: object, source: str) -> int:
    """``value`` as a positive whole number; strings as in the environment (``"100000"``, ``"1e8"``)."""
    number: object = value
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    if isinstance(number, float) and math.isfinite(number) and number.is_integer():
        number = int(number)
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise ConfigError(f"limits: {source} must be a positive whole number for {name}, got {value!r}.")
    return number


def parse(name: str, text: str) -> int:
    """``text`` (``"100000"``, ``"1e8"``) as a value of limit ``name``; ConfigError if it is not one."""
    _limit(name)
    return _positive(name, text, f"the value of {LIMITS[name].option}")


def get(name: str) -> int:
    """The current value of limit ``name``: set in Python, else from the environment, else the default."""
    limit = _limit(name)
    if name in _overrides:
        return _overrides[name]
    text = os.environ.get(limit.env)
    if text is not None and text.strip():
        return _positive(name, text.strip(), f"the environment variable {limit.env}")
    return limit.default


def set_limits(**values: int | None) -> dict[str, int | None]:
    """Set limits by name for this process (``None`` goes back to the environment or default).

    Returns the previous settings, so ``set_limits(**previous)`` undoes the call.

    Raises
    ------
    ConfigError
        An unknown name, or a value that is not a positive whole number.
    """
    checked = {}
    for name, value in values.items():
        _limit(name)
        checked[name] = None if value is None else _positive(name, value, name)
    previous = {name: _overrides.get(name) for name in checked}
    for name, value in checked.items():
        if value is None:
            _overrides.pop(name, None)
        else:
            _overrides[name] = value
    return previous


@contextlib.contextmanager
def override(**values: int | None) -> Iterator[None]:
    """Set limits for the duration of a ``with`` block (see :func:`set_limits`)."""
    previous = set_limits(**values)
    try:
        yield
    finally:
        set_limits(**previous)


def how_to_raise(name: str) -> str:
    """The sentence that says how to raise limit ``name``, as every :class:`LimitError` ends."""
    limit = _limit(name)
    return (
        f"If the input is what you meant, raise the limit: {limit.option} N on the command line, "
        f"chainrule.limits.set_limits({name}=N) in Python, or the environment variable {limit.env}=N."
    )


def check_depth(value: object, who: str) -> None:
    """Raise :class:`LimitError` if parsed JSON ``value`` nests deeper than ``max_nesting_depth``.

    Iterative, so it works at any depth the JSON parser itself accepted.
    """
    allowed = get("max_nesting_depth")
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > allowed:
                check("max_nesting_depth", depth, who, " of JSON nesting")
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))


def check(name: str, value: int | float, who: str, detail: str = "") -> None:
    """Raise :class:`LimitError` if ``value`` is over limit ``name``; call it before allocating.

    Parameters
    ----------
    name : str
        A key of :data:`LIMITS`.
    value : int or float
        The size the input asks for, in the limit's unit.
    who : str
        What asks (a file, a layer, an option), the start of the message.
    detail : str
        Where the size comes from, e.g. ``" (the label 3000000 at line 41)"``.
    """
    allowed = get(name)
    if value > allowed:
        limit = LIMITS[name]
        shown = str(value) if isinstance(value, int) else f"{value:.3g}"
        raise LimitError(
            f"{who}: {shown} {limit.unit}{detail} is over the limit {name} = {allowed} ({limit.what}). "
            f"{how_to_raise(name)}"
        )


__all__ = [
    "LIMITS",
    "Limit",
    "check",
    "check_depth",
    "get",
    "how_to_raise",
    "override",
    "parse",
    "set_limits",
]
