"""Reading each data format into uint8 arrays: CIFAR-10 python batches (folder or tar),
image folders (train/<class>/*, test/<class>/*, as a folder or a tar archive) and npz.
Archives are streamed, never extracted; pickles go through a restricted unpickler."""

from __future__ import annotations

import _codecs
import functools
import io
import lzma
import pickle
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from ..core.files import one_line
from ..core.vocabulary import UserError

SOURCES = ("npz", "cifar10", "image_folder")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_FILES = (*CIFAR_TRAIN, "test_batch", "batches.meta")


class DataError(UserError):
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
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.x_train.shape[1:])

    @property
    def n_classes(self) -> int:
        return len(self.class_names)


def probe_npz(path: Path):
    with _open_npz(path) as z:
        _require_keys(path, z)
        _, names = _npz_labels(path, z)
    shape = _npz_shape(path, "x_train")
    _check_image_shape(path, "x_train", shape)
    return ((*shape[1:], 1) if len(shape) == 3 else shape[1:]), names


def _check_image_shape(path: Path, key: str, shape: tuple) -> None:
    if len(shape) not in (3, 4) or 0 in shape[1:]:
        raise DataError(
            f"{path}: '{key}' must hold images of shape (n, H, W) or (n, H, W, C) "
            f"with H, W and C at least 1, got {tuple(shape)}"
        )


def probe_cifar(path: Path):
    if path.is_dir():
        meta = _read_cifar_dir(path, ("batches.meta",))["batches.meta"]
    else:
        meta = _read_cifar_tar(path, ("batches.meta",))["batches.meta"]
    return (32, 32, 3), _parse_meta(meta, _cifar_where(path, "batches.meta"))


# --------------------------------------------------------------------------
# npz


def _open_npz(path: Path):
    try:
        return np.load(path, allow_pickle=False)
    except Exception as e:
        raise DataError(f"{path}: not a readable .npz file ({one_line(e)})") from None


def _require_keys(path: Path, z) -> None:
    for key in NPZ_KEYS:
        if key not in z.files:
            raise DataError(f"{path}: missing array '{key}' (has: {', '.join(z.files) or 'none'})")


def _npz_array(path: Path, z: np.lib.npyio.NpzFile, key: str) -> np.ndarray:
    try:
        return z[key]
    except Exception as e:
        raise DataError(f"{path}: cannot read array '{key}' ({one_line(e)})") from None


def _npz_shape(path: Path, key: str) -> tuple[int, ...]:
    """Shape of one array of a .npz from its header, without reading the data."""
    fmt = np.lib.format
    try:
        with zipfile.ZipFile(path) as zf, zf.open(f"{key}.npy") as f:
            version = fmt.read_magic(f)
            read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            return tuple(int(s) for s in read(f)[0])
    except Exception as e:
        raise DataError(f"{path}: cannot read the header of '{key}' ({one_line(e)})") from None


def _npz_labels(path: Path, z) -> tuple[list[np.ndarray], tuple[str, ...]]:
    """(y_train, y_test) as int64 0..K-1 and the class names."""
    ys = []
    for key in ("y_train", "y_test"):
        y = _npz_array(path, z, key)
        if not np.issubdtype(y.dtype, np.integer) or (y.ndim == 2 and y.shape[1] != 1) or y.ndim > 2:
            raise DataError(f"{path}: '{key}' must be integer labels of shape (n,), got {y.dtype} {y.shape}")
        ys.append(y.reshape(-1).astype(np.int64))
    if "class_names" in z.files:
        names = tuple(
            s.decode() if isinstance(s, bytes) else str(s)
            for s in _npz_array(path, z, "class_names").reshape(-1)
        )
        for key, y in zip(("y_train", "y_test"), ys, strict=True):
            if y.size and (y.min() < 0 or y.max() >= len(names)):
                raise DataError(
                    f"{path}: '{key}' has labels outside 0..{len(names) - 1} "
                    f"(class_names has {len(names)} entries)"
                )
        return ys, names
    labels = np.unique(np.concatenate(ys))
    if not np.array_equal(labels, np.arange(len(labels))):
        shown = ", ".join(str(v) for v in labels[:5]) + (", ..." if len(labels) > 5 else "")
        raise DataError(
            f"{path}: labels must be 0..K-1 (or be named by a 'class_names' array); "
            f"y_train and y_test hold {len(labels)} distinct values ({shown})"
        )
    return ys, tuple(str(v) for v in labels)


def _npz_images(path: Path, z, key: str) -> np.ndarray:
    x = _npz_array(path, z, key)
    _check_image_shape(path, key, x.shape)
    if x.ndim == 3:
        x = x[..., None]
    if x.dtype == np.uint8:
        return x
    if not np.issubdtype(x.dtype, np.integer):
        raise DataError(f"{path}: '{key}' must be uint8 pixels, got {x.dtype}")
    if x.size and (x.min() < 0 or x.max() > 255):
        raise DataError(f"{path}: '{key}' has values outside 0..255")
    return x.astype(np.uint8)


def load_npz(path: Path) -> Dataset:
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
        from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]
    return _reconstruct


def _allowed_globals() -> dict:
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
            raise DataError(
                f"{self.where}: refusing to load global {module}.{name} from a pickle (not a CIFAR-10 batch)"
            ) from None

    def persistent_load(self, pid):
        raise DataError(f"{self.where}: unexpected persistent id in pickle (not a CIFAR-10 batch)")


def _unpickle(data: bytes, where: str):
    try:
        return _BatchUnpickler(data, where).load()
    except DataError:
        raise
    except Exception as e:  # truncated / corrupt: EOFError, UnpicklingError, ValueError ...
        raise DataError(f"{where}: truncated or corrupt pickle ({type(e).__name__}: {one_line(e)})") from None


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
    if (
        y.ndim != 1
        or not np.issubdtype(y.dtype, np.integer)
        or (y.size and (y.min() < 0 or y.max() >= n_classes))
    ):
        raise DataError(f"{where}: b'labels' must be ints in 0..{n_classes - 1}")
    # rows are channel-first (3, 32, 32)
    x = x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(x), y.astype(np.int64)


def _parse_meta(data: bytes, where: str) -> tuple[str, ...]:
    d = _unpickle(data, where)
    names = d.get(b"label_names") if isinstance(d, dict) else None
    if not isinstance(names, list) or not names or not all(isinstance(s, (bytes, str)) for s in names):
        raise DataError(f"{where}: missing or malformed b'label_names'")
    return tuple(s.decode() if isinstance(s, bytes) else s for s in names)


def cifar_dir(path: Path) -> Path | None:
    """The folder holding data_batch_1: path itself or one subfolder."""
    for d in [path, *sorted(p for p in path.iterdir() if p.is_dir())]:
        if (d / "data_batch_1").is_file():
            return d
    return None


def _cifar_where(path: Path, name: str) -> str:
    """How error messages name one CIFAR-10 file (archive:member or file path)."""
    return str((cifar_dir(path) or path) / name) if path.is_dir() else f"{path}:{name}"


def _read_cifar_dir(path: Path, names=CIFAR_FILES) -> dict[str, bytes]:
    root = cifar_dir(path) or path
    missing = [n for n in names if not (root / n).is_file()]
    if missing:
        raise DataError(f"{root}: missing CIFAR-10 file(s) {', '.join(missing)}")
    return {n: (root / n).read_bytes() for n in names}


def _read_cifar_tar(path: Path, names=CIFAR_FILES) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for name, read in tar_members(path):
        base = PurePosixPath(name).name
        if base in names and base not in found:
            found[base] = read()
            if len(found) == len(names):
                break
    missing = [n for n in names if n not in found]
    if missing:
        raise DataError(f"{path}: archive lacks CIFAR-10 member(s) {', '.join(missing)}")
    return found


def load_cifar(path: Path) -> Dataset:
    raw = _read_cifar_dir(path) if path.is_dir() else _read_cifar_tar(path)
    where = functools.partial(_cifar_where, path)
    names = _parse_meta(raw["batches.meta"], where("batches.meta"))
    train = [_parse_batch(raw[n], where(n), len(names)) for n in CIFAR_TRAIN]
    xte, yte = _parse_batch(raw["test_batch"], where("test_batch"), len(names))
    xtr = np.concatenate([x for x, _ in train])
    ytr = np.concatenate([y for _, y in train])
    return Dataset(xtr, ytr, xte, yte, names, f"cifar10:{path}")


# --------------------------------------------------------------------------
# tar helpers (streaming: no extraction to disk, no random access needed)


def is_tar(path: Path) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except Exception:
        return False


def _norm(name: str) -> str:
    return str(PurePosixPath(name.lstrip("/"))).removeprefix("./")


def _tar_errors():
    return (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError)


def tar_members(path: Path):
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
        f = tf.extractfile(member)
        assert f is not None, member.name  # members are regular files (isfile)
        return f.read()
    except _tar_errors() as e:
        raise _archive_error(path, e) from None


def _archive_error(path: Path, e: BaseException) -> DataError:
    return DataError(f"{path}: unreadable or truncated archive ({one_line(e)})")
