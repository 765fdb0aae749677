"""Image folders: train/<class>/*, test/<class>/* (PNG or JPEG), as a folder or a tar
archive (streamed, never extracted)."""

from __future__ import annotations

import io
import re
import warnings
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

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


# How each mode Pillow reads from a PNG or JPEG becomes 8-bit grayscale (L) or RGB: exactly,
# or not at all. 16-bit samples keep their high byte (v // 256: libpng's strip-16, which is
# how Pillow itself reads 16-bit RGB); an alpha channel is dropped only where every pixel is
# opaque (a transparent pixel's colour would be a guess); a palette gives its colours.
EXACT = {"1": "L", "L": "L", "RGB": "RGB", "YCbCr": "RGB", "P": "RGB"}
SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")
WITH_ALPHA = {"LA": "L", "RGBA": "RGB", "PA": "RGB"}
REFUSED = "its mode has no exact 8-bit grayscale or RGB form (CMYK, LAB, HSV, 32-bit or float)"


def _decode_image(data: bytes, where: str, size: tuple[int, int] | None = None, like: str = "") -> np.ndarray:
    """(H, W) for grayscale, (H, W, 3) otherwise, uint8. The header is read first: an
    image of another `size` (width, height) than the first one (`like`) is refused before
    its pixels are decoded, as is one too large to decode safely."""
    try:
        with warnings.catch_warnings():
            # Pillow's decompression-bomb warning is two lines on the terminal: an error here
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                if size is not None and im.size != size:
                    (w, h), (ew, eh) = im.size, size
                    raise DataError(f"{where}: image is {w}x{h}, expected {ew}x{eh} like {like}")
                return _as_8_bit(im, where)
    except DataError:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
        pixels = re.search(r"\((\d+) pixels\)", str(e))
        count = f"{int(pixels.group(1)):,} pixels, " if pixels else ""
        raise DataError(
            f"{where}: image too large to decode safely ({count}over Pillow's limit of "
            f"{Image.MAX_IMAGE_PIXELS:,})"
        ) from None
    except Exception as e:
        raise DataError(f"{where}: cannot decode image ({type(e).__name__}: {_reason(e)})") from None


def _as_8_bit(im: Image.Image, where: str) -> np.ndarray:
    mode = original = im.mode
    if mode == "P" and "transparency" in im.info:  # a palette with a transparent entry
        im, mode = im.convert("RGBA"), "RGBA"
    if mode in EXACT:
        return np.asarray(im if im.mode == EXACT[mode] else im.convert(EXACT[mode]))
    if mode in SIXTEEN_BIT:
        return (np.asarray(im).astype(np.uint16) >> 8).astype(np.uint8)
    if mode in WITH_ALPHA:
        pixels = np.asarray(im.convert("RGBA" if WITH_ALPHA[mode] == "RGB" else "LA"))
        if pixels[..., -1].min() < 255:
            raise DataError(
                f"{where}: image has transparent pixels (mode {original}); flatten it onto a background "
                "first (an opaque alpha channel is dropped, a transparent one cannot be)"
            )
        return pixels[..., :-1] if WITH_ALPHA[mode] == "RGB" else pixels[..., 0]
    raise DataError(f"{where}: image mode {mode} is refused: {REFUSED}")


def _reason(e: Exception) -> str:
    """Pillow's message without the repr of the in-memory file it read from."""
    text = " ".join(str(e).split())
    return re.sub(r"\s*<_io\.BytesIO object at 0x[0-9a-f]+>", "the data", text) or "(no message)"


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
            arr = _decode_image(data, where, size, like)
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
        if gray:
            return np.stack(items)[..., None]
        return np.stack([a if a.ndim == 3 else np.repeat(a[..., None], 3, axis=2) for a in items])

    return stack(train), stack(test)
