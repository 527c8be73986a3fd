"""chainrule: neural networks trained by the chain rule, on a small reverse-mode autodiff core.

The public API, curated. Nothing inside the package imports this module.

Examples
--------
>>> import chainrule as cr
>>> x = cr.Tensor([0.5, -1.0], requires_grad=True)
>>> y = cr.ops.sigmoid(x).sum()
>>> y.backward()
>>> x.grad.round(4)
array([0.235 , 0.1966])
"""

from chainrule import backend, functional, ops
from chainrule.autograd import enable_grad, grad, is_grad_enabled, no_grad, value_and_grad
from chainrule.backend import get_backend, set_backend, use_backend
from chainrule.errors import (
    BackendError,
    ChainruleError,
    ConfigError,
    DataError,
    DTypeError,
    GradientError,
    LimitError,
    SerializationError,
    ShapeError,
)
from chainrule.gradcheck import GradReport, check_grad, check_vjp
from chainrule.tensor import Tensor

__version__ = "0.1.0"

__all__ = [
    "BackendError",
    "ChainruleError",
    "ConfigError",
    "DTypeError",
    "DataError",
    "GradReport",
    "GradientError",
    "LimitError",
    "SerializationError",
    "ShapeError",
    "Tensor",
    "__version__",
    "backend",
    "check_grad",
    "check_vjp",
    "enable_grad",
    "functional",
    "get_backend",
    "grad",
    "is_grad_enabled",
    "no_grad",
    "ops",
    "set_backend",
    "use_backend",
    "value_and_grad",
]
