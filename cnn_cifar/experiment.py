"""What every command shares: resolving the data source, checking a model against it before
training, and one fit of one estimator on one split (the unit `cv` and `search` repeat,
in this process or in a worker)."""
from __future__ import annotations

import logging
import os
import time

import numpy as np

from . import shapes
from .config import ConfigError
from .schema import Config, Data

log = logging.getLogger("cnn_cifar")
DATA_ENV = "CNN_CIFAR_DATA"


def resolve_data(cfg: Config, path: str | None = None, subset: int | None = None) -> Data:
    """--data beats $CNN_CIFAR_DATA beats the config; a path given either way has its
    format detected (npz, CIFAR-10 pickles or image folder)."""
    path = path or os.environ.get(DATA_ENV)
    data = cfg.data
    if path:
        data = data.model_copy(update={"path": path, "source": "auto"})
    if subset is not None:
        data = data.model_copy(update={"subset": subset})
    if data.path:                       # absolute: workers, resumes and reruns start elsewhere
        data = data.model_copy(update={"path": os.path.abspath(data.path)})
    if data.source == "auto":
        from .data import DataError, detect_source
        try:
            data = data.model_copy(update={"source": detect_source(data.path)})
        except DataError as e:
            raise ConfigError(data.path, "data.path", str(e)) from None
    return data


def probe(data: Data) -> tuple[tuple[int, int, int], tuple[str, ...]]:
    """Input shape and class names, read cheaply (no full decode)."""
    from .data import probe as data_probe
    return data_probe(data.source, data.path)


def check_layers(cfg: Config, input_shape, n_classes: int, source: str) -> list[shapes.LayerShape]:
    """Shape inference on the config's stack; a stack that cannot work is a ConfigError."""
    try:
        return shapes.infer(cfg.model.layers, input_shape, n_classes)
    except shapes.ShapeError as e:
        index = next((i for i, layer in enumerate(cfg.model.layers) if layer.name == e.layer), None)
        field = f"model.layers[{index}] ({e.layer})" if index is not None else "model.layers"
        raise ConfigError(source, field, str(e).split(": ", 1)[1] +
                          f" (input {tuple(input_shape)})") from None


def cv_splits(y: np.ndarray, n_splits: int, test_size: float, random_state) -> list[tuple]:
    """The tutorial's protocol: StratifiedShuffleSplit over the training set."""
    from sklearn.model_selection import StratifiedShuffleSplit
    sss = StratifiedShuffleSplit(n_splits=n_splits, test_size=test_size, random_state=random_state)
    return list(sss.split(np.zeros(len(y)), y))


def fit_one(estimator, data: Data, train_idx, test_idx, scoring: str = "accuracy",
            threads: int | None = None, callbacks=None, train_size: int | None = None) -> dict:
    """Fit a clone of the unfitted `estimator` on rows `train_idx` of the training set and
    score it on `test_idx`. Runs in the caller's process or in a worker, which loads the
    data itself; `train_size` keeps only the first rows of train_idx (successive halving)."""
    from .runtime import configure_threads, dataset
    configure_threads(threads)
    from sklearn.base import clone
    from sklearn.metrics import get_scorer
    ds = dataset(data)
    train_idx = np.asarray(train_idx)[:train_size] if train_size else np.asarray(train_idx)
    est = clone(estimator)
    start = time.perf_counter()
    est.fit(ds.x_train[train_idx], ds.y_train[train_idx], callbacks=callbacks)
    fit_time = time.perf_counter() - start
    start = time.perf_counter()
    score = float(get_scorer(scoring)(est, ds.x_train[test_idx], ds.y_train[test_idx]))
    result = {"score": score, "fit_time": round(fit_time, 2),
              "score_time": round(time.perf_counter() - start, 2), "epochs": est.n_epochs_,
              "n_train": int(len(train_idx)), "history": est.history_}
    est.release()
    return result
