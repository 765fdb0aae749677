"""Load image classification data sets into uint8 arrays.

Sources: ``cifar10`` (Keras download, the official python tarball or its
extracted batches folder), ``image_folder`` (train/<class>/*, test/<class>/*
as a folder or a tar archive) and ``npz``. Local sources are decoded once and
cached as an uncompressed .npz keyed by the source's fingerprint.
"""
from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import pickle
import re
import tarfile
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

SOURCES = ("npz", "cifar10", "image_folder")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
IMAGE_EXTS = (".png", ".jpg", ".jpeg")
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_FILES = CIFAR_TRAIN + ("test_batch", "batches.meta")
CACHE_VERSION = 1  # bump when the decoded layout changes


class DataError(Exception):
    """User-facing error; str(e) is ONE line naming the file and what is wrong."""


@dataclass(frozen=True, eq=False)  # eq=False: arrays make field-wise == meaningless
class Dataset:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    source: str

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.x_train.shape[1:])

    @property
    def n_classes(self) -> int:
        return len(self.class_names)


def cache_dir_default() -> Path:
    env = os.environ.get("CNN_CIFAR_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "cnn-cifar"


# --------------------------------------------------------------------------
# detection and probing

def detect_source(path: str) -> str:
    """'npz' | 'cifar10' | 'image_folder' for a local path."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{path}: no such file or directory")
    if p.is_file() and p.suffix.lower() == ".npz":
        return "npz"
    if p.is_dir():
        if _cifar_dir(p):
            return "cifar10"
        if _image_root_dir(p):
            return "image_folder"
        raise DataError(f"{path}: folder holds neither CIFAR-10 batches (data_batch_1) "
                        "nor train/ and test/ class folders")
    if not _is_tar(p):
        raise DataError(f"{path}: not a .npz, a folder or a tar archive")
    for name, _ in _tar_members(p):
        parts = PurePosixPath(name).parts
        if parts and parts[-1] in CIFAR_FILES:
            return "cifar10"
        if _image_split_index(parts) is not None:
            return "image_folder"
    raise DataError(f"{path}: archive holds neither CIFAR-10 batches nor train/<class>/ images")


def probe(source: str, path: str | None,
          cache_dir: str | Path | None = None) -> tuple[tuple[int, int, int], tuple[str, ...]]:
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
            return _npz_shape(cached, "x_train")[1:], names
        except Exception:  # unreadable cache entry: fall back to the source
            pass
    return _PROBES[source](Path(real))


def _probe_npz(path: Path):
    with _open_npz(path) as z:
        _require_keys(path, z)
        _, names = _npz_labels(path, z)
    shape = _npz_shape(path, "x_train")[1:]
    if len(shape) not in (2, 3):
        raise DataError(f"{path}: 'x_train' must have shape (n,H,W) or (n,H,W,C), got (n, {shape})")
    return (shape + (1,) if len(shape) == 2 else shape), names


def _probe_cifar(path: Path):
    if path.is_dir():
        meta = _read_cifar_dir(path, ("batches.meta",))["batches.meta"]
    else:
        meta = _read_cifar_tar(path, ("batches.meta",))["batches.meta"]
    return (32, 32, 3), _parse_meta(meta, _cifar_where(path, "batches.meta"))


def _probe_images(path: Path):
    classes, arr = set(), None
    for split, cls, where, read in _image_entries(path):
        if split == "train":
            classes.add(cls)
            if arr is None:
                arr = _decode_image(read(), where)
    if arr is None:
        raise DataError(f"{path}: no PNG/JPEG images under train/<class>/")
    shape = arr.shape if arr.ndim == 3 else arr.shape + (1,)
    return tuple(int(s) for s in shape), tuple(sorted(classes))


_PROBES = {"npz": _probe_npz, "cifar10": _probe_cifar, "image_folder": _probe_images}


# --------------------------------------------------------------------------
# loading with cache

def load_dataset(source: str, path: str | None = None, subset: int | None = None,
                 seed: int = 0, cache_dir: str | Path | None = None) -> Dataset:
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
            warnings.warn(f"{cached}: ignoring unreadable cache entry ({e})")
    ds = _LOADERS[source](Path(real))
    try:
        _write_cache(cached, ds)
    except OSError as e:
        warnings.warn(f"{cached}: could not write cache ({e})")
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
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, x_train=ds.x_train, y_train=ds.y_train, x_test=ds.x_test,
                     y_test=ds.y_test, class_names=np.array(ds.class_names, dtype=str),
                     source=np.array(ds.source))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_cache(path: Path) -> Dataset:
    with np.load(path, allow_pickle=False) as z:
        return Dataset(z["x_train"], z["y_train"], z["x_test"], z["y_test"],
                       tuple(str(s) for s in z["class_names"]), str(z["source"]))


def _load_keras_cifar10() -> Dataset:
    import keras  # slow import, only needed here

    (xtr, ytr), (xte, yte) = keras.datasets.cifar10.load_data()
    return Dataset(np.asarray(xtr, np.uint8), np.asarray(ytr, np.int64).ravel(),
                   np.asarray(xte, np.uint8), np.asarray(yte, np.int64).ravel(),
                   CIFAR10_CLASSES, "cifar10:keras")


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
    if n >= n_train:
        return ds
    n_te = max(1, round(n * n_test / n_train))
    xtr, ytr = stratified_subset(ds.x_train, ds.y_train, n, seed)
    xte, yte = stratified_subset(ds.x_test, ds.y_test, n_te, seed)
    return Dataset(xtr, ytr, xte, yte, ds.class_names, ds.source)


# --------------------------------------------------------------------------
# npz

def _open_npz(path: Path):
    try:
        return np.load(path, allow_pickle=False)
    except Exception as e:
        raise DataError(f"{path}: not a readable .npz file ({_one_line(e)})") from None


def _require_keys(path: Path, z) -> None:
    for key in NPZ_KEYS:
        if key not in z.files:
            raise DataError(f"{path}: missing array '{key}' (has: {', '.join(z.files) or 'none'})")


def _npz_array(path: Path, z, key: str) -> np.ndarray:
    try:
        return z[key]
    except Exception as e:
        raise DataError(f"{path}: cannot read array '{key}' ({_one_line(e)})") from None


def _npz_shape(path: Path, key: str) -> tuple[int, ...]:
    """Shape of one array of a .npz from its header, without reading the data."""
    import zipfile

    fmt = np.lib.format
    try:
        with zipfile.ZipFile(path) as zf, zf.open(f"{key}.npy") as f:
            version = fmt.read_magic(f)
            read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            return tuple(int(s) for s in read(f)[0])
    except Exception as e:
        raise DataError(f"{path}: cannot read the header of '{key}' ({_one_line(e)})") from None


def _npz_labels(path: Path, z) -> tuple[list[np.ndarray], tuple[str, ...]]:
    """(y_train, y_test) as int64 0..K-1 and the class names."""
    ys = []
    for key in ("y_train", "y_test"):
        y = _npz_array(path, z, key)
        if not np.issubdtype(y.dtype, np.integer) or (y.ndim == 2 and y.shape[1] != 1) or y.ndim > 2:
            raise DataError(f"{path}: '{key}' must be integer labels of shape (n,), "
                            f"got {y.dtype} {y.shape}")
        ys.append(y.reshape(-1).astype(np.int64))
    if "class_names" in z.files:
        names = tuple(s.decode() if isinstance(s, bytes) else str(s)
                      for s in _npz_array(path, z, "class_names").reshape(-1))
        for key, y in zip(("y_train", "y_test"), ys):
            if y.size and (y.min() < 0 or y.max() >= len(names)):
                raise DataError(f"{path}: '{key}' has labels outside 0..{len(names) - 1} "
                                f"(class_names has {len(names)} entries)")
        return ys, names
    labels = np.unique(np.concatenate(ys))
    return [np.searchsorted(labels, y) for y in ys], tuple(str(v) for v in labels)


def _npz_images(path: Path, z, key: str) -> np.ndarray:
    x = _npz_array(path, z, key)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise DataError(f"{path}: '{key}' must have shape (n,H,W) or (n,H,W,C), got {x.shape}")
    if x.dtype == np.uint8:
        return x
    if not np.issubdtype(x.dtype, np.integer):
        raise DataError(f"{path}: '{key}' must be uint8 pixels, got {x.dtype}")
    if x.size and (x.min() < 0 or x.max() > 255):
        raise DataError(f"{path}: '{key}' has values outside 0..255")
    return x.astype(np.uint8)


def _load_npz(path: Path) -> Dataset:
    with _open_npz(path) as z:
        _require_keys(path, z)
        xtr, xte = _npz_images(path, z, "x_train"), _npz_images(path, z, "x_test")
        (ytr, yte), names = _npz_labels(path, z)
    if xtr.shape[1:] != xte.shape[1:]:
        raise DataError(f"{path}: x_train images are {xtr.shape[1:]} but x_test images are {xte.shape[1:]}")
    for xk, x, y in (("x_train", xtr, ytr), ("x_test", xte, yte)):
        if len(x) != len(y) or len(x) == 0:
            raise DataError(f"{path}: {xk} has {len(x)} images but {len(y)} labels")
    return Dataset(xtr, ytr, xte, yte, names, f"npz:{path}")


# --------------------------------------------------------------------------
# CIFAR-10 python batches

def _numpy_reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


def _allowed_globals() -> dict:
    import _codecs

    rec = _numpy_reconstruct()
    return {
        # what the official (Python 2) batches reference
        ("numpy.core.multiarray", "_reconstruct"): rec,
        ("numpy._core.multiarray", "_reconstruct"): rec,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        # Python 3 writes bytes at protocol 2 as _codecs.encode(str, 'latin1'): harmless
        ("_codecs", "encode"): _codecs.encode,
    }


class _BatchUnpickler(pickle.Unpickler):
    """Unpickler that only resolves the globals a CIFAR-10 batch needs."""

    def __init__(self, data: bytes, where: str):
        super().__init__(io.BytesIO(data), encoding="bytes")
        self.where = where
        self.allowed = _allowed_globals()

    def find_class(self, module, name):
        try:
            return self.allowed[(module, name)]
        except KeyError:
            raise DataError(f"{self.where}: refusing to load global {module}.{name} "
                            "from a pickle (not a CIFAR-10 batch)") from None

    def persistent_load(self, pid):
        raise DataError(f"{self.where}: unexpected persistent id in pickle (not a CIFAR-10 batch)")


def _unpickle(data: bytes, where: str):
    try:
        return _BatchUnpickler(data, where).load()
    except DataError:
        raise
    except Exception as e:  # truncated / corrupt: EOFError, UnpicklingError, ValueError ...
        raise DataError(f"{where}: truncated or corrupt pickle ({type(e).__name__}: "
                        f"{_one_line(e)})") from None


def _parse_batch(data: bytes, where: str, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    d = _unpickle(data, where)
    if not isinstance(d, dict):
        raise DataError(f"{where}: expected a dict, got {type(d).__name__}")
    for key in (b"data", b"labels"):
        if key not in d:
            raise DataError(f"{where}: missing key {key!r}")
    x, labels = d[b"data"], d[b"labels"]
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3072:
        got = f"{x.dtype} {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
        raise DataError(f"{where}: b'data' must be a uint8 array of shape (n, 3072), got {got}")
    if not isinstance(labels, (list, np.ndarray)) or len(labels) != len(x):
        raise DataError(f"{where}: b'labels' must be a list of {len(x)} ints")
    y = np.asarray(labels)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or \
            (y.size and (y.min() < 0 or y.max() >= n_classes)):
        raise DataError(f"{where}: b'labels' must be ints in 0..{n_classes - 1}")
    # rows are channel-first (3, 32, 32)
    x = x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(x), y.astype(np.int64)


def _parse_meta(data: bytes, where: str) -> tuple[str, ...]:
    d = _unpickle(data, where)
    names = d.get(b"label_names") if isinstance(d, dict) else None
    if not isinstance(names, list) or not names or \
            not all(isinstance(s, (bytes, str)) for s in names):
        raise DataError(f"{where}: missing or malformed b'label_names'")
    return tuple(s.decode() if isinstance(s, bytes) else s for s in names)


def _cifar_dir(path: Path) -> Path | None:
    """The folder holding data_batch_1: path itself or one subfolder."""
    for d in [path, *sorted(p for p in path.iterdir() if p.is_dir())]:
        if (d / "data_batch_1").is_file():
            return d
    return None


def _cifar_where(path: Path, name: str) -> str:
    """How error messages name one CIFAR-10 file (archive:member or file path)."""
    return str((_cifar_dir(path) or path) / name) if path.is_dir() else f"{path}:{name}"


def _read_cifar_dir(path: Path, names=CIFAR_FILES) -> dict[str, bytes]:
    root = _cifar_dir(path) or path
    missing = [n for n in names if not (root / n).is_file()]
    if missing:
        raise DataError(f"{root}: missing CIFAR-10 file(s) {', '.join(missing)}")
    return {n: (root / n).read_bytes() for n in names}


def _read_cifar_tar(path: Path, names=CIFAR_FILES) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for name, read in _tar_members(path):
        base = PurePosixPath(name).name
        if base in names and base not in found:
            found[base] = read()
            if len(found) == len(names):
                break
    missing = [n for n in names if n not in found]
    if missing:
        raise DataError(f"{path}: archive lacks CIFAR-10 member(s) {', '.join(missing)}")
    return found


def _load_cifar(path: Path) -> Dataset:
    raw = _read_cifar_dir(path) if path.is_dir() else _read_cifar_tar(path)
    where = functools.partial(_cifar_where, path)
    names = _parse_meta(raw["batches.meta"], where("batches.meta"))
    train = [_parse_batch(raw[n], where(n), len(names)) for n in CIFAR_TRAIN]
    xte, yte = _parse_batch(raw["test_batch"], where("test_batch"), len(names))
    xtr = np.concatenate([x for x, _ in train])
    ytr = np.concatenate([y for _, y in train])
    return Dataset(xtr, ytr, xte, yte, names, f"cifar10:{path}")


# --------------------------------------------------------------------------
# image folders

def _image_split_index(parts: tuple[str, ...]) -> int | None:
    """Index of 'train'/'test' in a path like [prefix/]train/<class>/<image>."""
    if len(parts) < 3 or any(p.startswith((".", "__MACOSX")) for p in parts):
        return None
    if parts[-1].lower().endswith(IMAGE_EXTS) and parts[-3] in ("train", "test"):
        return len(parts) - 3
    return None


def _image_root_dir(path: Path) -> Path | None:
    """The folder holding train/ and test/: path itself or one subfolder."""
    for d in [path, *sorted(p for p in path.iterdir() if p.is_dir())]:
        if (d / "train").is_dir() and (d / "test").is_dir():
            return d
    return None


def _image_entries(path: Path):
    """Yield (split, class, where, read) per image; call read() for the bytes
    before asking for the next entry (archives are streamed)."""
    if path.is_dir():
        root = _image_root_dir(path)
        if root is None:
            raise DataError(f"{path}: no train/ and test/ folders")
        for split in ("train", "test"):
            for cls_dir in sorted(p for p in (root / split).iterdir()
                                  if p.is_dir() and not p.name.startswith(".")):
                for f in sorted(cls_dir.iterdir()):
                    if f.is_file() and _image_split_index((split, cls_dir.name, f.name)) is not None:
                        yield split, cls_dir.name, str(f), f.read_bytes
        return
    prefix = None  # the level holding train/ and test/, fixed by the first image
    for name, read in _tar_members(path):
        parts = PurePosixPath(name).parts
        i = _image_split_index(parts)
        if i is not None:
            prefix = parts[:i] if prefix is None else prefix
            if parts[:i] == prefix:
                yield parts[-3], parts[-2], f"{path}:{name}", read


def _decode_image(data: bytes, where: str) -> np.ndarray:
    """(H, W) for grayscale, (H, W, 3) otherwise."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            mode = "L" if im.mode in ("L", "1", "LA") else "RGB"
            return np.asarray(im if im.mode == mode else im.convert(mode))
    except Exception as e:
        raise DataError(f"{where}: cannot decode image ({_one_line(e)})") from None


def _load_images(path: Path) -> Dataset:
    entries = {"train": [], "test": []}
    for split, cls, where, read in _image_entries(path):
        entries[split].append((cls, where, read()))
    for split in entries:
        entries[split].sort(key=lambda e: (e[0], e[1]))  # archive order must not matter
        if not entries[split]:
            raise DataError(f"{path}: no PNG/JPEG images under {split}/<class>/")
    names = tuple(sorted({c for c, _, _ in entries["train"]}))
    test_names = {c for c, _, _ in entries["test"]}
    if test_names != set(names):
        raise DataError(f"{path}: test/ classes differ from train/ classes (only in train: "
                        f"{sorted(set(names) - test_names)}, only in test: {sorted(test_names - set(names))})")
    decoded = {s: [(_decode_image(d, w), w) for _, w, d in e] for s, e in entries.items()}
    xtr, xte = _stack_images(decoded["train"], decoded["test"])
    index = {c: i for i, c in enumerate(names)}
    ytr = np.array([index[c] for c, _, _ in entries["train"]], np.int64)
    yte = np.array([index[c] for c, _, _ in entries["test"]], np.int64)
    return Dataset(xtr, ytr, xte, yte, names, f"image_folder:{path}")


def _stack_images(train, test) -> tuple[np.ndarray, np.ndarray]:
    """Check one common size; C=1 only if every image is grayscale."""
    ref_arr, ref_where = train[0]
    for arr, where in train + test:
        if arr.shape[:2] != ref_arr.shape[:2]:
            raise DataError(f"{where}: image is {arr.shape[1]}x{arr.shape[0]}, expected "
                            f"{ref_arr.shape[1]}x{ref_arr.shape[0]} like {ref_where}")
    gray = all(a.ndim == 2 for a, _ in train + test)

    def stack(items):
        if gray:
            return np.stack([a for a, _ in items])[..., None]
        return np.stack([a if a.ndim == 3 else np.repeat(a[..., None], 3, axis=2) for a, _ in items])

    return stack(train), stack(test)


_LOADERS = {"npz": _load_npz, "cifar10": _load_cifar, "image_folder": _load_images}


# --------------------------------------------------------------------------
# tar helpers (streaming: no extraction to disk, no random access needed)

def _is_tar(path: Path) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except Exception:
        return False


def _norm(name: str) -> str:
    return str(PurePosixPath(name.lstrip("/"))).removeprefix("./")


def _tar_errors():
    import lzma
    import zlib

    return (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError)


def _tar_members(path: Path):
    """Yield (name, read) per regular file, streaming; read() is valid only
    until the next member is requested."""
    try:
        with tarfile.open(path, "r|*") as tf:
            for m in tf:
                if m.isfile():
                    yield _norm(m.name), functools.partial(_tar_read, path, tf, m)
    except _tar_errors() as e:
        raise _archive_error(path, e) from None


def _tar_read(path: Path, tf: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    try:
        return tf.extractfile(member).read()
    except _tar_errors() as e:
        raise _archive_error(path, e) from None


def _archive_error(path: Path, e: BaseException) -> DataError:
    return DataError(f"{path}: unreadable or truncated archive ({_one_line(e)})")


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__
