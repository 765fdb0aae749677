"""Image folders: train/<class>/*, test/<class>/* (PNG or JPEG, each decoded by `images`,
as `cnn-cifar predict` decodes a file), as a folder or a tar archive (streamed, never
extracted)."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import numpy as np

from .formats import DataError, Dataset, tar_members
from .images import IMAGE_LIKE_EXTS, as_channels, decode_image


def probe_images(path: Path):
    classes, arr = set(), None
    for split, cls, where, read in _image_entries(path):
        if split == "train":
            classes.add(cls)
            if arr is None:
                arr = decode_image(read(), where)
    if arr is None:
        raise DataError(f"{path}: no PNG/JPEG images under train/<class>/")
    shape = arr.shape if arr.ndim == 3 else (*arr.shape, 1)
    return tuple(int(s) for s in shape), tuple(sorted(classes))


def image_split_index(parts: tuple[str, ...]) -> int | None:
    """Index of 'train'/'test' in a path like [prefix/]train/<class>/<image>. An image
    of a format that is not read (a GIF, a WebP) counts too: the decoder refuses it by name
    rather than the data set losing it without a word."""
    if len(parts) < 3 or any(p.startswith((".", "__MACOSX")) for p in parts):
        return None
    if parts[-1].lower().endswith(IMAGE_LIKE_EXTS) and parts[-3] in ("train", "test"):
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
        raise DataError(f"{path}: {_class_mismatch(set(names), test_names)}")
    decoded: dict[str, list] = {"train": [], "test": []}
    size, like = None, ""  # the first image's (width, height): every other must match
    for split, items in entries.items():
        for _, where, data in items:
            arr = decode_image(data, where, size, like)
            if size is None:
                size, like = (arr.shape[1], arr.shape[0]), where
            decoded[split].append(arr)
    xtr, xte = _stack_images(decoded["train"], decoded["test"])
    index = {c: i for i, c in enumerate(names)}
    ytr = np.array([index[c] for c, _, _ in entries["train"]], np.int64)
    yte = np.array([index[c] for c, _, _ in entries["test"]], np.int64)
    return Dataset(xtr, ytr, xte, yte, names, f"image_folder:{path}")


def _class_mismatch(train: set, test: set) -> str:
    """Which classes lack images on one side: a class folder that is missing and one that
    holds no PNG/JPEG image are the same to a data set."""
    parts = []
    for side, folder, missing in (("training", "train", test - train), ("test", "test", train - test)):
        if missing:
            verb = "has" if len(missing) == 1 else "have"
            parts.append(
                f"{', '.join(sorted(missing))} {verb} no {side} images ({folder}/<class>/ missing or empty)"
            )
    return "; ".join(parts)


def _stack_images(train: list, test: list) -> tuple[np.ndarray, np.ndarray]:
    """C=1 only if every image is grayscale (the sizes were checked as they were decoded)."""
    gray = all(a.ndim == 2 for a in train + test)

    def stack(items):
        return np.stack([as_channels(a, 1 if gray else 3) for a in items])

    return stack(train), stack(test)
