"""Load image classification data sets into uint8 arrays.

Sources: ``cifar10`` (Keras download, the official python tarball or its
extracted batches folder), ``image_folder`` (train/<class>/*, test/<class>/*
as a folder or a tar archive) and ``npz``; `formats` reads each. Local sources are
decoded once and cached as an uncompressed .npz keyed by the source's fingerprint.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import warnings
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import numpy as np

from ..core.files import atomic_path, one_line
from . import formats, image_folders
from .formats import CIFAR10_CLASSES, CIFAR_FILES, SOURCES, DataError, Dataset

CACHE_VERSION = 2  # bump when the decoded layout changes or what is read does: 2, an image
# folder's GIF, WebP or animated PNG is refused by name, no longer skipped or read
SUBSET_SEED = 0  # --subset draws the same images every time


PROBES: dict[str, Callable[[Path], tuple[tuple[int, ...], tuple[str, ...]]]] = {
    "npz": formats.probe_npz,
    "cifar10": formats.probe_cifar,
    "image_folder": image_folders.probe_images,
}
LOADERS = {"npz": formats.load_npz, "cifar10": formats.load_cifar, "image_folder": image_folders.load_images}


def cache_dir_default() -> Path:
    env = os.environ.get("CNN_CIFAR_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "cnn-cifar"


def detect_source(path: str) -> str:
    """'npz' | 'cifar10' | 'image_folder' for a local path."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{path}: no such file or directory")
    if p.is_file() and p.suffix.lower() == ".npz":
        return "npz"
    if p.is_dir():
        if formats.cifar_dir(p):
            return "cifar10"
        if image_folders.image_root_dir(p):
            return "image_folder"
        raise DataError(
            f"{path}: folder holds neither CIFAR-10 batches (data_batch_1) nor train/ and test/ class folders"
        )
    if not formats.is_tar(p):
        raise DataError(f"{path}: not a .npz, a folder or a tar archive")
    for name, _ in formats.tar_members(p):
        parts = PurePosixPath(name).parts
        if parts and parts[-1] in CIFAR_FILES:
            return "cifar10"
        if image_folders.image_split_index(parts) is not None:
            return "image_folder"
    raise DataError(f"{path}: archive holds neither CIFAR-10 batches nor train/<class>/ images")


def probe_source(
    source: str, path: str | None, cache_dir: str | Path | None = None
) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """Input shape (H, W, C) and class names without decoding the data set.

    For image folders C comes from the first image (a mixed grayscale/RGB set
    loads as C=3 even if the first image is grayscale).
    """
    source = _check_source(source, path)
    if path is None:
        return (32, 32, 3), CIFAR10_CLASSES
    real = os.path.realpath(path)
    cached = _cache_file(source, real, cache_dir)
    if cached.is_file():
        try:
            with np.load(cached, allow_pickle=False) as z:
                names = tuple(str(s) for s in z["class_names"])
            return formats._npz_shape(cached, "x_train")[1:], names
        except Exception:  # unreadable cache entry: fall back to the source
            pass
    return PROBES[source](Path(real))


# --------------------------------------------------------------------------
# loading with cache


def load_dataset(
    source: str,
    path: str | None = None,
    subset: int | None = None,
    seed: int = 0,
    cache_dir: str | Path | None = None,
) -> Dataset:
    """Load a data set; ``subset=N`` keeps N stratified training images and the
    same train:test ratio of test images (at least 1)."""
    source = _check_source(source, path)
    if subset is not None and subset <= 0:
        raise DataError(f"subset must be a positive number of images, got {subset}")
    ds = _load_keras_cifar10() if path is None else _load_cached(source, path, cache_dir)
    return ds if subset is None else _subset(ds, subset, seed)


def _check_source(source: str, path: str | None) -> str:
    if source == "auto":
        if path is None:
            raise DataError("source 'auto' needs a path")
        return detect_source(path)
    if source not in SOURCES:
        raise DataError(f"unknown data source {source!r} (expected one of {', '.join(SOURCES)})")
    if path is None and source != "cifar10":
        raise DataError(f"source {source!r} needs a path")
    if path is not None and not os.path.exists(path):
        raise DataError(f"{path}: no such file or directory")
    return source


def _load_cached(source: str, path: str, cache_dir) -> Dataset:
    real = os.path.realpath(path)
    cached = _cache_file(source, real, cache_dir)
    if cached.is_file():
        try:
            return _read_cache(cached)
        except Exception as e:  # corrupt entry: decode again and overwrite it
            warnings.warn(f"{cached}: ignoring unreadable cache entry ({e})", stacklevel=2)
    # said before the decoding starts (minutes for a full tarball), and the cache only once
    # written: data that the checks refuse is never cached
    print(f"decoding {path} ...", file=sys.stderr)
    ds = LOADERS[source](Path(real))
    try:
        _write_cache(cached, ds)
    except OSError as e:
        warnings.warn(f"{cached}: could not write cache ({e})", stacklevel=2)
    else:
        print(f"decoded; the arrays are cached in {cached.parent} for later runs", file=sys.stderr)
    return ds


def _fingerprint(path: str) -> tuple[int, int, int]:
    """(total size, newest mtime_ns, file count); cheap stat-only walk for folders."""
    st = os.stat(path)
    if not os.path.isdir(path):
        return st.st_size, st.st_mtime_ns, 1
    size, mtime, count = 0, st.st_mtime_ns, 0
    for root, dirs, files in os.walk(path):
        for name in dirs:
            mtime = max(mtime, os.stat(os.path.join(root, name)).st_mtime_ns)
        for name in files:
            s = os.stat(os.path.join(root, name))
            size, mtime, count = size + s.st_size, max(mtime, s.st_mtime_ns), count + 1
    return size, mtime, count


def _cache_file(source: str, real: str, cache_dir) -> Path:
    key = json.dumps([CACHE_VERSION, source, real, *_fingerprint(real)])
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", os.path.basename(real))[:40]
    return Path(cache_dir or cache_dir_default()) / f"{source}-{stem}-{digest}.npz"


def _write_cache(target: Path, ds: Dataset) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        np.savez(
            tmp,
            x_train=ds.x_train,
            y_train=ds.y_train,
            x_test=ds.x_test,
            y_test=ds.y_test,
            class_names=np.array(ds.class_names, dtype=str),
            source=np.array(ds.source),
        )


def _read_cache(path: Path) -> Dataset:
    with np.load(path, allow_pickle=False) as z:
        return Dataset(
            z["x_train"],
            z["y_train"],
            z["x_test"],
            z["y_test"],
            tuple(str(s) for s in z["class_names"]),
            str(z["source"]),
        )


def _load_keras_cifar10() -> Dataset:
    import keras  # slow import, only needed here

    try:
        (xtr, ytr), (xte, yte) = keras.datasets.cifar10.load_data()
    except Exception as e:  # no internet, a proxy, a truncated download
        raise DataError(
            f"CIFAR-10 could not be downloaded ({one_line(e, 160)}); give a local copy "
            "with --data PATH or the CNN_CIFAR_DATA environment variable"
        ) from None
    return Dataset(
        np.asarray(xtr, np.uint8),
        np.asarray(ytr, np.int64).ravel(),
        np.asarray(xte, np.uint8),
        np.asarray(yte, np.int64).ravel(),
        CIFAR10_CLASSES,
        "cifar10:keras",
    )


# --------------------------------------------------------------------------
# subsets


def stratified_subset(x: np.ndarray, y: np.ndarray, n: int, seed: int):
    """n images keeping class proportions, seeded; n >= len(y) returns x, y unchanged.

    Falls back to a seeded random pick when sklearn cannot stratify (n or
    len(y) - n smaller than the number of classes, or a class with one image).
    """
    if n >= len(y):
        return x, y
    if n <= 0:
        raise DataError(f"subset must be a positive number of images, got {n}")
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    try:
        keep, _ = train_test_split(idx, train_size=n, stratify=y, random_state=seed)
    except ValueError:
        keep = np.random.default_rng(seed).permutation(idx)[:n]
    return x[keep], y[keep]


def _subset(ds: Dataset, n: int, seed: int) -> Dataset:
    n_train, n_test = len(ds.y_train), len(ds.y_test)
    if n > n_train:
        raise DataError(f"--subset {n}: the data set has only {n_train:,} training images")
    if n == n_train:
        return ds
    n_te = max(1, round(n * n_test / n_train))
    xtr, ytr = stratified_subset(ds.x_train, ds.y_train, n, seed)
    xte, yte = stratified_subset(ds.x_test, ds.y_test, n_te, seed)
    return Dataset(xtr, ytr, xte, yte, ds.class_names, ds.source)
