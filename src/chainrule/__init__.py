"""chainrule: neural networks trained by the chain rule, on a small reverse-mode autodiff core.

The public API, curated. Nothing inside the package imports this module.

What users reach for is here by name (``cr.Tensor``, ``cr.Dense``,
``cr.Sequential``, ``cr.mlp``, ``cr.Trainer``, ``cr.fit``, ``cr.evaluate``,
``cr.predict``, ``cr.save``, ``cr.load``), and the modules by theirs
(``cr.ops``, ``cr.functional``, ``cr.layers``, ``cr.losses``, ``cr.optim``,
``cr.train``, ``cr.jit``, ``cr.serialize``, ``cr.distributed``).

Examples
--------
>>> import chainrule as cr
>>> x = cr.Tensor([0.5, -1.0], requires_grad=True)
>>> y = cr.ops.sigmoid(x).sum()
>>> y.backward()
>>> x.grad.round(4)
array([0.235 , 0.1966])
>>> model = cr.mlp([2, 3, 2], activation="tanh", output="softmax", seed=0)
>>> cr.predict(model, [[0.0, 1.0]]).shape
(1, 2)
"""

from chainrule import backend, distributed, functional, jit, layers, losses, ops, optim, serialize, train
from chainrule.autograd import enable_grad, grad, is_grad_enabled, no_grad, value_and_grad
from chainrule.backend import get_device, set_backend, set_device, use_backend, use_device
from chainrule.errors import (
    BackendError,
    ChainruleError,
    ChainruleWarning,
    CompileWarning,
    ConfigError,
    DataError,
    DistributedError,
    DTypeError,
    GradientError,
    LimitError,
    SerializationError,
    ShapeError,
)
from chainrule.gradcheck import GradReport, check_grad, check_vjp
from chainrule.layers import Activation, Dense, Dropout, Sequential, mlp
from chainrule.serialize import load, save
from chainrule.tensor import Tensor
from chainrule.train import EarlyStopping, History, Trainer, evaluate, fit, predict

__version__ = "0.1.0"

__all__ = [
    "Activation",
    "BackendError",
    "ChainruleError",
    "ChainruleWarning",
    "CompileWarning",
    "ConfigError",
    "DTypeError",
    "DataError",
    "Dense",
    "DistributedError",
    "Dropout",
    "EarlyStopping",
    "GradReport",
    "GradientError",
    "History",
    "LimitError",
    "SerializationError",
    "Sequential",
    "ShapeError",
    "Tensor",
    "Trainer",
    "__version__",
    "backend",
    "check_grad",
    "check_vjp",
    "distributed",
    "enable_grad",
    "evaluate",
    "fit",
    "functional",
    "get_device",
    "grad",
    "is_grad_enabled",
    "jit",
    "layers",
    "load",
    "losses",
    "mlp",
    "no_grad",
    "ops",
    "optim",
    "predict",
    "save",
    "serialize",
    "set_backend",
    "set_device",
    "train",
    "use_backend",
    "use_device",
    "value_and_grad",
]
