"""Tests of chainrule.limits: values from Python, the environment and defaults; the messages (issue 14)."""

from __future__ import annotations

import pytest

from chainrule import limits
from chainrule.errors import ConfigError, LimitError


def test_defaults_are_documented_in_the_table() -> None:
    doc = limits.__doc__ or ""
    for name, limit in limits.LIMITS.items():
        assert f"``{name}``" in doc, name
        assert limits.get(name) == limit.default
        assert limit.option == "--" + name.replace("_", "-") and limit.env == "CHAINRULE_" + name.upper()


def test_python_wins_over_the_environment_which_wins_over_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHAINRULE_MAX_CLASSES", "1e3")
    assert limits.get("max_classes") == 1000
    with limits.override(max_classes=7):
        assert limits.get("max_classes") == 7
        previous = limits.set_limits(max_classes=None)
        assert limits.get("max_classes") == 1000 and previous == {"max_classes": 7}
        limits.set_limits(**previous)
    assert limits.get("max_classes") == 1000
    monkeypatch.setenv("CHAINRULE_MAX_CLASSES", "lots")
    with pytest.raises(
        ConfigError, match=r"the environment variable CHAINRULE_MAX_CLASSES must be a positive whole"
    ):
        limits.get("max_classes")


@pytest.mark.parametrize("value", [0, -1, 1.5, "x", True, float("inf"), "nan"])
def test_a_limit_is_a_positive_whole_number(value: object) -> None:
    with pytest.raises(ConfigError, match=r"must be a positive whole number for max_parameters"):
        limits.set_limits(max_parameters=value)  # type: ignore[arg-type]
    assert limits.get("max_parameters") == 100_000_000


def test_unknown_limit() -> None:
    with pytest.raises(ConfigError, match=r"limits: unknown limit 'max_gpus'; expected one of"):
        limits.set_limits(max_gpus=1)


def test_check_names_the_limit_and_the_three_ways_to_raise_it() -> None:
    limits.check("max_classes", 100_000, "ok")
    with pytest.raises(LimitError) as info:
        limits.check("max_classes", 100_001, "labels.csv", " (the label 100000 at y[3] implies them)")
    assert str(info.value) == (
        "labels.csv: 100001 classes (the label 100000 at y[3] implies them) is over the limit max_classes = "
        "100000 (classes of a classification data set). If the input is what you meant, raise the limit: "
        "--max-classes N on the command line, chainrule.limits.set_limits(max_classes=N) in Python, or the "
        "environment variable CHAINRULE_MAX_CLASSES=N."
    )
    with pytest.raises(LimitError, match=r"x: " + str(2**2000)[:20]):
        limits.check("max_parameters", 2**2000, "x")  # an integer beyond any float is still printed


def test_check_depth_is_iterative_and_names_the_depth() -> None:
    deep: object = 1
    for _ in range(10_000):
        deep = [deep]
    with pytest.raises(
        LimitError, match=r"spec: 65 levels of JSON nesting is over the limit max_nesting_depth"
    ):
        limits.check_depth(deep, "spec")
    limits.check_depth({"a": [[1]], "b": {"c": []}}, "fine")
