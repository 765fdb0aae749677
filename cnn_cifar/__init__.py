"""cnn-cifar: declare CNNs in YAML, cross-validate, search and evaluate them on CIFAR-10.

The library's public face: `CNNClassifier` (the scikit-learn estimator), `from_config`
(the estimator a config describes) and `load_config` (a YAML config, validated). They are
handed out on first use, so `import cnn_cifar` and the CLI start without scikit-learn or
Keras; docs/architecture.md maps the packages.
"""

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .config.loader import load_config
    from .training.estimator import CNNClassifier, from_config

_PUBLIC = {
    "CNNClassifier": "cnn_cifar.training.estimator",
    "from_config": "cnn_cifar.training.estimator",
    "load_config": "cnn_cifar.config.loader",
}
__all__ = ("CNNClassifier", "__version__", "from_config", "load_config")


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'cnn_cifar' has no attribute {name!r}")
