"""Training: `CNNClassifier`, the scikit-learn estimator that builds and fits the Keras
model (`estimator`, with `keras_setup`: compile, targets, callbacks), the saved model file
(`model_file`), the folds and one fit on one of them (`folds`), and the process's framework
state (`runtime`: threads, the Keras session, precision, workers).

Imports `nn`, `data`, `config` and `core`. `estimator`, `keras_setup` and `model_file` import
scikit-learn or Keras at import time, so this package hands its modules out on first use
(`core.lazy`): `from .. import training`, then `training.estimator.from_config(...)`;
`folds` and `runtime` are light and may be imported by name.
"""

from typing import TYPE_CHECKING

from ..core.lazy import submodules

if TYPE_CHECKING:
    from . import estimator, folds, keras_setup, model_file, runtime  # noqa: F401

__getattr__, __dir__ = submodules(__name__, ("estimator", "folds", "keras_setup", "model_file", "runtime"))
