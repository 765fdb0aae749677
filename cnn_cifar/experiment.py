"""What every command shares: resolving the data source, checking a model against it before
training, and one fit of one estimator on one split (the unit `cv` and `search` repeat,
in this process or in a worker)."""

from __future__ import annotations

import logging
import math
import os
import sys
import time
import typing

import numpy as np

from . import shapes
from .config import ConfigError
from .schema import Config, Data

if typing.TYPE_CHECKING:
    from .formats import Dataset

log = logging.getLogger("cnn_cifar")
DATA_ENV = "CNN_CIFAR_DATA"


def resolve_data(
    cfg: Config, path: str | None = None, subset: int | None = None, source: str = "config"
) -> Data:
    """--data beats $CNN_CIFAR_DATA beats the config (`source`: the config file, for
    messages); a path given either way has its format detected (npz, CIFAR-10 pickles or
    image folder) and is made absolute (workers, resumes and reruns start elsewhere)."""
    env = os.environ.get(DATA_ENV)
    path = path or env
    origin = (DATA_ENV if path == env else "--data", "") if path else (source, "data.path")
    data = cfg.data
    if path:
        data = data.model_copy(update={"path": path, "source": "auto"})
    if subset is not None:
        data = data.model_copy(update={"subset": subset})
    if data.path:
        data = data.model_copy(update={"path": os.path.abspath(data.path)})
    from .data import DataError, detect_source

    try:
        if data.source == "auto":
            assert data.path is not None  # Data: source auto needs a path
            data = data.model_copy(update={"source": detect_source(data.path)})
        elif data.path and not os.path.exists(data.path):
            raise DataError(f"{data.path}: no such file or directory")
    except DataError as e:
        raise ConfigError(*origin, str(e)) from None
    return data


def probe(data: Data) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """Input shape and class names, read cheaply (no full decode)."""
    from .data import probe as data_probe

    return data_probe(data.source, data.path)


def check_layers(cfg: Config, input_shape, n_classes: int, source: str) -> list[shapes.LayerShape]:
    """Shape inference on the config's stack; a stack that cannot work is a ConfigError."""
    try:
        return shapes.infer(cfg.model.layers, input_shape, n_classes, cfg.model.output_bias)
    except shapes.ShapeError as e:
        index = next((i for i, layer in enumerate(cfg.model.layers) if layer.name == e.layer), None)
        field = f"model.layers[{index}] ({e.layer})" if index is not None else "model.layers"
        raise ConfigError(
            source, field, str(e).split(": ", 1)[1] + f" (input {tuple(input_shape)})"
        ) from None


def load_checked(data: Data, test_size: float | None = None) -> Dataset:
    """The decoded data set, checked for what training needs before any starts: two
    classes or more, and with `test_size` (cross-validation) enough images of each class
    for stratified folds. Prints the image counts the run uses."""
    from .data import DataError
    from .runtime import dataset

    ds = dataset(data)
    counts = np.bincount(ds.y_train, minlength=ds.n_classes)
    k, n = int((counts > 0).sum()), len(ds.y_train)
    subject = f"--subset {data.subset}" if data.subset else data.path or "the data set"
    if k < 2:
        raise DataError(f"{subject}: the training set holds {k} class; a classifier needs 2 or more")
    if test_size is not None and (counts[counts > 0].min() < 2 or not _enough(n, k, test_size)):
        raise DataError(
            f"{subject}: {n} training images of {k} classes are too few for stratified "
            f"folds with test_size {test_size:g} (every class needs 2 images and each "
            f"fold one per class on both sides: at least {min_images(k, test_size)} images)"
        )
    print(
        f"data: {n:,} training images, {len(ds.y_test):,} test images, {k} classes, "
        f"{'x'.join(map(str, ds.input_shape))} pixels",
        file=sys.stderr,
    )
    return ds


def _enough(n: int, k: int, test_size: float) -> bool:
    n_test = math.ceil(test_size * n)  # as StratifiedShuffleSplit counts
    return n_test >= k and n - n_test >= k


def min_images(k: int, test_size: float) -> int:
    """The fewest balanced images for stratified folds over k classes at `test_size`."""
    return next(n for n in range(2 * k, 10**9) if _enough(n, k, test_size))


def cv_splits(
    y: np.ndarray, n_splits: int, test_size: float, random_state, n_repeats: int = 1
) -> list[tuple]:
    """The tutorial's protocol: StratifiedShuffleSplit over the training set, `n_repeats`
    times: repeat r (from 0) draws its n_splits with seed random_state + r, so repeat 0 is
    the unrepeated protocol and any repeat can be reproduced alone. A random_state of None
    draws every repeat at random (not reproducible)."""
    from sklearn.model_selection import StratifiedShuffleSplit

    splits = []
    for r in range(n_repeats):
        seed = None if random_state is None else random_state + r
        sss = StratifiedShuffleSplit(n_splits=n_splits, test_size=test_size, random_state=seed)
        splits += list(sss.split(np.zeros(len(y)), y))
    return splits


def fit_one(
    estimator,
    data: Data,
    train_idx,
    test_idx,
    scoring: str = "accuracy",
    threads: int | None = None,
    callbacks=None,
    train_size: int | None = None,
) -> dict:
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
    from .tracking import learning_rate_log

    est.fit(ds.x_train[train_idx], ds.y_train[train_idx], callbacks=[learning_rate_log(), *(callbacks or [])])
    fit_time = time.perf_counter() - start
    start = time.perf_counter()
    score = float(get_scorer(scoring)(est, ds.x_train[test_idx], ds.y_train[test_idx]))
    result = {
        "score": score,
        "fit_time": round(fit_time, 2),
        "score_time": round(time.perf_counter() - start, 2),
        "epochs": est.n_epochs_,
        "n_train": len(train_idx),
        "n_test": len(test_idx),
        "history": est.history_,
    }
    est.release()
    return result
