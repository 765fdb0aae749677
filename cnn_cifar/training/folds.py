"""The tutorial's protocol, the unit `cv`, `search` and `evaluate` repeat: the folds of the
training set, and one fit of an estimator (on a fold's rows, scored on its test rows; or on
the whole training set), in this process or in a worker, which loads the data itself."""

from __future__ import annotations

import time

import numpy as np

from ..config.schema import Data
from ..core.records import FitResult
from ..data.dataset import dataset
from .runtime import configure_threads


def cv_splits(
    y: np.ndarray, n_splits: int, test_size: float, random_state, n_repeats: int = 1
) -> list[tuple]:
    """StratifiedShuffleSplit over the training set, `n_repeats` times: repeat r (from 0)
    draws its n_splits with seed random_state + r, so repeat 0 is the unrepeated protocol
    and any repeat can be reproduced alone. A random_state of None draws every repeat at
    random (not reproducible)."""
    from sklearn.model_selection import StratifiedShuffleSplit

    splits = []
    for r in range(n_repeats):
        seed = None if random_state is None else random_state + r
        sss = StratifiedShuffleSplit(n_splits=n_splits, test_size=test_size, random_state=seed)
        splits += list(sss.split(np.zeros(len(y)), y))
    return splits


def fit_estimator(estimator, x, y, threads: int | None = None, callbacks=None):
    """A fitted clone of the unfitted `estimator` on (x, y), the learning rate of every
    epoch in its history; `callbacks`: extra Keras callbacks (progress, pruning)."""
    configure_threads(threads)
    from sklearn.base import clone

    est = clone(estimator)
    est.fit(x, y, callbacks=[learning_rate_log(), *(callbacks or [])])
    return est


def fit_one(
    estimator,
    data: Data,
    train_idx,
    test_idx,
    scoring: str = "accuracy",
    threads: int | None = None,
    callbacks=None,
    train_size: int | None = None,
) -> FitResult:
    """Fit on rows `train_idx` of the training set and score on `test_idx`; `train_size`
    keeps only the first rows of train_idx (successive halving)."""
    configure_threads(threads)
    from sklearn.metrics import get_scorer

    ds = dataset(data)
    train_idx = np.asarray(train_idx)[:train_size] if train_size else np.asarray(train_idx)
    start = time.perf_counter()
    est = fit_estimator(estimator, ds.x_train[train_idx], ds.y_train[train_idx], threads, callbacks)
    fit_time = time.perf_counter() - start
    start = time.perf_counter()
    score = float(get_scorer(scoring)(est, ds.x_train[test_idx], ds.y_train[test_idx]))
    result = FitResult(
        score=score,
        fit_time=round(fit_time, 2),
        score_time=round(time.perf_counter() - start, 2),
        epochs=est.n_epochs_,
        n_train=len(train_idx),
        n_test=len(test_idx),
        history=est.history_,
    )
    est.release()
    return result


def learning_rate_log():
    """A Keras callback that adds the optimizer's learning rate (the schedule's value at the
    epoch's end) to each epoch's logs, and so to the fit's history, as Keras' own
    LearningRateScheduler does. Keras appends its History callback after the given ones."""
    import keras  # defined on first use: importing this module loads no Keras

    class LearningRateLog(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if logs is not None:
                lr = self.model.optimizer.learning_rate
                logs["learning_rate"] = float(keras.ops.convert_to_numpy(lr))

    return LearningRateLog()
