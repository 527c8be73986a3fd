"""scikit-learn's own estimator checks, every one, over both chainrule estimators (default parameters).

No check is marked expected-to-fail. ``check_array_api_input`` only runs when
``SCIPY_ARRAY_API=1`` is set before SciPy is first imported, which would change
SciPy for the whole test session, so that check runs in a child process with it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from chainrule.sklearn import MLPClassifier, MLPRegressor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

CHILD = """
import json, sys
from sklearn.utils import estimator_checks
from chainrule.sklearn import MLPClassifier, MLPRegressor
name, check, keywords = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
estimator = {"MLPClassifier": MLPClassifier, "MLPRegressor": MLPRegressor}[name]()
getattr(estimator_checks, check)(name, estimator, **keywords)
print("check passed")
"""


def _name(check: Callable[..., Any]) -> str:
    return str(getattr(check, "func", check).__name__)


@parametrize_with_checks([MLPClassifier(), MLPRegressor()])
def test_sklearn_estimator_checks(estimator: Any, check: Callable[..., Any]) -> None:
    if _name(check) != "check_array_api_input":
        check(estimator)
        return
    keywords = json.dumps(getattr(check, "keywords", {}))
    env = {**os.environ, "SCIPY_ARRAY_API": "1"}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, type(estimator).__name__, _name(check), keywords],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0 and "check passed" in done.stdout, done.stderr[-3000:]
