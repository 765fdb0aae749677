"""The network in Keras: the model a spec describes (`model`: every layer type's Keras
layer, the output head, the optimizers) and the training features of airbench-style recipes
(`augment`, `whitening`, `optim`, `averaging`, `tta`).

Imports `config` and `core`. Its modules import Keras at import time, so this package hands
them out on first use (`core.lazy`): `from .. import nn`, then `nn.model.build_model(...)`.
"""

from typing import TYPE_CHECKING

from ..core.lazy import submodules

if TYPE_CHECKING:
    from . import augment, averaging, model, optim, tta, whitening  # noqa: F401

__getattr__, __dir__ = submodules(__name__, ("augment", "averaging", "model", "optim", "tta", "whitening"))
