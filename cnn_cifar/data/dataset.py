"""The data a run uses: a config's data block resolved against --data and $CNN_CIFAR_DATA,
probed cheaply before anything is decoded, then decoded once per process and checked for
what training needs."""

from __future__ import annotations

import math
import os
import sys

import numpy as np

from ..config.errors import ConfigError
from ..config.schema import Config, Data
from ..core.vocabulary import data_path
from .formats import DataError, Dataset
from .sources import SUBSET_SEED, detect_source, load_dataset, probe_source

_datasets: dict[tuple, Dataset] = {}  # the decoded data set of this process, by its spec


def resolve_data(
    cfg: Config, path: str | None = None, subset: int | None = None, source: str = "config"
) -> Data:
    """The config's data with --data or $CNN_CIFAR_DATA (`core.vocabulary.data_path`) and
    --subset applied (`source`: the config file, for messages); a path given either way has
    its format detected (npz, CIFAR-10 pickles or image folder) and is made absolute
    (workers, resumes and reruns start elsewhere)."""
    path, given_by = data_path(path)
    origin = (given_by, "") if given_by else (source, "data.path")
    data = cfg.data
    if path:
        data = data.model_copy(update={"path": path, "source": "auto"})
    if subset is not None:
        data = data.model_copy(update={"subset": subset})
    if data.path:
        data = data.model_copy(update={"path": os.path.abspath(data.path)})
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
    return probe_source(data.source, data.path)


def dataset(data: Data) -> Dataset:
    """The decoded data set of a `Data` spec, loaded once per process (workers reuse it
    across fits). One data set at a time: they are large."""
    key = (data.source, data.path, data.subset)
    if key not in _datasets:
        _datasets.clear()
        _datasets[key] = load_dataset(data.source, data.path, subset=data.subset, seed=SUBSET_SEED)
    return _datasets[key]


def load_checked(data: Data, test_size: float | None = None) -> Dataset:
    """The decoded data set, checked for what training needs before any starts: two
    classes or more, and with `test_size` (cross-validation) enough images of each class
    for stratified folds. Prints the image counts the run uses."""
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
