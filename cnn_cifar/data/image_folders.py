"""Image folders: train/<class>/*, test/<class>/* (PNG or JPEG), as a folder or a tar
archive (streamed, never extracted)."""

from __future__ import annotations

import io
from pathlib import Path, PurePosixPath

import numpy as np

from ..core.files import one_line
from .formats import IMAGE_EXTS, DataError, Dataset, tar_members


def probe_images(path: Path):
    classes, arr = set(), None
    for split, cls, where, read in _image_entries(path):
        if split == "train":
            classes.add(cls)
            if arr is None:
                arr = _decode_image(read(), where)
    if arr is None:
        raise DataError(f"{path}: no PNG/JPEG images under train/<class>/")
    shape = arr.shape if arr.ndim == 3 else (*arr.shape, 1)
    return tuple(int(s) for s in shape), tuple(sorted(classes))


def image_split_index(parts: tuple[str, ...]) -> int | None:
    """Index of 'train'/'test' in a path like [prefix/]train/<class>/<image>."""
    if len(parts) < 3 or any(p.startswith((".", "__MACOSX")) for p in parts):
        return None
    if parts[-1].lower().endswith(IMAGE_EXTS) and parts[-3] in ("train", "test"):
        return len(parts) - 3
    return None


def image_root_dir(path: Path) -> Path | None:
    """The folder holding train/ and test/: path itself or one subfolder."""
    for d in [path, *sorted(p for p in path.iterdir() if p.is_dir())]:
        if (d / "train").is_dir() and (d / "test").is_dir():
            return d
    return None


def _image_entries(path: Path):
    """Yield (split, class, where, read) per image; call read() for the bytes
    before asking for the next entry (archives are streamed)."""
    if path.is_dir():
        root = image_root_dir(path)
        if root is None:
            raise DataError(f"{path}: no train/ and test/ folders")
        for split in ("train", "test"):
            for cls_dir in sorted(
                p for p in (root / split).iterdir() if p.is_dir() and not p.name.startswith(".")
            ):
                for f in sorted(cls_dir.iterdir()):
                    if f.is_file() and image_split_index((split, cls_dir.name, f.name)) is not None:
                        yield split, cls_dir.name, str(f), f.read_bytes
        return
    prefix = None  # the level holding train/ and test/, fixed by the first image
    for name, read in tar_members(path):
        parts = PurePosixPath(name).parts
        i = image_split_index(parts)
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
        raise DataError(f"{where}: cannot decode image ({one_line(e)})") from None


def load_images(path: Path) -> Dataset:
    entries: dict[str, list] = {"train": [], "test": []}
    for split, cls, where, read in _image_entries(path):
        entries[split].append((cls, where, read()))
    for split in entries:
        entries[split].sort(key=lambda e: (e[0], e[1]))  # archive order must not matter
        if not entries[split]:
            raise DataError(f"{path}: no PNG/JPEG images under {split}/<class>/")
    names = tuple(sorted({c for c, _, _ in entries["train"]}))
    test_names = {c for c, _, _ in entries["test"]}
    if test_names != set(names):
        raise DataError(
            f"{path}: test/ classes differ from train/ classes (only in train: "
            f"{sorted(set(names) - test_names)}, only in test: {sorted(test_names - set(names))})"
        )
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
            raise DataError(
                f"{where}: image is {arr.shape[1]}x{arr.shape[0]}, expected "
                f"{ref_arr.shape[1]}x{ref_arr.shape[0]} like {ref_where}"
            )
    gray = all(a.ndim == 2 for a, _ in train + test)

    def stack(items):
        if gray:
            return np.stack([a for a, _ in items])[..., None]
        return np.stack([a if a.ndim == 3 else np.repeat(a[..., None], 3, axis=2) for a, _ in items])

    return stack(train), stack(test)
