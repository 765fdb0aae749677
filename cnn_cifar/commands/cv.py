"""`cnn-cifar cv`: the tutorial's "unit test" of an architecture. StratifiedShuffleSplit
folds over the training set (the test set is never touched), one fresh model per fold."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from .. import training
from ..config.schema import Config, Data
from ..core import console
from ..core.files import CV_FILE, write_json
from ..core.records import FitResult
from ..core.tracking import NoTracking, Tracker
from ..core.vocabulary import CONFIDENCE, fold_spread
from ..data.formats import Dataset
from ..results.stats import mean_interval
from ..training.folds import cv_splits, fit_one
from ..training.runtime import exit_with_parent, threads_per_job

log = logging.getLogger("cnn_cifar")


class CvFold(TypedDict):
    """One fold of cv.json."""

    fold: int  # from 1
    repeat: int  # from 1 (cv.n_repeats)
    accuracy: float
    epochs: int
    fit_time_s: float
    n_train: int
    n_test: int
    history: dict[str, list[float]]


class CvSummary(TypedDict):
    """cv.json: what `run_cv` writes and returns."""

    name: str
    mean_accuracy: float
    std_accuracy: float | None  # None with one fold
    ci_accuracy: list[float] | None  # the corrected resampled t interval; None with one fold
    ci_level: float
    fold_accuracies: list[float]
    epochs: list[int]
    fit_time_s: float
    n_train: int
    n_classes: int
    input_shape: list[int]
    data: dict[str, Any]
    cv: dict[str, Any]
    folds: list[CvFold]


def run_cv(
    cfg: Config,
    data: Data,
    ds: Dataset,
    run_dir: Path,
    threads: int | None = None,
    jobs: int = 1,
    tracker: Tracker | None = None,
) -> CvSummary:
    """Fit and score every fold of `ds`, the data set `data` decoded and checked
    (`data.dataset.load_checked`: before the run folder exists), `jobs` folds at a time,
    each in its own process, which loads `data` itself; write `cv.json` (complete,
    atomically) and return it. `tracker` logs each fold as it arrives."""
    tracker = tracker or NoTracking()
    splits = cv_splits(
        ds.y_train, cfg.cv.n_splits, cfg.cv.test_size, cfg.cv.random_state, n_repeats=cfg.cv.n_repeats
    )
    estimator = training.estimator.from_config(cfg, input_shape=ds.input_shape)
    folds: list[CvFold] = []
    with console.progress(len(splits), "folds", stat="mean") as progress:
        for i, result in _fit_folds(estimator, data, splits, cfg.train.epochs, progress, threads, jobs):
            folds.append(_fold(i, splits[i - 1], cfg.cv.n_splits, result))
            tracker.log_fit(f"fold_{i:02d}", {"config": cfg.name, "fold": i}, result)
            log.info(
                "fold %d/%d: accuracy %.4f, %d epochs, %.1f s",
                i,
                len(splits),
                result["score"],
                result["epochs"],
                result["fit_time"],
            )
            progress.advance(score=result["score"])

    folds.sort(key=lambda f: f["fold"])
    scores = np.array([f["accuracy"] for f in folds])
    summary: CvSummary = {
        "name": cfg.name,
        "mean_accuracy": float(scores.mean()),
        "std_accuracy": _finite_or_none(fold_spread(scores.tolist())),
        # corrected resampled t interval of the mean (results.stats); None with one fold
        "ci_accuracy": mean_interval(
            scores, [f["n_train"] for f in folds], [f["n_test"] for f in folds], CONFIDENCE
        ),
        "ci_level": CONFIDENCE,
        "fold_accuracies": scores.tolist(),
        "epochs": [f["epochs"] for f in folds],
        "fit_time_s": round(sum(f["fit_time_s"] for f in folds), 1),
        "n_train": len(ds.y_train),
        "n_classes": ds.n_classes,
        "input_shape": list(ds.input_shape),
        "data": data.model_dump(),
        "cv": cfg.cv.model_dump(),
        "folds": folds,
    }
    write_json(run_dir / CV_FILE, summary)
    return summary


def _finite_or_none(x: float) -> float | None:
    return x if np.isfinite(x) else None  # one fold has no spread: null in JSON


def _fold(i: int, split, n_splits: int, result: FitResult) -> CvFold:
    train_idx, test_idx = split
    return {
        "fold": i,
        "repeat": (i - 1) // n_splits + 1,
        "accuracy": result["score"],
        "epochs": result["epochs"],
        "fit_time_s": result["fit_time"],
        "n_train": len(train_idx),
        "n_test": len(test_idx),
        "history": result["history"],
    }


def _fit_folds(estimator, data, splits, epochs, progress, threads, jobs):
    """Yield (fold number, fit_one result) as folds finish."""
    if jobs <= 1:
        for i, (train_idx, test_idx) in enumerate(splits, 1):
            callback = console.epoch_callback(progress, f"fold {i}/{len(splits)}", epochs)
            yield i, fit_one(estimator, data, train_idx, test_idx, threads=threads, callbacks=[callback])
        return
    from joblib import Parallel, delayed

    threads = threads_per_job(jobs, threads)
    parallel = Parallel(n_jobs=jobs, backend="loky", return_as="generator_unordered")
    parent = os.getpid()
    yield from parallel(
        delayed(_numbered_fit)(i, estimator, data, tr, te, threads, parent)
        for i, (tr, te) in enumerate(splits, 1)
    )


def _numbered_fit(i, estimator, data, train_idx, test_idx, threads, parent_pid):
    exit_with_parent(parent_pid)  # runs in a worker process
    return i, fit_one(estimator, data, train_idx, test_idx, threads=threads)


def summary_lines(summary: CvSummary) -> list:
    """What `cnn-cifar cv` prints: the folds' table, the mean and its interval."""
    rows = [
        [str(f["fold"]), f"{f['accuracy']:.4f}", str(f["epochs"]), f"{f['fit_time_s']:.1f}s"]
        for f in summary["folds"]
    ]
    headers = ("fold", "accuracy", "epochs", "fit time")
    out: list = [
        console.table(headers, rows, right=headers),
        f"{summary['name']}: {summary['mean_accuracy']:.4f} (+/-{_spread(summary['std_accuracy'])}) "
        f"mean accuracy over {len(summary['folds'])} folds",
    ]
    ci = summary.get("ci_accuracy")
    if ci:
        out.append(
            f"{summary['ci_level']:.0%} confidence interval of the mean: [{ci[0]:.4f}, {ci[1]:.4f}] "
            "(corrected resampled t, Nadeau & Bengio 2003; the folds' training sets overlap)"
        )
    return out


def _spread(std: float | None) -> str:
    return "n/a" if std is None else f"{std:.4f}"
