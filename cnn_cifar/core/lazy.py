"""Submodules handed out on first use (PEP 562), as scipy and scikit-image load theirs
(Scientific Python SPEC 1): for the packages whose modules import Keras or scikit-learn at
import time (seconds), so that `cnn-cifar --help`, a config check or a report never waits
for them. A module names the package at its top (`from .. import training`) and reaches
the heavy module when it runs (`training.estimator.from_config(...)`)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Collection
from types import ModuleType


def submodules(
    package: str, names: Collection[str]
) -> tuple[Callable[[str], ModuleType], Callable[[], list]]:
    """`__getattr__` and `__dir__` for `package`'s __init__: its submodules `names`,
    imported when first asked for."""

    def __getattr__(name: str) -> ModuleType:
        if name in names:
            return importlib.import_module(f"{package}.{name}")
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list:
        return sorted(names)

    return __getattr__, __dir__
